"""Stored backups as the source of engine state: for RestoreServer and CreateServer with BackupId.

A snapshot is the engine's JSON-able state (see ``Engine.snapshot``); the backup storage keeps
it sealed. This module imports nothing of the server handlers, so they can use it.
"""

from __future__ import annotations

import dataclasses
import json

from opscm.domain.backups import Backup, BackupStatus
from opscm.domain.errors import NotFound, ValidationFailed
from opscm.domain.nodes import NodeClaim, NodeState
from opscm.domain.servers import EngineChoice, Server, choose_engine

from .context import Caller, Dependencies
from .ports import Engine, Provisioned, UnitOfWork

FORMAT = 1
# Names in force after a restore were associated by no token that still matters.
RESTORED_TOKEN = "0" * 64
# Settings a new server does not take from a backup: a custom domain needs its certificate and key.
NOT_INHERITED = ("CustomDomain",)


def encode(snapshot: dict) -> bytes:
    return json.dumps({"format": FORMAT, **snapshot}, separators=(",", ":"), sort_keys=True).encode("utf-8")


def decode(data: bytes) -> dict:
    snapshot = json.loads(data)
    if snapshot.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {snapshot.get('format')!r}")
    return snapshot


def require_backup(uow: UnitOfWork, caller: Caller, backup_id: str) -> Backup:
    backup = uow.backups.get(caller.account_id, caller.region, backup_id)
    if backup is None or not caller.may_touch(backup.server_name):
        raise NotFound()
    return backup


def require_usable(backup: Backup, engine: str) -> None:
    if backup.status is not BackupStatus.OK:
        raise ValidationFailed(f"Backup {backup.id} is {backup.status}; only a backup in state OK can be used.")
    if backup.server_snapshot["Engine"] != engine:
        raise ValidationFailed(
            f"Backup {backup.id} is of engine {backup.server_snapshot['Engine']}, not {engine}."
        )


def read_snapshot(deps: Dependencies, backup: Backup) -> dict:
    """The backup's snapshot, or a refusal that says why it cannot be read (never a 500)."""
    if backup.location is None:
        raise ValidationFailed(f"Backup {backup.id} has no stored snapshot.")
    try:
        return decode(deps.backup_storage.get(backup.location))
    except FileNotFoundError:
        # Each replica keeps the files of the backups it made, in its own data dir.
        raise ValidationFailed(f"The file of backup {backup.id} is not in this opscm's data dir.") from None
    except (ValueError, OSError):  # SecretBox.open's ValueError: damaged, or another key
        raise ValidationFailed(
            f"The file of backup {backup.id} cannot be opened: it is damaged, or sealed with another master key."
        ) from None


@dataclasses.dataclass(frozen=True)
class BackupSource:
    """What CreateServer with BackupId takes from the backup."""

    backup: Backup
    engine: EngineChoice
    settings: dict
    snapshot: dict

    @property
    def backend(self) -> str | None:
        return self.snapshot.get("backend")

    def provisioned(self, engine: Engine, server: Server) -> Provisioned:
        """No new keys: the engine state (same CA, same clients, same pivotal key) is the backup's."""
        plan = engine.plan_restore(server, self.snapshot, new_server=True)

        def store(uow: UnitOfWork) -> None:
            apply_restore(uow, engine, server, plan)

        return Provisioned(once=[], engine_data={}, store=store)


def apply_restore(uow: UnitOfWork, engine: Engine, server: Server, plan: object) -> None:
    """The engine's restore, the node names in force after it, and the server's engine data."""
    in_force = engine.restore(uow, server, plan)
    if in_force is not None:
        now = server.created_at
        uow.nodes.replace_all(
            server.id, [NodeClaim(server.id, name, NodeState.ASSOCIATED, RESTORED_TOKEN, ref, now) for name, ref in in_force]
        )
    uow.servers.save(server)


def backup_source(deps: Dependencies, caller: Caller, params: dict) -> BackupSource | None:
    """The backup CreateServer's ``BackupId`` names, checked against the request; None without one."""
    if not params.get("BackupId"):
        return None
    if params.get("EngineAttributes"):
        raise ValidationFailed(
            "EngineAttributes cannot be given with BackupId: the new server takes the backup's engine state "
            "(keys, certificate authority, admin password)."
        )
    with deps.uow(read_only=True) as uow:
        backup = require_backup(uow, caller, params["BackupId"])
    require_usable(backup, params["Engine"])
    saved = backup.server_snapshot
    if params.get("EngineModel") not in (None, saved["EngineModel"]):
        raise ValidationFailed(
            f"Backup {backup.id} is of engine model {saved['EngineModel']}, not {params['EngineModel']}."
        )
    choice = choose_engine(saved["Engine"], saved["EngineModel"], params.get("EngineVersion") or saved["EngineVersion"])
    settings = {k: v for k, v in saved["settings"].items() if k not in NOT_INHERITED}
    return BackupSource(backup, choice, settings, read_snapshot(deps, backup))
