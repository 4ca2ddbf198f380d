"""CreateBackup, DescribeBackups, DeleteBackup, and the backup job (snapshots of engine state)."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from opscm import __version__
from opscm.domain.backups import Backup, BackupStatus, BackupType, new_backup_id
from opscm.domain.errors import DomainError, InvalidState, LimitExceeded, NotFound
from opscm.domain.servers import BACKUP_STATES, Server, ServerStatus
from opscm.domain.tags import check_tag_count, tag_pairs

from . import snapshots
from .context import Caller, Dependencies
from .ports import UnitOfWork
from .servers import ECHOED_SETTINGS, require_server

log = logging.getLogger(__name__)

# Settings of the server that the model's Backup shape echoes: all but these.
NOT_IN_BACKUP = ("AssociatePublicIpAddress", "BackupRetentionCount", "CustomDomain", "DisableAutomatedBackup")


def start_backup(
    deps: Dependencies, uow: UnitOfWork, server: Server, *, automated: bool, description: str | None
) -> Backup:
    """Record an IN_PROGRESS backup, move the server to BACKING_UP and queue the snapshot job."""
    server.require_status(*BACKUP_STATES, action="CreateBackup")
    now = deps.clock.now()
    backup_type = BackupType.AUTOMATED if automated else BackupType.MANUAL
    if not automated:
        used = uow.backups.count(server.account_id, server.region, str(BackupType.MANUAL))
        if used >= deps.limits.manual_backups_per_region:
            raise LimitExceeded(
                f"You have reached the maximum of {deps.limits.manual_backups_per_region} manual backups."
            )
    # AWS's ids hold only the server's name and the millisecond: a server of the same name in
    # another account or region, backed up in the same tick, would take the same id (the key of
    # every backup, and its file's name). The next free millisecond is taken instead.
    backup_id = new_backup_id(server.name, now)
    taken = now
    while uow.backups.id_taken(backup_id):
        taken += timedelta(milliseconds=1)
        backup_id = new_backup_id(server.name, taken)
    backup = Backup(
        id=backup_id,
        account_id=server.account_id,
        region=server.region,
        server_id=server.id,
        server_name=server.name,
        backup_type=backup_type,
        status=BackupStatus.IN_PROGRESS,
        created_at=now,
        server_snapshot=server_snapshot(server),
        description=description,
    )
    resume = server.enter(ServerStatus.BACKING_UP)
    uow.servers.save(server)
    uow.backups.add(backup)
    uow.events.add(server.id, now, f"{backup_type.title()} backup {backup.id} started.")
    payload = {"backup_id": backup.id, "account_id": server.account_id, "region": server.region}
    uow.jobs.add("create-backup", server.id, now, {**payload, "resume_status": str(resume)})
    return backup


def server_snapshot(server: Server) -> dict:
    """What DescribeBackups echoes of the server, and what a restore brings back of its settings."""
    return {
        "Engine": server.engine.engine,
        "EngineModel": server.engine.model,
        "EngineVersion": server.engine.version,
        "settings": dict(server.settings),
    }


def create_backup(deps: Dependencies, caller: Caller, params: dict) -> dict:
    tags = tag_pairs(params.get("Tags"))
    check_tag_count((), (key for key, _ in tags))
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        backup = start_backup(deps, uow, server, automated=False, description=params.get("Description"))
        uow.tags.put(backup.arn, tags)
        uow.commit()
    deps.wake_jobs()
    return {"Backup": backup_view(deps, backup)}


def describe_backups(deps: Dependencies, caller: Caller, params: dict) -> dict:
    backup_id, server_name = params.get("BackupId"), params.get("ServerName")
    with deps.uow(read_only=True) as uow:
        if backup_id:
            backup = snapshots.require_backup(uow, caller, backup_id)
            if server_name and backup.server_name != server_name:
                raise NotFound()
            backups = [backup]
        elif server_name:
            # Manual backups outlive their server: its name is known while it has any.
            backups = []
            if caller.may_touch(server_name):
                backups = uow.backups.list(caller.account_id, caller.region, server_name)
            if not backups:
                require_server(uow, caller, server_name)
        else:
            backups = [b for b in uow.backups.list(caller.account_id, caller.region) if caller.may_touch(b.server_name)]
    scope = f"DescribeBackups:{caller.account_id}:{caller.region}:{backup_id or ''}:{server_name or ''}"
    page, next_token = deps.page_tokens.page(backups, params, scope)
    return {"Backups": [backup_view(deps, b) for b in page], "NextToken": next_token}


def delete_backup(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow() as uow:
        backup = snapshots.require_backup(uow, caller, params["BackupId"])
        if backup.status is BackupStatus.IN_PROGRESS:
            raise InvalidState(f"Backup {backup.id} is IN_PROGRESS; it can be deleted once it is OK or FAILED.")
        _forget(uow, backup)
        if uow.servers.get_by_id(backup.server_id) is not None:
            uow.events.add(backup.server_id, deps.clock.now(), f"Backup {backup.id} deleted.")
        uow.commit()
    remove_files(deps, [backup.location])
    return {}


def backup_view(deps: Dependencies, backup: Backup) -> dict:
    saved = backup.server_snapshot
    view = {
        "BackupArn": backup.arn,
        "BackupId": backup.id,
        "BackupType": str(backup.backup_type),
        "CreatedAt": backup.created_at,
        "Description": backup.description,
        "Engine": saved["Engine"],
        "EngineModel": saved["EngineModel"],
        "EngineVersion": saved["EngineVersion"],
        "S3DataSize": backup.size_bytes,
        "S3DataUrl": deps.backup_storage.url(backup.location) if backup.location else None,
        "ServerName": backup.server_name,
        "Status": str(backup.status),
        "StatusDescription": backup.status_description,
        "ToolsVersion": f"opscm {__version__}",
        "UserArn": f"arn:aws:iam::{backup.account_id}:root",
    }
    view.update({k: v for k, v in saved["settings"].items() if k in ECHOED_SETTINGS and k not in NOT_IN_BACKUP})
    return view


# --- the job ---------------------------------------------------------------------------------


def run_backup(deps: Dependencies, server_id: str, payload: dict) -> None:
    """Snapshot the engine (one read transaction), give the server back to its work, then store
    the snapshot sealed and finish the backup: the server is BACKING_UP only while its state is
    read (in a boot storm, that is when AssociateNode is refused).

    Safe to run again after a crash or a failure to record its end: before the server went back
    to work the snapshot is taken anew; after, the snapshot stored then (a put is whole or
    nothing) finishes the backup, or, if none was stored, it fails.
    """
    location = None
    try:
        with deps.uow(read_only=True) as uow:
            backup = _job_backup(uow, payload)
            if backup is None or backup.status is not BackupStatus.IN_PROGRESS:
                return  # deleted with its server, or finished before a restart
            server = uow.servers.get_by_id(server_id)
            resumed = server is not None and server.status is not ServerStatus.BACKING_UP
            location = deps.backup_storage.stored(backup.id) if resumed else None  # an earlier run's
            if server is None or (resumed and location is None):
                raise InvalidState("The server was deleted or left BACKING_UP before the snapshot was taken.")
            snapshot = None if resumed else deps.engine_for(server).snapshot(uow, server)
        if not resumed:
            _resume(deps, server_id, payload)
            data = snapshots.encode(snapshot)
            location = deps.backup_storage.put(backup.id, data)
            size = len(data)
        else:
            size = len(deps.backup_storage.get(location))
        _finish(deps, server_id, payload, location=location, size=size)
    except Exception as error:  # noqa: BLE001 - a failed backup is recorded; the server goes back to work
        log.exception("backup %s of server %s failed", payload.get("backup_id"), server_id)
        # A file stored for a backup that failed must not outlive it.
        _finish(deps, server_id, payload, failure=failure_reason(error), stored=location)


def _resume(deps: Dependencies, server_id: str, payload: dict) -> None:
    """The snapshot holds the engine's state: the server goes back to the state it was in."""
    with deps.uow() as uow:
        server = uow.servers.get_by_id(server_id)
        if server is not None and server.status is ServerStatus.BACKING_UP:
            server.status = ServerStatus(payload.get("resume_status", ServerStatus.HEALTHY))
            uow.servers.save(server)
            uow.commit()


