"""Chef request signing, protocol version 1.3 (mixlib-authentication), client side. Pure: no I/O.

The string to sign, joined by "\\n" (``SignedHeaderAuth#canonicalize_request``)::

    Method:<METHOD>
    Path:<canonical path>
    X-Ops-Content-Hash:<base64 sha256 of the body>
    X-Ops-Sign:version=1.3
    X-Ops-Timestamp:<UTC YYYY-MM-DDTHH:MM:SSZ>
    X-Ops-UserId:<user id>
    X-Ops-Server-API-Version:<version>

signed with RSA PKCS#1 v1.5 over SHA-256 (deterministic), base64 in 60-character lines sent as
``X-Ops-Authorization-1..N``. Versions 1.0/1.1 (raw RSA on a SHA-1 block) are not offered.
Every rule here mirrors mixlib-authentication 3.0.6, and tests compare the bytes with it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["SIGN_VERSION", "canonical_path", "canonical_timestamp", "content_hash", "string_to_sign", "sign_request"]

SIGN_VERSION = "1.3"
SIGN_ALGORITHM = "sha256"
# Ruby's Base64.encode64 breaks lines every 60 characters; mixlib sends one header per line.
_LINE_LENGTH = 60
_SLASHES = re.compile(r"/+")


def canonical_path(path: str) -> str:
    """mixlib's ``canonical_path``: repeated slashes squeezed, a trailing slash dropped unless the
    path is "/". Chef signs ``URI#path``: a query string is never part of it, so one here is a
    caller's mistake that would only show up as a 401."""
    if "?" in path or "#" in path:
        raise ValueError("sign the URL path only, without its query string or fragment")
    path = _SLASHES.sub("/", path)
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


def canonical_timestamp(moment: datetime) -> str:
    """UTC, whole seconds, ``Z`` (Ruby's ``Time#utc.iso8601``). A naive time is refused: whose
    local time it means is a guess, and a wrong guess is a 401 an hour later."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the signing timestamp must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def string_to_sign(
    *, method: str, path: str, hashed_body: str, timestamp: str, user_id: str, server_api_version: str
) -> str:
    return "\n".join(
        (
            f"Method:{method.upper()}",
            f"Path:{canonical_path(path)}",
            f"X-Ops-Content-Hash:{hashed_body}",
            f"X-Ops-Sign:version={SIGN_VERSION}",
            f"X-Ops-Timestamp:{timestamp}",
            f"X-Ops-UserId:{user_id}",
            f"X-Ops-Server-API-Version:{server_api_version}",
        )
    )


def sign_request(
    *,
    method: str,
    path: str,
    body: bytes,
    user_id: str,
    private_key: rsa.RSAPrivateKey,
    timestamp: datetime,
    server_api_version: str = "1",
) -> dict[str, str]:
    """The headers that authenticate one request as ``user_id``. ``path`` is the URL path the
    server sees (including any prefix of the server URL), ``body`` the exact bytes sent."""
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError("Chef request signing needs an RSA private key")
    hashed_body = content_hash(body)
    stamp = canonical_timestamp(timestamp)
    text = string_to_sign(
        method=method,
        path=path,
        hashed_body=hashed_body,
        timestamp=stamp,
        user_id=user_id,
        server_api_version=server_api_version,
    )
    signature = base64.b64encode(private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()))
    headers = {
        # mixlib writes the trailing ';' and servers accept it; keep the bytes identical.
        "X-Ops-Sign": f"algorithm={SIGN_ALGORITHM};version={SIGN_VERSION};",
        "X-Ops-Userid": user_id,
        "X-Ops-Timestamp": stamp,
        "X-Ops-Content-Hash": hashed_body,
    }
    for number, start in enumerate(range(0, len(signature), _LINE_LENGTH), start=1):
        headers[f"X-Ops-Authorization-{number}"] = signature[start : start + _LINE_LENGTH].decode("ascii")
    headers["X-Ops-Server-API-Version"] = server_api_version
    return headers
