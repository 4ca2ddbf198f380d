"""A small stand-in for Chef Infra Server 12+ (API version 1, one organization), for the parts
goiardi cannot show: the keys endpoints. Its rules come from erchef (chef_wm_clients,
chef_wm_named_client, oc_chef_wm_keys, oc_chef_wm_named_key, chef_key_base):

* ``POST .../clients`` takes ``public_key`` (or ``create_key: true``), 201; 409 if it exists.
* A client object carries no ``public_key`` under API v1; ``PUT`` on it refuses key fields (400).
* ``.../clients/NAME/keys`` lists ``{"name","uri","expired"}``; ``.../keys/KEY`` reads, ``PUT``
  updates (200), ``DELETE`` removes (200); ``POST .../keys`` adds one (201, 409 if taken).

Every request must be signed (protocol 1.3) by the admin for the path the server received;
otherwise 401. Every request is logged as (method, path) for the tests to read.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from opscm.engines.chef_signing import content_hash, string_to_sign


class FakeChefServer:
    def __init__(self, *, admin: str, admin_public_key: rsa.RSAPublicKey, organization: str, prefix: str = ""):
        self.admin = admin
        self.admin_public_key = admin_public_key
        self.root = f"{prefix}/organizations/{organization}"
        self.clients: dict[str, dict] = {}  # name -> {"validator": bool, "keys": {key name: pem}}
        self.log: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_port}{prefix}"
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[tuple[str, str]]:
        return [entry for entry in self.log if entry[0] != "GET"]

    # -- the API --------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, object]:
        if not path.startswith(self.root + "/"):
            return 404, {"error": ["not found"]}
        parts = path[len(self.root) + 1 :].split("/")
        if parts == ["environments", "_default"] and method == "GET":
            return 200, {"name": "_default", "json_class": "Chef::Environment"}
        if parts == ["clients"] and method == "POST":
            return self._create_client(body or {})
        if parts[0] == "nodes" and len(parts) == 2 and method == "DELETE":
            return 404, {"error": ["node not found"]}
        if parts[0] != "clients" or len(parts) < 2 or parts[1] not in self.clients:
            return 404, {"error": ["not found"]}
        name, client = parts[1], self.clients[parts[1]]
        if len(parts) == 2:
            return self._client(method, name, client, body or {})
        if parts[2] == "keys" and len(parts) == 3:
            return self._keys(method, name, client, body or {})
        if parts[2] == "keys" and len(parts) == 4:
            return self._key(method, parts[3], client, body or {})
        return 404, {"error": ["not found"]}

    def _create_client(self, body: dict) -> tuple[int, object]:
        name = body.get("name")
        if name in self.clients:
            return 409, {"error": ["Client already exists"]}
        if body.get("create_key") and body.get("public_key"):
            return 400, {"error": ["Since you have provided a public_key, you cannot have create_key = true"]}
        keys = {"default": body["public_key"]} if body.get("public_key") else {}
        self.clients[name] = {"validator": bool(body.get("validator")), "keys": keys}
        return 201, {"uri": f"{self.url}/clients/{name}"}

    def _client(self, method: str, name: str, client: dict, body: dict) -> tuple[int, object]:
        if method == "GET":
            return 200, {"name": name, "clientname": name, "validator": client["validator"], "orgname": "acme",
                         "json_class": "Chef::ApiClient", "chef_type": "client"}  # fmt: skip
        if method == "PUT" and ("public_key" in body or "create_key" in body):
            return 400, {"error": ["key_management_not_supported"]}
        if method == "DELETE":
            del self.clients[name]
            return 200, {"name": name}
        return 405, {"error": ["method not allowed"]}

    def _keys(self, method: str, name: str, client: dict, body: dict) -> tuple[int, object]:
        if method == "GET":
            return 200, [{"name": key, "uri": f"{self.url}/clients/{name}/keys/{key}", "expired": False}
                         for key in client["keys"]]  # fmt: skip
        if method == "POST":
            if body.get("name") in client["keys"]:
                return 409, {"error": ["key already exists"]}
            client["keys"][body["name"]] = body["public_key"]
            return 201, {"uri": f"{self.url}/clients/{name}/keys/{body['name']}"}
        return 405, {"error": ["method not allowed"]}

    def _key(self, method: str, key: str, client: dict, body: dict) -> tuple[int, object]:
        if key not in client["keys"]:
            return 404, {"error": ["key not found"]}
        if method == "GET":
            return 200, {"name": key, "public_key": client["keys"][key], "expiration_date": "infinity"}
        if method == "PUT":
            client["keys"][key] = body.get("public_key", client["keys"][key])
            return 200, {"name": key, "public_key": client["keys"][key], "expiration_date": "infinity"}
        if method == "DELETE":
            del client["keys"][key]
            return 200, {"name": key}
        return 405, {"error": ["method not allowed"]}

    # -- authentication ---------------------------------------------------------------------

    def authenticated(self, method: str, path: str, headers, body: bytes) -> bool:
        if headers.get("X-Ops-Userid") != self.admin or headers.get("X-Ops-Sign") != "algorithm=sha256;version=1.3;":
            return False
        if headers.get("X-Ops-Content-Hash") != content_hash(body):
            return False
        numbered = ((re.fullmatch(r"(?i)x-ops-authorization-(\d+)", name), value) for name, value in headers.items())
        lines = sorted((int(match[1]), value) for match, value in numbered if match)
        text = string_to_sign(
            method=method,
            path=path,
            hashed_body=content_hash(body),
            timestamp=headers.get("X-Ops-Timestamp", ""),
            user_id=self.admin,
            server_api_version=headers.get("X-Ops-Server-API-Version", "0"),
        )
        try:
            signature = base64.b64decode("".join(value for _, value in lines))
            self.admin_public_key.verify(signature, text.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True


def _handler(server: FakeChefServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            server.log.append((self.command, path))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not server.authenticated(self.command, path, self.headers, body):
                status, answer = 401, {"error": ["Failed to authenticate"]}
            else:
                status, answer = server.answer(self.command, path, json.loads(body) if body else None)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler
