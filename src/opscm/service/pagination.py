"""MaxResults / NextToken: opaque page tokens, signed so that a forged one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import TypeVar

from opscm.domain.errors import InvalidNextToken

T = TypeVar("T")


class PageTokens:
    def __init__(self, key: bytes):
        self._key = key

    def page(self, items: Sequence[T], params: dict, scope: str) -> tuple[list[T], str | None]:
        """One page of ``items``; ``scope`` ties a token to one listing (operation, caller, filters)."""
        offset = self._offset(params["NextToken"], scope) if params.get("NextToken") else 0
        limit = params.get("MaxResults") or len(items)
        end = offset + limit
        more = end < len(items)
        return list(items[offset:end]), self._token(end, scope) if more else None

    def _token(self, offset: int, scope: str) -> str:
        body = json.dumps({"o": offset, "s": _digest(scope)}, separators=(",", ":")).encode()
        return _b64(body) + "." + _b64(self._mac(body))

    def _offset(self, token: str, scope: str) -> int:
        try:
            body_b64, mac_b64 = token.split(".")
            body = _unb64(body_b64)
            if not hmac.compare_digest(_unb64(mac_b64), self._mac(body)):
                raise ValueError("bad signature")
            data = json.loads(body)
            if data["s"] != _digest(scope) or not isinstance(data["o"], int) or data["o"] < 0:
                raise ValueError("another listing")
            return data["o"]
        except (ValueError, KeyError, TypeError):
            raise InvalidNextToken("The NextToken is not valid for this request.") from None

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()


def _digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
