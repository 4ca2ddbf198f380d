"""ChefApi against a stand-in for Chef Infra Server 12+ (the keys API goiardi does not have).
goiardi itself is in tests/integration/test_chef_api_goiardi.py."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from opscm.engines.chef_api import ChefApi, ClientExists, ClientNotFound
from opscm.engines.http import BackendRefused
from tests.support.fake_chef_server import FakeChefServer

ROOT = "/chef/organizations/acme"


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _public(key: rsa.RSAPrivateKey) -> str:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode()


@pytest.fixture(scope="module")
def keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture
def server(keys):
    # Under a URL prefix: the signed path must be the one the server receives.
    fake = FakeChefServer(admin="pivotal", admin_public_key=keys[0].public_key(), organization="acme", prefix="/chef")
    yield fake
    fake.close()


@pytest.fixture
def api(server, keys):
    chef = ChefApi(server.url, "pivotal", _pem(keys[0]), organization="acme", timeout=5)
    yield chef
    chef.close()


def test_check_passes_with_every_request_signed_for_the_prefixed_path(api, server):
    api.check()
    assert server.log == [("GET", f"{ROOT}/environments/_default")]


def test_a_wrong_admin_key_is_refused(server, keys):
    wrong = ChefApi(server.url, "pivotal", _pem(keys[1]), organization="acme")
    with pytest.raises(BackendRefused) as raised:
        wrong.check()
    assert raised.value.status == 401


def test_create_client_gives_the_node_key_and_asks_for_no_generated_key(api, server, keys):
    api.create_client("web-1", _public(keys[1]))
    assert server.clients["web-1"]["keys"] == {"default": _public(keys[1])}
    with pytest.raises(ClientExists):
        api.create_client("web-1", _public(keys[2]))


def test_the_key_is_read_from_keys_default_when_the_client_object_has_none(api, server, keys):
    api.create_client("web-1", _public(keys[1]))
    server.log.clear()
    assert api.client_public_key("web-1") == _public(keys[1])
    assert server.log == [("GET", f"{ROOT}/clients/web-1"), ("GET", f"{ROOT}/clients/web-1/keys/default")]
    assert api.client_public_key("web-2") is None
    server.clients["web-1"]["keys"].clear()
    assert api.client_public_key("web-1") is None


def test_replace_goes_through_the_keys_api_and_leaves_only_the_new_key(api, server, keys):
    server.clients["web-1"] = {"validator": False, "keys": {"default": _public(keys[1]), "laptop": _public(keys[2])}}
    new = _public(keys[0])
    api.replace_client_key("web-1", new)
    assert server.clients["web-1"]["keys"] == {"default": new}
    assert server.writes() == [
        ("PUT", f"{ROOT}/clients/web-1/keys/default"),
        ("DELETE", f"{ROOT}/clients/web-1/keys/laptop"),
    ]


def test_replace_adds_a_default_key_when_there_is_none(api, server, keys):
    server.clients["web-1"] = {"validator": False, "keys": {"old": _public(keys[1])}}
    api.replace_client_key("web-1", _public(keys[2]))
    assert server.clients["web-1"]["keys"] == {"default": _public(keys[2])}
    assert server.writes() == [("POST", f"{ROOT}/clients/web-1/keys"), ("DELETE", f"{ROOT}/clients/web-1/keys/old")]


def test_replace_refuses_a_validator_and_an_unknown_client_without_writing(api, server, keys):
    server.clients["acme-validator"] = {"validator": True, "keys": {"default": _public(keys[1])}}
    with pytest.raises(BackendRefused) as raised:
        api.replace_client_key("acme-validator", _public(keys[2]))
    assert raised.value.status == 403
    with pytest.raises(ClientNotFound):
        api.replace_client_key("web-9", _public(keys[2]))
    assert server.writes() == []


def test_deletes_answer_whether_something_was_there(api, server, keys):
    api.create_client("web-1", _public(keys[1]))
    assert api.delete_client("web-1") is True
    assert api.delete_client("web-1") is False
    assert api.delete_node("web-1") is False
    assert server.writes()[-3:] == [
        ("DELETE", f"{ROOT}/clients/web-1"),
        ("DELETE", f"{ROOT}/clients/web-1"),
        ("DELETE", f"{ROOT}/nodes/web-1"),
    ]


@pytest.mark.parametrize("name", ["../pivotal", "a/b", "..", "web 1", "", "web-1?x=1"])
def test_names_that_are_not_one_plain_path_segment_are_refused(api, server, name):
    with pytest.raises(ValueError, match="not a Chef object name"):
        api.delete_client(name)
    assert server.log == []


def test_an_unreadable_admin_key_is_refused_without_quoting_it():
    broken = b"-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(ValueError) as raised:
        ChefApi("http://127.0.0.1:1", "pivotal", broken)
    assert "c2VjcmV0" not in str(raised.value)


def test_an_organization_must_be_a_chef_organization_name(keys):
    with pytest.raises(ValueError, match="organization"):
        ChefApi("http://127.0.0.1:1", "pivotal", _pem(keys[0]), organization="../x")
