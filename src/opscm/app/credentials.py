"""Access keys: the admin key made on first start, keys managed by ``opscm credentials``,
looking keys up for SigV4, and what a key may do (IAM-style actions, server names)."""

from __future__ import annotations

import base64
import collections
import dataclasses
import functools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from opscm import spec
from opscm.protocol.patterns import compile_pattern
from opscm.service.ports import AccessKey, SecretBox, UnitOfWorkFactory

from .files import replace_private_file

ADMIN_ACTIONS = ("opsworks-cm:*",)
DEFAULT_REGION = "us-east-1"
CREDENTIALS_FILE = "credentials"
ACTION_PREFIX = "opsworks-cm"
# IAM's rules for user names; profile names follow them too so a section header stays plain.
_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{12}")
# IAM's AccessKeyIdType; anything else (NUL, 10 KB of text) is unknown without asking the store.
_ACCESS_KEY_ID = re.compile(r"\w{16,128}", re.ASCII)
NEW_ACCOUNT = "new"


class CredentialsError(Exception):
    """A request of ``opscm credentials`` that is refused (an unknown key, the admin's last key)."""


def new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_access_key(account_id: str, name: str, actions=ADMIN_ACTIONS, server_names=None) -> AccessKey:
    # AWS's forms: 20 upper-case characters starting AKIA; a 40-character secret.
    key_id = "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:16]
    secret = base64.b64encode(secrets.token_bytes(30)).decode("ascii")
    return AccessKey(key_id, account_id, secret, name, tuple(actions), server_names)


def store_key(uow_factory: UnitOfWorkFactory, box: SecretBox, key: AccessKey, now: datetime) -> None:
    with uow_factory() as uow:
        uow.access_keys.add(key, box.seal(key.secret_access_key.encode("utf-8")), now)
        uow.commit()


def ensure_admin(
    uow_factory: UnitOfWorkFactory, box: SecretBox, data_dir: Path, now: datetime, region: str = DEFAULT_REGION
) -> Path | None:
    """On first start make an admin key and write it as an AWS shared-credentials file (0600).

    Returns the file's path when it was created now, None when keys existed already.
    """
    with uow_factory(read_only=True) as uow:
        if uow.access_keys.count():
            return None
    key = new_access_key(new_account_id(), "admin")
    store_key(uow_factory, box, key, now)
    path = Path(data_dir) / CREDENTIALS_FILE
    # A file left by an earlier database is stale: replaced (and a planted link removed, not followed).
    replace_private_file(path, profile_section("default", key, region=region).encode("utf-8"))
    return path


def profile_section(profile: str, key: AccessKey, region: str | None = None) -> str:
    lines = [f"[{profile}]", f"aws_access_key_id = {key.access_key_id}", f"aws_secret_access_key = {key.secret_access_key}"]
    if region:
        # botocore merges credentials-file values into the profile, so the region works from here too.
        lines.append(f"region = {region}")
    return "\n".join(lines) + "\n"


# A removed (or changed) key stops working within this many seconds in every process.
KEY_CACHE_SECONDS = 2.0
_KEY_CACHE_SIZE = 4096


