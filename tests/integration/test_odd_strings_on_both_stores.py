"""Odd strings through the whole application, on SQLite and on PostgreSQL: NUL, unpaired
surrogates, very long values and odd Unicode in names, descriptions, tags, engine attributes and
tokens never get a 500. Requests start valid and deep (existing servers, a real node key, a real
token), then some of their strings are replaced, so what validation lets through reaches the
engines and the store (PostgreSQL refuses NUL and over-long strings where SQLite does not)."""

import dataclasses
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscm.app.composition import Application, Settings
from tests.support.in_process import assert_never_a_500, call
from tests.support.postgres import fresh_database
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key

CHEF, PUPPET = "odd-chef", "odd-puppet"
NODE_KEY = public_pem(rsa_key())
CHEF_NODE = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": NODE_KEY}]
TROUBLEMAKERS = ["", "\x00", "a\x00b", "\ud800", "a\udfffb", "\U0001f600", "e\u0301", "\u202eevil", "\ufeff", "İ"]

# Any code point (NUL and unpaired surrogates included), known troublemakers, and long runs of
# characters that pass most patterns (so they get as far as the columns).
ODD_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(TROUBLEMAKERS),
    st.builds(str.__mul__, st.sampled_from(["a", "A", "é", "\U0001f600", "-", "0", "a."]), st.integers(1, 12_000)),
)


def _bases(token: str, chef_arn: str, csr: str) -> dict[str, tuple[str, dict]]:
    """Valid requests that go deep: (operation, body) by case name."""
    chef = {"ServerName": CHEF}
    new_server = create_server_params(
        "odd-new",
        "ChefAutomate",
        EngineAttributes=[{"Name": "CHEF_AUTOMATE_PIVOTAL_KEY", "Value": NODE_KEY}],
        Tags=[{"Key": "team", "Value": "ops"}],
        PreferredMaintenanceWindow="Mon:08:00",
        KeyPair="key",
    )
    puppet = {"ServerName": PUPPET}
    return {
        "associate-chef": ("AssociateNode", {**chef, "NodeName": "node-1", "EngineAttributes": CHEF_NODE}),
        "associate-puppet": (
            "AssociateNode",
            {**puppet, "NodeName": "node-1", "EngineAttributes": [{"Name": "PUPPET_NODE_CSR", "Value": csr}]},
        ),
        "disassociate": ("DisassociateNode", {**chef, "NodeName": "node-1", "EngineAttributes": CHEF_NODE[:1]}),
        "status": ("DescribeNodeAssociationStatus", {**chef, "NodeAssociationStatusToken": token}),
        "create-server": ("CreateServer", new_server),
        "backup": ("CreateBackup", {**chef, "Description": "nightly", "Tags": [{"Key": "k", "Value": "v"}]}),
        "tag": ("TagResource", {"ResourceArn": chef_arn, "Tags": [{"Key": "team", "Value": "ops"}]}),
        "untag": ("UntagResource", {"ResourceArn": chef_arn, "TagKeys": ["team"]}),
        "list-tags": ("ListTagsForResource", {"ResourceArn": chef_arn}),
        "update": (
            "UpdateServer",
            {**chef, "PreferredBackupWindow": "08:00", "PreferredMaintenanceWindow": "Tue:09:00"},
        ),
        "engine-attribute": (
            "UpdateServerEngineAttributes",
            {**puppet, "AttributeName": "PUPPET_ADMIN_PASSWORD", "AttributeValue": "Passw0rd-Long"},
        ),
        "export": (
            "ExportServerEngineAttribute",
            {**chef, "ExportAttributeName": "Userdata", "InputAttributes": [{"Name": "RunList", "Value": "recipe[a]"}]},
        ),
        "describe": ("DescribeServers", chef),
        "backups": ("DescribeBackups", {**chef, "BackupId": "odd-chef-20240101000000000"}),
        "events": ("DescribeEvents", chef),
    }


def _string_paths(value, path=()) -> Iterator[tuple]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_paths(item, path + (index,))


def _replaced(body: dict, replacements: dict[tuple, str]) -> dict:
    body = json.loads(json.dumps(body))
    for path, text in replacements.items():
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = text
    return body


def _ready(app: Application) -> dict[str, tuple[str, dict]]:
    """Two HEALTHY servers and a real token: what the requests of _bases refer to."""
    for name, engine in ((CHEF, "ChefAutomate"), (PUPPET, "Puppet")):
        status, created = call(app, "CreateServer", json.dumps(create_server_params(name, engine)).encode())
        assert status == 200, created
    app.jobs.run_pending()
    associate = {"ServerName": CHEF, "NodeName": "node-0", "EngineAttributes": CHEF_NODE}
    status, associated = call(app, "AssociateNode", json.dumps(associate).encode())
    assert status == 200, associated
    status, described = call(app, "DescribeServers", json.dumps({"ServerName": CHEF}).encode())
    assert described["Servers"][0]["Status"] == "HEALTHY", described
    return _bases(associated["NodeAssociationStatusToken"], described["Servers"][0]["ServerArn"], make_csr("node-1"))


@dataclasses.dataclass
class Store:
    name: str
    app: Application = dataclasses.field(repr=False)
    bases: dict = dataclasses.field(repr=False)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """The whole application on each store, without signatures, jobs run by the test."""
    data_dir = tmp_path_factory.mktemp(request.param)
    options = dict(data_dir=data_dir, verify_signatures=False, ca_key_bits=2048, schedule_interval=0, health_interval=0)
    if request.param == "sqlite":
        app = Application(Settings(**options))
        yield Store(request.param, app, _ready(app))
        app.close()
        return
    with fresh_database() as url:  # a database of this run, dropped after
        app = Application(Settings(database_url=url, **options))
        yield Store(request.param, app, _ready(app))
        app.close()


CASES = sorted(_bases("token", "arn", "csr"))


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_odd_strings_never_get_a_500(store, case, data):
    app = store.app
    operation, body = store.bases[case]
    paths = list(_string_paths(body))
    chosen = data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True), label="replaced")
    replacements = {path: data.draw(ODD_TEXT, label=".".join(map(str, path))) for path in chosen}
    assert_never_a_500(*call(app, operation, json.dumps(_replaced(body, replacements)).encode()))
    app.jobs.run_pending()  # backups, updates: their jobs write to the store too
