"""The console's reads (service.console) on SQLite and PostgreSQL: keyset pages, name search with
LIKE's special characters, revoked and expiring certificates, associations per hour."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from opscm.app.composition import Application, Settings
from opscm.domain.errors import NotFound
from opscm.domain.nodes import NodeClaim, NodeState
from opscm.service import console
from opscm.service.console import NodeQuery, Viewer
from opscm.service.context import Caller
from tests.support.clock import FakeClock
from tests.support.console import associate_puppet, disassociate, healthy_server, node_name, seed_puppet_nodes
from tests.support.postgres import fresh_database

ACCOUNT, REGION = "123456789012", "eu-west-1"
CALLER = Caller(ACCOUNT, REGION)
VIEWER = Viewer(ACCOUNT, None, ("us-east-1", REGION))
SEEDED = 300


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(request, tmp_path_factory):
    clock = FakeClock()
    options = dict(
        data_dir=tmp_path_factory.mktemp(request.param), ca_key_bits=2048, schedule_interval=0, health_interval=0,
        regions=VIEWER.regions,
    )
    with fresh_database() if request.param == "postgresql" else contextlib.nullcontext() as url:
        app = Application(Settings(database_url=url, **options), clock=clock)
        app.start()
        try:
            healthy_server(app, CALLER, "fleet")
            for node in ("a_b.example.com", "axb.example.com"):
                associate_puppet(app, CALLER, "fleet", node)
            disassociate(app, CALLER, "fleet", "axb.example.com")
            with app.deps.uow() as uow:
                server_id = uow.servers.get(ACCOUNT, REGION, "fleet").id
                # No certname has a '%' (Puppet refuses it): a claim of another engine's naming.
                uow.nodes.claim(NodeClaim(server_id, "a%b.example.com", NodeState.ASSOCIATED, "e" * 64, None, clock.now()))
                uow.commit()
            seed_puppet_nodes(app.deps.uow, server_id, SEEDED, clock.now())
            yield app
        finally:
            app.close()


def _names(page) -> list[str]:
    return [row.claim.name for row in page.rows]


def test_keyset_pages_forward_and_back(app):
    first = console.server_detail(app.deps, VIEWER, REGION, "fleet", NodeQuery(size=50)).nodes
    assert first.total == SEEDED + 2 and not first.has_previous and first.has_next
    assert _names(first)[:2] == ["a%b.example.com", "a_b.example.com"]
    second = console.server_detail(app.deps, VIEWER, REGION, "fleet", NodeQuery(after=_names(first)[-1])).nodes
    assert _names(second) == [node_name(i) for i in range(48, 98)] and second.has_previous and second.has_next
    back = console.server_detail(app.deps, VIEWER, REGION, "fleet", NodeQuery(before=_names(second)[0])).nodes
    assert _names(back) == _names(first) and not back.has_previous
    last = console.server_detail(app.deps, VIEWER, REGION, "fleet", NodeQuery(after=node_name(SEEDED - 11))).nodes
    assert _names(last) == [node_name(i) for i in range(SEEDED - 10, SEEDED)] and not last.has_next


def test_name_search_takes_percent_and_underscore_literally_and_ignores_case(app):
    def found(text):
        return _names(console.server_detail(app.deps, VIEWER, REGION, "fleet", NodeQuery(contains=text)).nodes)

    assert found("A_B") == ["a_b.example.com"]
    assert found("a%b") == ["a%b.example.com"]
    assert found("NODE-0029") == [node_name(i) for i in range(290, 300)]
    matches = console.find_nodes(app.deps, VIEWER, "axb")
    assert [(m.server.name, m.total, [c.node_name for c in m.revoked]) for m in matches] == [("fleet", 0, ["axb.example.com"])]


def test_revoked_certificates_and_credentials(app):
    detail = console.server_detail(app.deps, VIEWER, REGION, "fleet", NodeQuery(contains="example.com"))
    assert [c.node_name for c in detail.revoked] == ["axb.example.com"] and detail.revoked[0].revoked_at
    (credential,) = [row.credential for row in detail.nodes.rows if row.claim.name == "a_b.example.com"]
    assert credential.kind == "certificate" and credential.ref.isdigit() and credential.revoked_at is None
    assert credential.not_after > app.clock.now() + timedelta(days=4 * 365)


def test_expiring_certificates_soonest_first(app):
    expiring = console.expiring_certificates(app.deps, VIEWER, within=timedelta(days=366), limit=100)
    assert len(expiring.items) == 100 and expiring.more
    assert [item.credential.node_name for item in expiring.items[:2]] == [node_name(0), node_name(1)]
    assert console.expiring_certificates(app.deps, VIEWER).items == []


def test_associations_counted_in_this_hour(app):
    hours = console.associations_per_hour(app.deps, VIEWER)
    assert len(hours) == 24 and hours[-1].start <= app.clock.now() < hours[-1].start + timedelta(hours=1)
    assert (hours[-1].associated, hours[-1].disassociated, hours[-1].failed) == (2, 1, 0)
    assert sum(hour.total for hour in hours[:-1]) == 0


def test_servers_of_other_regions_and_accounts(app):
    (summary,) = console.servers(app.deps, VIEWER)
    assert summary.server.name == "fleet" and summary.node_count == SEEDED + 2 and summary.next_maintenance
    assert console.servers(app.deps, Viewer("999999999999", None, VIEWER.regions)) == []
    with pytest.raises(NotFound):
        console.server_detail(app.deps, Viewer(ACCOUNT, ("other",), VIEWER.regions), REGION, "fleet", NodeQuery())
    with pytest.raises(NotFound):
        console.server_detail(app.deps, VIEWER, "ap-south-1", "fleet", NodeQuery())
