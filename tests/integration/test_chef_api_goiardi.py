"""opscm's Chef admin client against a real Chef server: goiardi 0.11 (Chef 11 API, no orgs)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from opscm.engines.chef_api import ChefApi, ClientExists, ClientNotFound
from opscm.engines.http import BackendRefused, BackendUnavailable
from tests.support.clock import FakeClock


def _node_key() -> tuple[bytes, str]:
    """A node's key pair as `openssl genrsa 2048` + `openssl rsa -pubout` would give it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


def _name() -> str:
    return f"node-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def admin(goiardi):
    api = ChefApi(goiardi.url, goiardi.admin_name, goiardi.admin_key(), timeout=5)
    yield api
    api.close()


@pytest.fixture
def node(goiardi, admin):
    """A registered node: (name, its own ChefApi, its public key PEM)."""
    name = _name()
    private, public = _node_key()
    admin.create_client(name, public)
    yield name, ChefApi(goiardi.url, name, private), public
    admin.delete_node(name)
    admin.delete_client(name)


def _node_body(name: str) -> dict:
    return {"name": name, "json_class": "Chef::Node", "chef_type": "node", "chef_environment": "_default",
            "run_list": [], "normal": {}}  # fmt: skip


def test_a_registered_node_key_authenticates_and_the_node_creates_its_node(goiardi, admin):
    name = _name()
    private, public = _node_key()
    as_node = ChefApi(goiardi.url, name, private)
    assert as_node.request("GET", "/nodes").status == 401  # not registered yet
    admin.create_client(name, public)
    try:
        assert as_node.request("GET", "/nodes").status == 200
        assert as_node.request("POST", "/nodes", _node_body(name)).status == 201
        assert admin.request("GET", f"/nodes/{name}").status == 200
        assert admin.delete_node(name) is True
        assert admin.request("GET", f"/nodes/{name}").status == 404
    finally:
        admin.delete_node(name)
        admin.delete_client(name)


def test_registering_a_name_twice_raises_client_exists(admin, node):
    name, _, _ = node
    with pytest.raises(ClientExists) as raised:
        admin.create_client(name, _node_key()[1])
    assert raised.value.status == 409 and isinstance(raised.value, BackendRefused)


def test_the_registered_key_reads_back(admin, node):
    name, _, public = node
    assert admin.client_public_key(name) == public
    assert admin.client_public_key(_name()) is None


def test_replacing_the_key_locks_the_old_key_out(goiardi, admin, node):
    name, old, _ = node
    private, public = _node_key()
    new = ChefApi(goiardi.url, name, private)
    assert (old.request("GET", "/nodes").status, new.request("GET", "/nodes").status) == (200, 401)

    admin.replace_client_key(name, public)

    assert (old.request("GET", "/nodes").status, new.request("GET", "/nodes").status) == (401, 200)
    assert admin.client_public_key(name) == public
    client = json.loads(admin.request("GET", f"/clients/{name}").body)
    assert (client["name"], client["admin"], client["validator"]) == (name, False, False)  # same plain client


def test_replacing_the_key_of_an_unknown_client_raises_client_not_found(admin):
    with pytest.raises(ClientNotFound) as raised:
        admin.replace_client_key(_name(), _node_key()[1])
    assert raised.value.status == 404


def test_the_validator_key_is_never_replaced(goiardi, admin):
    with pytest.raises(BackendRefused) as raised:
        admin.replace_client_key("chef-validator", _node_key()[1])
    assert raised.value.status == 403
    validator = ChefApi(goiardi.url, "chef-validator", (goiardi.conf_root / "chef-validator.pem").read_bytes())
    assert validator.request("GET", "/clients/chef-validator").status == 200


def test_a_deleted_client_is_locked_out(admin, node):
    name, as_node, _ = node
    assert admin.delete_client(name) is True
    assert as_node.request("GET", "/nodes").status == 401
    assert admin.delete_client(name) is False


def test_deleting_unknown_names_answers_false(admin):
    assert admin.delete_client(_name()) is False
    assert admin.delete_node(_name()) is False


def test_check_accepts_the_admin(admin):
    admin.check()


def test_check_refuses_a_wrong_admin_key(goiardi):
    wrong = ChefApi(goiardi.url, goiardi.admin_name, _node_key()[0])
    with pytest.raises(BackendRefused) as raised:
        wrong.check()
    assert raised.value.status == 401
    assert "BEGIN" not in raised.value.reason


def test_check_refuses_an_organization_goiardi_does_not_have(goiardi):
    # goiardi answers every /organizations/... path with an empty 200.
    api = ChefApi(goiardi.url, goiardi.admin_name, goiardi.admin_key(), organization="acme")
    with pytest.raises(BackendRefused, match="JSON"):
        api.check()


def test_a_clock_an_hour_off_is_refused(goiardi):
    clock = FakeClock()
    api = ChefApi(goiardi.url, goiardi.admin_name, goiardi.admin_key(), clock=clock)
    api.check()
    clock.advance(timedelta(hours=1))
    with pytest.raises(BackendRefused) as raised:
        api.check()
    assert raised.value.status == 401


def test_a_refused_key_is_not_echoed_in_the_reason(admin):
    # goiardi quotes a PEM it cannot parse in its error message.
    _, public = _node_key()
    broken = public.replace("-----BEGIN PUBLIC KEY-----", "-----BEGIN PUBLIC KEY----")
    with pytest.raises(BackendRefused) as raised:
        admin.create_client(_name(), broken)
    body_lines = public.splitlines()[1:-1]
    assert raised.value.status == 400
    assert not any(line[:20] in raised.value.reason for line in body_lines), raised.value.reason
    assert "BEGIN" not in raised.value.reason


def test_a_stopped_server_is_unavailable_and_the_same_server_comes_back(goiardi, admin, node):
    name, as_node, _ = node
    admin_key = goiardi.admin_key()
    with goiardi.stopped():
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="refused the connection"):
            admin.check()
        assert time.monotonic() - started < 2
    assert goiardi.admin_key() == admin_key  # admin.pem is not rewritten
    admin.check()
    assert as_node.request("GET", "/nodes").status == 200  # registered clients survive


def test_a_killed_server_keeps_what_it_froze(goiardi, admin):
    name = _name()
    private, public = _node_key()
    admin.create_client(name, public)
    try:
        time.sleep(2.5)  # goiardi freezes its data every second (-F 1) after a change
        with goiardi.stopped(kill=True):
            pass
        admin.check()
        assert ChefApi(goiardi.url, name, private).request("GET", "/nodes").status == 200
    finally:
        admin.delete_client(name)
