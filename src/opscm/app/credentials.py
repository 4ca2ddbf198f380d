"""Access keys: the admin key made on first start, and looking keys up for SigV4."""

from __future__ import annotations

import base64
import fnmatch
import secrets
from datetime import datetime
from pathlib import Path

from opscm.service.ports import AccessKey, SecretBox, UnitOfWorkFactory

from .files import write_private_file

ADMIN_ACTIONS = ("opsworks-cm:*",)
DEFAULT_REGION = "us-east-1"
CREDENTIALS_FILE = "credentials"


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


def ensure_admin(uow_factory: UnitOfWorkFactory, box: SecretBox, data_dir: Path, now: datetime) -> Path | None:
    """On first start make an admin key and write it as an AWS shared-credentials file (0600).

    Returns the file's path when it was created now, None when keys existed already.
    """
    with uow_factory(read_only=True) as uow:
        if uow.access_keys.count():
            return None
    key = new_access_key(new_account_id(), "admin")
    store_key(uow_factory, box, key, now)
    path = Path(data_dir) / CREDENTIALS_FILE
    write_private_file(path, profile_section("default", key, region=DEFAULT_REGION).encode("utf-8"))
    return path


def profile_section(profile: str, key: AccessKey, region: str | None = None) -> str:
    lines = [f"[{profile}]", f"aws_access_key_id = {key.access_key_id}", f"aws_secret_access_key = {key.secret_access_key}"]
    if region:
        # botocore merges credentials-file values into the profile, so the region works from here too.
        lines.append(f"region = {region}")
    return "\n".join(lines) + "\n"


class KeyRing:
    """Finds an access key and its secret for signature checks."""

    def __init__(self, uow_factory: UnitOfWorkFactory, box: SecretBox):
        self._uow = uow_factory
        self._box = box

    def find(self, access_key_id: str) -> AccessKey | None:
        with self._uow(read_only=True) as uow:
            found = uow.access_keys.get(access_key_id)
        if found is None:
            return None
        key, secret_enc = found
        secret = self._box.open(secret_enc).decode("utf-8")
        return AccessKey(key.access_key_id, key.account_id, secret, key.name, key.actions, key.server_names)


def allows(key: AccessKey, operation: str) -> bool:
    """IAM-style action patterns: ``opsworks-cm:AssociateNode``, ``opsworks-cm:Describe*``, ``opsworks-cm:*``."""
    action = f"opsworks-cm:{operation}".lower()
    return any(fnmatch.fnmatchcase(action, pattern.lower()) for pattern in key.actions)
