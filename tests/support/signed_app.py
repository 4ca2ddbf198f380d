"""The whole application in-process, verifying signatures, driven over ASGI with requests that
botocore's own signer signed (no subprocess: the wire is Starlette's test client)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from opscm.app.composition import Application, Settings
from opscm.app.credentials import new_access_key, store_key

URL = "http://testserver/"  # the test client's host: botocore signs it
TARGET = "OpsWorksCM_V2016_11_01."


@dataclasses.dataclass
class SignedApp:
    app: Application
    http: TestClient
    credentials: Credentials

    def signed(self, operation: str, body: dict | None = None, *, region: str = "us-east-1", headers=()) -> AWSRequest:
        """A request signed by botocore; *headers* (name, value) pairs may repeat a name."""
        request = AWSRequest(
            "POST",
            URL,
            data=json.dumps(body or {}).encode(),
            headers={"X-Amz-Target": TARGET + operation, "Content-Type": "application/x-amz-json-1.1"},
        )
        for name, value in headers:
            request.headers[name] = value  # HTTPHeaders appends: a repeated name keeps every value
        SigV4Auth(self.credentials, "opsworks-cm", region).add_auth(request)
        return request

    def send(self, request: AWSRequest, headers: list[tuple[str, str]] | None = None):
        """Send as signed, or with *headers* (all of them, in order) instead of the signed ones."""
        sent = list(request.headers.items()) if headers is None else headers
        return self.http.post("/", content=request.body, headers=sent)


@contextlib.contextmanager
def signed_app(data_dir: Path, **settings) -> Iterator[SignedApp]:
    app = Application(
        Settings(data_dir=data_dir, ca_key_bits=2048, schedule_interval=0, health_interval=0, **settings)
    )
    key = new_access_key("123456789012", "tester")
    store_key(app.deps.uow, app.secret_box, key, app.clock.now())
    try:
        with TestClient(app.asgi) as http:
            yield SignedApp(app, http, Credentials(key.access_key_id, key.secret_access_key))
    finally:
        app.close()
