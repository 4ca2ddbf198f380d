"""A new name's claim checks its server's row in the same statement, on SQLite and PostgreSQL:
the claim is taken only while the server is the row the association was vetted against."""

from __future__ import annotations

import contextlib

import pytest

from opscm.app.composition import Application, Settings
from opscm.domain.errors import InvalidState
from opscm.domain.nodes import NodeClaim, NodeState
from opscm.domain.servers import ServerStatus
from opscm.service.context import Caller
from tests.support.clock import FakeClock
from tests.support.console import associate_chef, healthy_server
from tests.support.postgres import fresh_database

ACCOUNT, REGION = "123456789012", "us-east-1"
CALLER = Caller(ACCOUNT, REGION)


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, tmp_path):
    options = dict(data_dir=tmp_path, schedule_interval=0, health_interval=0, regions=(REGION,))
    with fresh_database() if request.param == "postgresql" else contextlib.nullcontext() as url:
        app = Application(Settings(database_url=url, **options), clock=FakeClock())
        app.start()
        try:
            healthy_server(app, CALLER, "fleet", "ChefAutomate")
            yield app
        finally:
            app.close()


def _server(app: Application):
    with app.deps.uow(read_only=True) as uow:
        return uow.servers.get(ACCOUNT, REGION, "fleet")


def _claim(app: Application, name: str, revision: int) -> bool:
    server, now = _server(app), app.deps.clock.now()
    with app.deps.uow(lean=True) as uow:
        taken = uow.nodes.claim(NodeClaim(server.id, name, NodeState.ASSOCIATED, "a" * 64, None, now), server_revision=revision)
        uow.commit()
    return taken


def _holder(app: Application, name: str):
    with app.deps.uow(read_only=True, lean=True) as uow:
        return uow.nodes.get(_server(app).id, name)


def test_a_claim_is_taken_only_at_the_servers_revision(app):
    revision = _server(app).revision
    assert not _claim(app, "stale.example.com", revision + 1)
    assert _holder(app, "stale.example.com") is None
    assert _claim(app, "node.example.com", revision)
    assert _holder(app, "node.example.com").token_hash == "a" * 64
    assert not _claim(app, "node.example.com", revision)  # held: nothing changed, no error


def _change_behind_the_cache(app: Application, status: ServerStatus | None = None) -> None:
    """What another worker does: a new revision of the row, which this process's cache has not seen."""
    app.deps.server_cache.get(ACCOUNT, REGION, "fleet")  # cached before the change
    server = _server(app)
    if status is not None:
        server.status = status
    with app.deps.uow() as uow:
        uow.servers.save(server)
        uow.commit()


def test_an_association_finds_a_server_changed_behind_its_cache(app):
    before = _server(app).revision
    _change_behind_the_cache(app)
    assert _server(app).revision == before + 1
    associate_chef(app, CALLER, "fleet", "after.example.com")
    assert _holder(app, "after.example.com") is not None


def test_an_association_is_refused_by_a_status_set_behind_its_cache(app):
    _change_behind_the_cache(app, ServerStatus.BACKING_UP)
    with pytest.raises(InvalidState, match="BACKING_UP"):
        associate_chef(app, CALLER, "fleet", "refused.example.com")
    assert _holder(app, "refused.example.com") is None
