"""Work that outlives a request: making a server's engine, deleting a server.

Each job is a row committed with the request that asked for it, so a restart resumes it.
"""

from __future__ import annotations

import logging

from opscm.domain.servers import ServerStatus

from opscm.engines.http import BackendError

from . import backups, maintenance, remote_changes, restores
from .context import Dependencies
from .ports import Job

log = logging.getLogger(__name__)


def create_server(deps: Dependencies, server_id: str, payload: dict) -> None:
    with deps.uow(read_only=True) as uow:
        server = uow.servers.get_by_id(server_id)
    if server is None or server.status is not ServerStatus.CREATING:
        return
    engine = deps.engine_for(server)
    # The slow part (keys, a backend's checks) runs outside any transaction; only storing takes the lock.
    problem = None
    try:
        store = engine.provision(server)
    except BackendError as error:
        # The server exists; its backend is not usable yet: health checks will tell when it is.
        store, problem = (lambda uow, created: None), error.reason
    with deps.uow() as uow:
        server = uow.servers.get_by_id(server_id)
        if server is None or server.status is not ServerStatus.CREATING:
            return  # deleted meanwhile
        store(uow, server)
        server.finish_creation()
        if problem:
            server.status, server.status_reason = ServerStatus.UNHEALTHY, problem
            message = f"Server {server.name} is online but UNHEALTHY: {problem}."
        else:
            message = f"Server {server.name} is online and HEALTHY."
        uow.servers.save(server)
        uow.events.add(server.id, deps.clock.now(), message)
        uow.commit()


def delete_server(deps: Dependencies, server_id: str, payload: dict) -> None:
    with deps.uow() as uow:
        server = uow.servers.get_by_id(server_id)
        if server is None:
            return
        deps.engine_for(server).destroy(uow, server)
        uow.tags.delete_all(server.arn)
        # Automated backups go with the server, manual ones stay (as on AWS).
        unused_files = backups.forget_server_backups(uow, server)
        # Certificates, clients, associations and jobs of the server go with it (ON DELETE CASCADE).
        uow.servers.delete(server.id)
        uow.commit()
    deps.recent_answers.forget_server(server.id)
    backups.remove_files(deps, unused_files)


JOB_KINDS = {
    "create-server": create_server,
    "delete-server": delete_server,
    "maintenance": maintenance.run_maintenance,
    "create-backup": backups.run_backup,
    "restore-server": restores.run_restore,
}


def run_job(deps: Dependencies, job: Job) -> None:
    """Run one claimed job to its end; a failure is recorded on the job and the server."""
    if job.kind == remote_changes.NODE_CHANGE:
        remote_changes.attempt(deps, job)  # finishes or reschedules its job itself
        return
    try:
        JOB_KINDS[job.kind](deps, job.server_id, job.payload or {})
    except Exception as error:  # noqa: BLE001 - a job must end in a definite state
        log.exception("job %s (%s) for server %s failed", job.id, job.kind, job.server_id)
        _fail(deps, job, backups.failure_reason(error))
        return
    with deps.uow() as uow:
        uow.jobs.finish(job.id)
        uow.commit()


def _fail(deps: Dependencies, job: Job, reason: str) -> None:
    with deps.uow() as uow:
        uow.jobs.finish(job.id, error=reason)
        server = uow.servers.get_by_id(job.server_id)
        if server is not None:
            server.fail(f"{job.kind} failed: {reason}")
            uow.servers.save(server)
            uow.events.add(server.id, deps.clock.now(), f"{job.kind} failed: {reason}")
        uow.commit()
