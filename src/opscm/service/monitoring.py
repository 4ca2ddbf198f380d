"""What the store tells about the state of things, for monitoring (``/metrics``): every server
with its status and, where opscm keeps its CA, the soonest certificate expiry and the CRL's date
(asked of the server's engine), and the jobs by state.

Read when asked, so every process of opscm answers the same, whichever did the work.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from opscm.domain.errors import DomainError

from .context import Dependencies
from .ports import CaStatus

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerFigures:
    account_id: str
    region: str
    name: str
    engine: str
    status: str
    certificates: CaStatus | None


@dataclasses.dataclass(frozen=True)
class StoreFigures:
    now: datetime
    servers: list[ServerFigures]
    jobs_by_state: dict[str, int]


def store_figures(deps: Dependencies) -> StoreFigures:
    with deps.uow(read_only=True) as uow:
        servers = uow.servers.list_all()
        jobs = uow.jobs.count_by_state()
    figures = [
        ServerFigures(s.account_id, s.region, s.name, s.engine.engine, str(s.status), _certificates(deps, s)) for s in servers
    ]
    return StoreFigures(deps.clock.now(), figures, jobs)


def _certificates(deps: Dependencies, server) -> CaStatus | None:
    try:
        return deps.engine_for(server).ca_status(server)
    except DomainError:
        return None  # its backend is no longer configured: nothing of it to tell
    except Exception:  # noqa: BLE001 - one unreadable CA must not take every figure away
        log.exception("the certificate status of server %s could not be read", server.id)
        return None
