"""opscm's Chef request signer against the real one: Debian's ruby-mixlib-authentication."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from opscm.engines.chef_signing import canonical_path, canonical_timestamp, sign_request, string_to_sign
from tests.support.mixlib import mixlib_sign, mixlib_verify, require_mixlib

STAMP = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def mixlib():
    require_mixlib()


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode()


CASES = {
    "GET, empty body": dict(method="GET", path="/nodes", body=b"", user_id="admin"),
    "POST, JSON body": dict(
        method="POST",
        path="/organizations/acme/clients",
        body=b'{"name":"web-1","public_key":"-----BEGIN PUBLIC KEY-----\\nMIIB...\\n-----END PUBLIC KEY-----\\n"}',
        user_id="pivotal",
    ),
    "repeated and trailing slashes": dict(
        method="DELETE", path="//organizations//acme///nodes/web-1/", body=b"", user_id="admin"
    ),
    "root path": dict(method="GET", path="/", body=b"", user_id="admin"),
    "only slashes": dict(method="GET", path="///", body=b"", user_id="admin"),
    "long user id, API version 0": dict(
        method="PUT", path="/clients/x", body=b"{}", user_id="n" * 40 + ".example-" + "u" * 200, server_api_version="0"
    ),
    "lower-case method, binary body": dict(
        method="put", path="/file_store/abc", body=bytes(range(256)) * 3, user_id="node_1"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_headers_are_byte_identical_to_mixlib(mixlib, key, case):
    version = case.get("server_api_version", "1")
    ours = sign_request(
        method=case["method"],
        path=case["path"],
        body=case["body"],
        user_id=case["user_id"],
        private_key=key,
        timestamp=STAMP,
        server_api_version=version,
    )
    theirs = mixlib_sign(
        key_pem=_pem(key),
        method=case["method"].lower(),  # Chef passes a lower-case symbol
        path=case["path"],
        body=case["body"],
        user_id=case["user_id"],
        timestamp="2024-02-29T23:59:58Z",
        server_api_version=version,
    )
    assert ours.pop("X-Ops-Server-API-Version") == version
    # Same names, same order, same bytes.
    assert list(ours.items()) == list(theirs.items())


def test_a_local_time_is_signed_as_its_utc_instant_like_mixlib(mixlib, key):
    local = datetime(2024, 3, 1, 1, 59, 58, tzinfo=timezone(timedelta(hours=2)))
    ours = sign_request(method="GET", path="/nodes", body=b"", user_id="admin", private_key=key, timestamp=local)
    theirs = mixlib_sign(
        key_pem=_pem(key),
        method="get",
        path="/nodes",
        body=b"",
        user_id="admin",
        timestamp="2024-03-01T01:59:58+02:00",
        server_api_version="1",
    )
    assert ours["X-Ops-Timestamp"] == theirs["X-Ops-Timestamp"] == "2024-02-29T23:59:58Z"
    ours.pop("X-Ops-Server-API-Version")
    assert ours == theirs


def test_a_4096_bit_key_signs_in_twelve_lines_like_mixlib(mixlib):
    big = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    ours = sign_request(method="GET", path="/nodes", body=b"", user_id="admin", private_key=big, timestamp=STAMP)
    theirs = mixlib_sign(
        key_pem=_pem(big),
        method="get",
        path="/nodes",
        body=b"",
        user_id="admin",
        timestamp="2024-02-29T23:59:58Z",
        server_api_version="1",
    )
    lines = [name for name in ours if name.startswith("X-Ops-Authorization-")]
    assert lines == [f"X-Ops-Authorization-{n}" for n in range(1, 13)]
    ours.pop("X-Ops-Server-API-Version")
    assert ours == theirs


NODES = "/organizations/acme/nodes"
NODE_BODY = b'{"name":"web-1"}'


class TestMixlibVerifiesOpscmHeaders:
    """SignatureVerification, as a Ruby Chef server runs it, on requests opscm signed."""

    @staticmethod
    def _signed(key, *, path=NODES, timestamp=None):
        when = timestamp or datetime.now(UTC)
        return sign_request(method="POST", path=path, body=NODE_BODY, user_id="web-1", private_key=key, timestamp=when)

    @staticmethod
    def _verify(key, headers, *, path=NODES, body=NODE_BODY):
        return mixlib_verify(public_key_pem=_public_pem(key), method="POST", path=path, body=body, headers=headers)

    def test_accepted(self, mixlib, key):
        verdict = self._verify(key, self._signed(key))
        assert verdict == {"valid": True, "signature": True, "timestamp": True, "content_hash": True}

    def test_accepted_when_the_server_sees_the_unsqueezed_path(self, mixlib, key):
        headers = self._signed(key, path="//organizations/acme/nodes/")
        assert self._verify(key, headers, path="/organizations//acme/nodes/")["valid"] is True

    def test_another_body_is_refused(self, mixlib, key):
        verdict = self._verify(key, self._signed(key), body=b'{"name":"web-2"}')
        assert verdict["valid"] is False and verdict["content_hash"] is False

    def test_another_key_is_refused(self, mixlib, key):
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        verdict = self._verify(key, self._signed(other))
        assert verdict["valid"] is False and verdict["signature"] is False

    def test_another_path_is_refused(self, mixlib, key):
        verdict = self._verify(key, self._signed(key), path="/organizations/acme/clients")
        assert verdict["valid"] is False and verdict["signature"] is False

    def test_a_skewed_clock_is_refused(self, mixlib, key):
        verdict = self._verify(key, self._signed(key, timestamp=datetime.now(UTC) - timedelta(hours=1)))
        assert verdict["valid"] is False and verdict["timestamp"] is False and verdict["signature"] is True


# Rules checked without ruby.


def test_string_to_sign_is_the_1_3_layout():
    text = string_to_sign(
        method="post", path="//a//b/", hashed_body="H", timestamp="2024-02-29T23:59:58Z", user_id="u",
        server_api_version="1",
    )
    assert text == (
        "Method:POST\nPath:/a/b\nX-Ops-Content-Hash:H\nX-Ops-Sign:version=1.3\n"
        "X-Ops-Timestamp:2024-02-29T23:59:58Z\nX-Ops-UserId:u\nX-Ops-Server-API-Version:1"
    )


@pytest.mark.parametrize(
    "path, canonical",
    [("/", "/"), ("//", "/"), ("", ""), ("/a/", "/a"), ("/a//b///", "/a/b"), ("a/b/", "a/b"), ("/a/b", "/a/b")],
)
def test_canonical_path(path, canonical):
    assert canonical_path(path) == canonical


@pytest.mark.parametrize("path", ["/search/node?q=name:x", "/nodes#frag"])
def test_a_query_or_fragment_is_refused_rather_than_signed(path):
    with pytest.raises(ValueError, match="without its query"):
        canonical_path(path)


def test_a_naive_timestamp_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_timestamp(datetime(2024, 1, 1))


def test_fractions_of_a_second_are_dropped():
    assert canonical_timestamp(datetime(2024, 1, 1, 0, 0, 1, 999_999, tzinfo=UTC)) == "2024-01-01T00:00:01Z"


def test_signature_is_pkcs1v15_sha256_of_the_string_to_sign_in_60_character_lines(key):
    headers = sign_request(method="GET", path="/nodes", body=b"", user_id="admin", private_key=key, timestamp=STAMP)
    lines = [value for name, value in headers.items() if name.startswith("X-Ops-Authorization-")]
    assert [len(line) for line in lines] == [60, 60, 60, 60, 60, 44]
    assert headers["X-Ops-Content-Hash"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # sha256 of b""
    text = string_to_sign(
        method="GET",
        path="/nodes",
        hashed_body=headers["X-Ops-Content-Hash"],
        timestamp="2024-02-29T23:59:58Z",
        user_id="admin",
        server_api_version="1",
    )
    signature = base64.b64decode("".join(lines))
    key.public_key().verify(signature, text.encode(), padding.PKCS1v15(), hashes.SHA256())
    tampered = text.replace("/nodes", "/clients").encode()
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, tampered, padding.PKCS1v15(), hashes.SHA256())


def test_only_rsa_keys_sign():
    not_rsa = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TypeError, match="RSA"):
        sign_request(method="GET", path="/", body=b"", user_id="u", private_key=not_rsa, timestamp=STAMP)