class KeyRing:
    """Finds an access key and its secret for signature checks.

    Found keys are kept decrypted in the process for ``ttl`` seconds (a lookup and an AES-GCM
    open per request cost more than the rest of a describe); unknown ids are not kept, so a
    flood of made-up ids cannot grow the cache.
    """

    def __init__(
        self, uow_factory: UnitOfWorkFactory, box: SecretBox, ttl: float = KEY_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._uow = uow_factory
        self._box = box
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[str, tuple[float, AccessKey]] = collections.OrderedDict()

    def find(self, access_key_id: str) -> AccessKey | None:
        if not _ACCESS_KEY_ID.fullmatch(access_key_id):
            return None
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(access_key_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with self._uow(read_only=True) as uow:
            found = uow.access_keys.get(access_key_id)
        with self._lock:
            if found is None:
                self._cache.pop(access_key_id, None)
                return None
            key, secret_enc = found
            secret = self._box.open(secret_enc).decode("utf-8")
            key = AccessKey(key.access_key_id, key.account_id, secret, key.name, key.actions, key.server_names)
            self._cache[access_key_id] = (now, key)
            self._cache.move_to_end(access_key_id)
            while len(self._cache) > _KEY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return key


def action_matches(pattern: str, operation: str) -> bool:
    """IAM's action matching: case-insensitive, ``*`` any run of characters, ``?`` one character."""
    prefix, _, wanted = pattern.partition(":")
    if prefix.lower() != ACTION_PREFIX:
        return False
    glob = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wanted)
    return re.fullmatch(glob, operation, re.IGNORECASE | re.DOTALL) is not None


def allows(key: AccessKey, operation: str) -> bool:
    """IAM-style action patterns: ``opsworks-cm:AssociateNode``, ``opsworks-cm:Describe*``, ``opsworks-cm:*``."""
    return _allows(key.actions, operation)


@functools.lru_cache(maxsize=4096)
def _allows(actions: tuple[str, ...], operation: str) -> bool:
    # Asked on every request, with few distinct answers: the patterns compile once, not per call.
    return any(action_matches(pattern, operation) for pattern in actions)


def user_arn(key: AccessKey) -> str:
    """The IAM user a key stands for, as AccessDeniedException names it."""
    return f"arn:aws:iam::{key.account_id}:user/{key.name}"


def check_actions(patterns: Iterable[str]) -> tuple[str, ...]:
    """Action patterns for a new key; each must match at least one operation of the model."""
    operations = spec.service_model().operation_names
    checked = []
    for pattern in (p.strip() for p in patterns):
        prefix, colon, wanted = pattern.partition(":")
        if not colon or prefix.lower() != ACTION_PREFIX or not wanted:
            raise ValueError(
                f"'{pattern}' is not an action of the form {ACTION_PREFIX}:<Operation> "
                f"(e.g. {ACTION_PREFIX}:AssociateNode, {ACTION_PREFIX}:Describe*, {ACTION_PREFIX}:*)"
            )
        if not any(action_matches(pattern, operation) for operation in operations):
            raise ValueError(f"'{pattern}' matches no operation of the OpsWorks CM API ({', '.join(operations)})")
        checked.append(pattern)
    if not checked:
        raise ValueError("at least one action is needed")
    return tuple(checked)


def check_server_names(names: Iterable[str]) -> tuple[str, ...]:
    """Server names a new key may touch, checked against the model's ServerName shape."""
    shape = spec.service_model().shape_for("ServerName").metadata
    pattern = compile_pattern(shape["pattern"])
    checked = []
    for name in (n.strip() for n in names):
        if not shape["min"] <= len(name) <= shape["max"] or not pattern.fullmatch(name):
            raise ValueError(f"'{name}' is not a server name (1 to {shape['max']} letters, digits and '-', a letter first)")
        checked.append(name)
    if not checked:
        raise ValueError("at least one server name is needed")
    return tuple(dict.fromkeys(checked))


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a valid {what} (1 to 64 letters, digits and _+=,.@-)")
    return name


def check_account(account: str) -> str:
    """An account id (12 digits), or ``new``."""
    if account != NEW_ACCOUNT and not _ACCOUNT.fullmatch(account):
        raise ValueError(f"'{account}' is not an account id (12 digits) or '{NEW_ACCOUNT}'")
    return account


def admin_account(keys: list[AccessKey]) -> str | None:
    """The admin account: the account of the oldest key (the one made on first start)."""
    return keys[0].account_id if keys else None


def add_key(
    uow_factory: UnitOfWorkFactory,
    box: SecretBox,
    now: datetime,
    *,
    name: str | None = None,
    account: str | None = None,
    actions: Iterable[str] = ADMIN_ACTIONS,
    server_names: Iterable[str] | None = None,
) -> AccessKey:
    """Make and store a key. ``account``: None for the admin account, ``new`` for a new one, or an id.

    Raises ValueError for arguments that are not valid.
    """
    actions = check_actions(actions)
    servers = check_server_names(server_names) if server_names is not None else None
    if name is not None:
        check_name(name)
    if account is None:
        with uow_factory(read_only=True) as uow:
            account = admin_account(uow.access_keys.list())
        if account is None:
            raise CredentialsError("there is no account yet; give --account new or an account id")
    elif check_account(account) == NEW_ACCOUNT:
        account = new_account_id()
    key = new_access_key(account, name or "", actions, servers)
    if name is None:
        key = dataclasses.replace(key, name=f"key-{key.access_key_id[-8:].lower()}")
    store_key(uow_factory, box, key, now)
    return key


def list_keys(uow_factory: UnitOfWorkFactory) -> list[AccessKey]:
    """Every key, oldest first, without secrets."""
    with uow_factory(read_only=True) as uow:
        return uow.access_keys.list()


def remove_key(uow_factory: UnitOfWorkFactory, access_key_id: str, *, force: bool = False) -> AccessKey:
    """Delete a key; the next request signed with it is refused. The admin account's last key
    is kept unless ``force``."""
    with uow_factory() as uow:
        keys = uow.access_keys.list()
        key = next((k for k in keys if k.access_key_id == access_key_id), None)
        if key is None:
            raise CredentialsError(f"there is no access key {access_key_id}")
        admin = admin_account(keys)
        if not force and key.account_id == admin and sum(k.account_id == admin for k in keys) == 1:
            raise CredentialsError(
                f"{access_key_id} is the last key of the admin account {admin}; give --force to remove it anyway"
            )
        uow.access_keys.remove(access_key_id)
        uow.commit()
    return key
