"""The web console from a test: signing in with an HTTP client, and an application in-process
with servers and nodes made through the service layer (no signatures, no subprocess)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from opscm.app.composition import Application, Settings
from opscm.domain.nodes import NodeClaim, NodeState
from opscm.service import nodes, servers
from opscm.service.context import Caller
from opscm.store.sql import SqlPuppetCas

from .clock import FakeClock
from .requests import create_server_params, make_csr, public_pem, rsa_key

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SIGN_IN = "/console/sign-in"


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(http, access_key_id: str, secret: str):
    """GET the form, POST it back with its token: the answer (303 when signed in)."""
    token = csrf_token(http.get(SIGN_IN).text)
    form = {"csrf": token, "access_key_id": access_key_id, "secret_access_key": secret}
    return http.post(SIGN_IN, data=form, follow_redirects=False)


def sign_out(http, page_html: str):
    return http.post("/console/sign-out", data={"csrf": csrf_token(page_html)}, follow_redirects=False)


@contextlib.contextmanager
def console_app(data_dir: Path, clock: FakeClock) -> Iterator[tuple[Application, TestClient]]:
    app = Application(
        Settings(data_dir=data_dir, ca_key_bits=2048, schedule_interval=0, health_interval=0, job_workers=1), clock=clock
    )
    app.start()
    try:
        with TestClient(app.asgi, follow_redirects=False) as http:
            yield app, http
    finally:
        app.close()


def healthy_server(app: Application, caller: Caller, name: str, engine: str = "Puppet", timeout: float = 60) -> None:
    servers.create_server(app.deps, caller, create_server_params(name, engine))
    deadline = time.monotonic() + timeout
    while servers.describe_servers(app.deps, caller, {"ServerName": name})["Servers"][0]["Status"] != "HEALTHY":
        assert time.monotonic() < deadline, f"server {name} did not become HEALTHY"
        time.sleep(0.05)


def associate_puppet(app: Application, caller: Caller, server: str, node: str) -> None:
    csr = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
    nodes.associate_node(app.deps, caller, {"ServerName": server, "NodeName": node, "EngineAttributes": csr})


def associate_chef(app: Application, caller: Caller, server: str, node: str) -> None:
    key = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
    nodes.associate_node(app.deps, caller, {"ServerName": server, "NodeName": node, "EngineAttributes": key})


def disassociate(app: Application, caller: Caller, server: str, node: str, engine: str = "Puppet") -> None:
    attributes = [] if engine == "Puppet" else [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
    nodes.disassociate_node(app.deps, caller, {"ServerName": server, "NodeName": node, "EngineAttributes": attributes})


def node_name(index: int) -> str:
    return f"node-{index:05d}.fleet.example.com"


def seed_puppet_nodes(uow_factory, server_id: str, count: int, now: datetime, first_serial: int = 1000) -> None:
    """``count`` node claims, each with a certificate record (its PEM a stand-in: listings never
    read it), written as an association would, without signing ``count`` CSRs."""
    with uow_factory() as uow:
        certificates = uow.bind(SqlPuppetCas)
        for index in range(count):
            serial = first_serial + index
            name = node_name(index)
            uow.nodes.claim(NodeClaim(server_id, name, NodeState.ASSOCIATED, f"{index:064x}", str(serial), now))
            certificates.add_certificate(server_id, serial, name, "-", now + timedelta(days=365))
        uow.commit()