def failure_reason(error: Exception) -> str:
    """What an event and a StatusDescription say of a failure: short, never exception text
    (it may hold paths or values; the log has the rest)."""
    if isinstance(error, DomainError):
        return error.message
    if isinstance(error, OSError):
        return f"the backup storage failed: {os.strerror(error.errno) if error.errno else 'I/O error'}"
    return "an internal error of opscm (see its log)"


def _finish(
    deps: Dependencies,
    server_id: str,
    payload: dict,
    *,
    location: str | None = None,
    size: int = 0,
    failure: str = "",
    stored: str | None = None,
) -> None:
    unused: list[str | None] = [stored] if stored else []
    with deps.uow() as uow:
        backup = _job_backup(uow, payload)
        server = uow.servers.get_by_id(server_id)
        now = deps.clock.now()
        if backup is None or backup.status is not BackupStatus.IN_PROGRESS:
            if location and (backup is None or backup.location != location):
                unused.append(location)  # its backup is gone: the file must not outlive it
        elif location:
            backup.status, backup.location, backup.size_bytes = BackupStatus.OK, location, size
            uow.backups.save(backup)
        else:
            backup.status, backup.status_description = BackupStatus.FAILED, failure
            uow.backups.save(backup)
        if server is not None:
            if server.status is ServerStatus.BACKING_UP:  # it failed before the snapshot was read
                server.status = ServerStatus(payload.get("resume_status", ServerStatus.HEALTHY))
                uow.servers.save(server)
            backup_id = payload["backup_id"]
            message = f"Backup {backup_id} completed." if location else f"Backup {backup_id} failed: {failure}"
            uow.events.add(server.id, now, message)
            if location and backup is not None and backup.backup_type is BackupType.AUTOMATED:
                unused += _apply_retention(deps, uow, server)
        uow.commit()
    remove_files(deps, unused)


