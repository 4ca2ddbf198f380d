"""Requests answered by an Application's pipeline in-process: no socket, no signature."""

from __future__ import annotations

import json

from opscm.protocol.json11 import CONTENT_TYPE, HttpRequest

TARGET_PREFIX = "OpsWorksCM_V2016_11_01"


def call(app, operation: str, body: bytes) -> tuple[int, dict]:
    """The status and decoded JSON body of the answer to *body* for *operation*."""
    request = HttpRequest(
        method="POST",
        path="/",
        query="",
        headers={"x-amz-target": f"{TARGET_PREFIX}.{operation}", "content-type": CONTENT_TYPE},
        body=body,
    )
    response = app.pipeline.handle(request)
    return response.status, json.loads(response.body or b"{}")


def assert_never_a_500(status: int, payload: dict) -> None:
    """200, or a 4xx JSON error with a type and a message: nothing the client sent is our bug."""
    assert status == 200 or 400 <= status < 500, (status, payload)
    if status != 200:
        assert payload.get("__type") and payload.get("message"), payload
