"""Health checks: each settled server asks its engine, and moves between HEALTHY and UNHEALTHY."""

from __future__ import annotations

from opscm.domain.servers import ServerStatus

from .context import Dependencies

CHECKED = (ServerStatus.HEALTHY, ServerStatus.UNHEALTHY)


def check_all(deps: Dependencies) -> int:
    """Run one round of checks; returns how many servers changed state."""
    changed = 0
    with deps.uow() as uow:
        for server in uow.servers.list_all():
            if server.status not in CHECKED:
                continue
            problem = deps.engine_for(server.engine.engine).check_health(uow, server)
            wanted = ServerStatus.UNHEALTHY if problem else ServerStatus.HEALTHY
            if server.status is wanted:
                continue
            server.status = wanted
            server.status_reason = problem
            uow.servers.save(server)
            message = f"Server {server.name} is UNHEALTHY: {problem}." if problem else f"Server {server.name} is HEALTHY again."
            uow.events.add(server.id, deps.clock.now(), message)
            changed += 1
        uow.commit()
    return changed