def _job_backup(uow: UnitOfWork, payload: dict) -> Backup | None:
    return uow.backups.get(payload["account_id"], payload["region"], payload["backup_id"])


def _apply_retention(deps: Dependencies, uow: UnitOfWork, server: Server) -> list[str | None]:
    """Keep the newest ``BackupRetentionCount`` good automated backups of the server; delete the others."""
    keep = max(1, int(server.settings.get("BackupRetentionCount") or 1))
    automated = [
        b
        for b in uow.backups.list(server.account_id, server.region, server.name)  # newest first
        if b.server_id == server.id
        and b.backup_type is BackupType.AUTOMATED
        and b.status is not BackupStatus.IN_PROGRESS
    ]
    newest_good = [b.id for b in automated if b.status is BackupStatus.OK][:keep]
    unused, deleted = [], []
    for backup in automated:
        if backup.id not in newest_good:
            unused.append(_forget(uow, backup))
            deleted.append(backup.id)
    if deleted:
        uow.events.add(
            server.id,
            deps.clock.now(),
            f"Deleted automated backup(s) beyond the retention count of {keep}: {', '.join(deleted)}.",
        )
    return unused


def forget_server_backups(uow: UnitOfWork, server: Server) -> list[str | None]:
    """At DeleteServer: automated backups go with the server, manual ones stay (as on AWS).

    Returns the stored files to remove once the transaction is committed.
    """
    unused = []
    for backup in uow.backups.list(server.account_id, server.region, server.name):
        if backup.server_id != server.id:
            continue
        if backup.backup_type is BackupType.AUTOMATED:
            unused.append(_forget(uow, backup))
        elif backup.status is BackupStatus.IN_PROGRESS:
            # Its job goes with the server's rows: the backup would never finish.
            backup.status = BackupStatus.FAILED
            backup.status_description = "The server was deleted before the backup completed."
            uow.backups.save(backup)
    return unused


def _forget(uow: UnitOfWork, backup: Backup) -> str | None:
    uow.backups.delete(backup.id)
    uow.tags.delete_all(backup.arn)
    return backup.location


def remove_files(deps: Dependencies, locations) -> None:
    """After the commit that forgot them: a crash in between leaves an orphan file, never a dangling row."""
    for location in locations:
        if location:
            try:
                deps.backup_storage.delete(location)
            except OSError:
                log.exception("could not remove backup file %s", location)
