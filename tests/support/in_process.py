"""Requests answered by an Application's pipeline in-process: no socket, no signature."""

from __future__ import annotations

import json
import time

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


def wait_until_healthy(app, name: str, timeout: float = 60.0) -> None:
    """Return once the server named *name* is HEALTHY (its creation job ran)."""
    deadline = time.monotonic() + timeout
    while call(app, "DescribeServers", json.dumps({"ServerName": name}).encode())[1]["Servers"][0]["Status"] != "HEALTHY":
        assert time.monotonic() < deadline, "the server never became HEALTHY"
        time.sleep(0.05)
