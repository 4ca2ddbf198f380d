"""Who may sign in to the console: an access key of the store whose secret matches (compared in
constant time, as a SigV4 check compares signatures) and whose actions allow every Describe*
operation of the API (the console shows what those operations show)."""

from __future__ import annotations

import functools
import hmac

from opscm import spec
from opscm.service.ports import AccessKey

from ..credentials import KeyRing, allows

# Compared with when the key id is unknown, so that a miss takes as long as a wrong secret.
_NO_SECRET = "\0" * 40


@functools.cache
def describe_operations() -> tuple[str, ...]:
    return tuple(name for name in spec.service_model().operation_names if name.startswith("Describe"))


def may_use_console(key: AccessKey) -> bool:
    return all(allows(key, operation) for operation in describe_operations())


def key_with_secret(keys: KeyRing, access_key_id: str, secret: str) -> AccessKey | None:
    """The key if ``secret`` is its secret, else None (an unknown id and a wrong secret alike)."""
    key = keys.find(access_key_id)
    expected = key.secret_access_key if key is not None else _NO_SECRET
    matches = hmac.compare_digest(expected.encode(), secret.encode())
    return key if key is not None and matches else None
