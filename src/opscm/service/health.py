"""Health checks: each settled server asks its engine, and moves between HEALTHY and UNHEALTHY.

The engines are asked outside any transaction (a remote engine's check is a network call);
only a change of state is written, in a short transaction of its own.
"""

from __future__ import annotations

import logging

from opscm.domain.errors import DomainError
from opscm.domain.servers import Server, ServerStatus
from opscm.engines.http import BackendError

from .context import Dependencies

log = logging.getLogger(__name__)

CHECKED = (ServerStatus.HEALTHY, ServerStatus.UNHEALTHY)


def check_all(deps: Dependencies) -> int:
    """Run one round of checks; returns how many servers changed state."""
    with deps.uow(read_only=True) as uow:
        servers = [s for s in uow.servers.list_all() if s.status in CHECKED]
    return sum(check_one(deps, server) for server in servers)


def problem_of(deps: Dependencies, server: Server) -> str | None:
    """Why the server's engine does not work, or None. Short and safe to show to tenants."""
    try:
        return deps.engine_for(server).check_health(server)
    except (BackendError, DomainError) as error:
        return getattr(error, "reason", None) or error.message
    except Exception:  # noqa: BLE001 - a failing check is a finding, not a crash of the checker
        log.exception("health check of server %s failed", server.id)
        return "the engine could not be checked (see opscm's log)"


def _refreshed(deps: Dependencies, server: Server) -> dict | None:
    """What a working engine tells anew (a backend's CA certificate once it answers)."""
    try:
        learnt = deps.engine_for(server).refresh(server)
    except (BackendError, DomainError):
        return None
    return learnt if learnt and any(server.engine_data.get(k) != v for k, v in learnt.items()) else None


def check_one(deps: Dependencies, server: Server) -> bool:
    """Check one server and record a change of state; True when it changed."""
    problem = problem_of(deps, server)
    learnt = None if problem else _refreshed(deps, server)
    wanted = ServerStatus.UNHEALTHY if problem else ServerStatus.HEALTHY
    if server.status is wanted and server.status_reason == problem and not learnt:
        return False
    with deps.uow() as uow:
        current = uow.servers.get_by_id(server.id)
        # Only a settled server moves: a backup or a deletion may have started meanwhile.
        if current is None or current.status not in CHECKED:
            return False
        changed = current.status is not wanted
        current.status, current.status_reason = wanted, problem
        if learnt:
            current.engine_data.update(learnt)
        uow.servers.save(current)
        if changed:
            message = f"Server {current.name} is UNHEALTHY: {problem}." if problem else f"Server {current.name} is HEALTHY again."
            uow.events.add(current.id, deps.clock.now(), message)
        uow.commit()
    return changed
