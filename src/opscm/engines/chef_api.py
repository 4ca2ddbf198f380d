"""The admin client of a Chef Infra Server (or goiardi): register, re-key and remove the Chef
clients of nodes. Every request is signed with protocol 1.3 (:mod:`.chef_signing`).

Two API generations are served, and both are handled:

* Chef Infra Server 12+ (organizations; server API version 1): a client's keys live under
  ``/organizations/ORG/clients/NAME/keys``; the client object no longer carries ``public_key``
  and ``PUT`` on it refuses key changes.
* The Chef 11 API, as goiardi 0.11 serves it (no organizations: ``/clients``, ``/nodes``): the
  key is the client object's ``public_key`` and ``PUT /clients/NAME`` replaces it. goiardi has no
  keys endpoint, and answers any ``/clients/NAME/...`` path as ``/clients/NAME`` itself, so a
  write to ``.../keys/default`` there would rename the client: key writes go to the keys
  endpoint only once it has answered with a list of keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from opscm.service.ports import Clock

from .chef_signing import sign_request
from .http import DEFAULT_CONNECT_TIMEOUT, BackendRefused, HttpBackend, Reply, refusal

__all__ = ["ChefApi", "ClientExists", "ClientNotFound"]

# Client, node and key names (Chef's NAME_REGEX plus ':' for nodes): one plain path segment.
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
_ORGANIZATION = re.compile(r"[a-z0-9][a-z0-9_-]{0,254}")
_DEFAULT_KEY = "default"


class ClientExists(BackendRefused):
    """A client of that name is registered already (HTTP 409)."""

    def __init__(self, name: str):
        super().__init__(f"Chef client '{name}' already exists", 409)


class ClientNotFound(BackendRefused):
    """No client of that name (HTTP 404)."""

    def __init__(self, name: str):
        super().__init__(f"Chef client '{name}' does not exist", 404)


class ChefApi:
    """One admin identity on one Chef server (and organization). Thread-safe: the transport is a
    connection pool and nothing else changes after construction."""

    def __init__(
        self,
        url: str,
        client_name: str,
        client_key_pem: bytes,
        *,
        organization: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
        clock: Clock | None = None,
        server_api_version: str = "1",
    ):
        if organization is not None and not _ORGANIZATION.fullmatch(organization):
            raise ValueError(f"not a Chef organization name: {organization!r}")
        self.client_name = client_name
        self.organization = organization
        self._key = _private_key(client_key_pem)
        self._now: Callable[[], datetime] = clock.now if clock is not None else lambda: datetime.now(UTC)
        self._server_api_version = server_api_version
        self._root = f"/organizations/{organization}" if organization else ""
        self._http = HttpBackend(
            url, ca_bundle=ca_bundle, connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, timeout), read_timeout=timeout
        )

    # -- the wire ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Reply:
        """A signed request. ``path`` is under the API root: "/nodes" means
        ``/organizations/ORG/nodes`` when an organization is set. ``body`` is sent as JSON.
        Answers any HTTP status; raises :class:`BackendUnavailable` only when nothing answered."""
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        target = self._root + path
        # The server checks the path it receives, which includes the URL's own path prefix.
        signed_path = self._http.base_path + target.split("?", 1)[0]
        headers = sign_request(
            method=method,
            path=signed_path,
            body=data,
            user_id=self.client_name,
            private_key=self._key,
            timestamp=self._now(),
            server_api_version=self._server_api_version,
        )
        headers["Accept"] = "application/json"
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self._http.request(method, target, body=data if body is not None else None, headers=headers)

    def close(self) -> None:
        self._http.close()

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        """Prove the admin credentials are accepted with a cheap read (the default environment).
        Raises :class:`BackendRefused` (401/403, wrong organization) or :class:`BackendUnavailable`."""
        reply = self.request("GET", "/environments/_default")
        if reply.status != 200:
            raise refusal("checking the Chef server credentials", reply)
        # goiardi answers any /organizations/... path with an empty 200: insist on the real object.
        environment = _json_object(reply, "checking the Chef server credentials")
        if environment.get("name") != "_default":
            raise BackendRefused("checking the Chef server credentials: no default environment (organization?)", 200)

    # -- clients ----------------------------------------------------------------------------

    def create_client(self, name: str, public_key_pem: str | bytes) -> None:
        """Register a client that authenticates with the node's own key. ``create_key: false``:
        the server must not make a key pair of its own (Chef Infra Server 12.1+)."""
        body = {"name": _segment(name), "public_key": _text(public_key_pem), "create_key": False}
        reply = self.request("POST", "/clients", body)
        if reply.status == 409:
            raise ClientExists(name)
        if reply.status != 201:
            raise refusal(f"creating Chef client '{name}'", reply)

    def client_public_key(self, name: str) -> str | None:
        """The client's (default) public key, None when there is no such client or key."""
        client = self._client(name)
        if client is None:
            return None
        if isinstance(client.get("public_key"), str):  # Chef 11 API, goiardi, API version 0
            return client["public_key"]
        reply = self.request("GET", f"/clients/{_segment(name)}/keys/{_DEFAULT_KEY}")
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise refusal(f"reading the key of Chef client '{name}'", reply)
        key = _json_object(reply, f"reading the key of Chef client '{name}'").get("public_key")
        return key if isinstance(key, str) else None

    def replace_client_key(self, name: str, public_key_pem: str | bytes) -> None:
        """Make ``public_key_pem`` the client's only valid key (a node rebuilt under the same
        name). Admin and validator clients are never re-keyed; a missing client raises
        :class:`ClientNotFound`."""
        pem = _text(public_key_pem)
        client = self._client(name)
        if client is None:
            raise ClientNotFound(name)
        if client.get("admin") is True or client.get("validator") is True:
            raise BackendRefused(f"Chef client '{name}' is an admin or validator: its key is not replaced", 403)
        keys = self._key_names(name)
        if keys is None:
            self._replace_embedded_key(name, pem)
        else:
            self._replace_default_key(name, pem, keys)

    def delete_client(self, name: str) -> bool:
        """True when deleted, False when there was no such client."""
        return self._delete(f"/clients/{_segment(name)}", f"deleting Chef client '{name}'")

    def delete_node(self, name: str) -> bool:
        """True when deleted, False when there was no such node."""
        return self._delete(f"/nodes/{_segment(name)}", f"deleting Chef node '{name}'")

    # -- helpers ----------------------------------------------------------------------------

    def _client(self, name: str) -> dict | None:
        reply = self.request("GET", f"/clients/{_segment(name)}")
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise refusal(f"reading Chef client '{name}'", reply)
        return _json_object(reply, f"reading Chef client '{name}'")

    def _key_names(self, name: str) -> list[str] | None:
        """The client's key names from the keys endpoint, or None where there is none (a 404 on
        the Chef 11 API; goiardi answers with the client object instead of a list)."""
        reply = self.request("GET", f"/clients/{_segment(name)}/keys")
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise refusal(f"listing the keys of Chef client '{name}'", reply)
        try:
            listing = json.loads(reply.body)
        except ValueError:
            return None
        if not isinstance(listing, list):
            return None
        return [entry["name"] for entry in listing if isinstance(entry, dict) and isinstance(entry.get("name"), str)]

    def _replace_embedded_key(self, name: str, pem: str) -> None:
        # The name must be repeated: goiardi renames the client to whatever "name" says.
        reply = self.request("PUT", f"/clients/{_segment(name)}", {"name": name, "public_key": pem})
        if reply.status == 404:
            raise ClientNotFound(name)
        if reply.status != 200:
            raise refusal(f"replacing the key of Chef client '{name}'", reply)

    def _replace_default_key(self, name: str, pem: str, keys: list[str]) -> None:
        what = f"replacing the key of Chef client '{name}'"
        key = {"name": _DEFAULT_KEY, "public_key": pem, "expiration_date": "infinity"}
        base = f"/clients/{_segment(name)}/keys"
        if _DEFAULT_KEY in keys:
            reply = self.request("PUT", f"{base}/{_DEFAULT_KEY}", key)
            expected = 200
        else:
            reply = self.request("POST", base, key)
            expected = 201
        if reply.status == 404:
            raise ClientNotFound(name)
        if reply.status != expected:
            raise refusal(what, reply)
        # Any other key would still let the old machine in.
        for other in keys:
            if other != _DEFAULT_KEY:
                self._delete(f"{base}/{_segment(other)}", what)

    def _delete(self, path: str, what: str) -> bool:
        reply = self.request("DELETE", path)
        if reply.status == 404:
            return False
        if reply.status != 200:
            raise refusal(what, reply)
        return True


def _private_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        # cryptography's message may quote parser state; say only what is wrong.
        raise ValueError("the Chef client key is not a readable unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the Chef client key must be an RSA private key")
    return key


def _segment(name: str) -> str:
    """A name as one URL path segment. Chef's names never need escaping, so a name that would is
    refused rather than escaped (the server checks the signature on the path it decodes)."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"not a Chef object name: {name!r}")
    return name


def _text(pem: str | bytes) -> str:
    return pem.decode("ascii") if isinstance(pem, bytes) else pem


def _json_object(reply: Reply, what: str) -> dict:
    """The body as a JSON object; anything else means a wrong URL or organization, not a blip."""
    try:
        value = json.loads(reply.body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BackendRefused(f"{what}: the server did not answer a JSON object (HTTP {reply.status})", reply.status)
    return value
