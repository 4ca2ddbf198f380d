"""What the web console reads: servers, one server's nodes, events and backups, certificates
that expire soon, associations per hour, nodes found by name.

Read-only, in read-only units of work; what only an engine knows (a certificate's end of
validity, its revocation) comes through the engine. A viewer sees its own account, and of it
only the servers its access key may touch; any other server is NotFound, as in the API.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta

from opscm.domain.associations import AssociationAction, AssociationStatus
from opscm.domain.backups import Backup
from opscm.domain.errors import InvalidState, NotFound
from opscm.domain.nodes import NodeClaim
from opscm.domain.servers import Server
from opscm.domain.windows import next_window_start

from .context import Caller, Dependencies
from .ports import Engine, Event, NodeCredential, UnitOfWork
from .servers import require_server

EXPIRY_HORIZON = timedelta(days=30)
CHART_HOURS = 24
EVENTS_SHOWN = 50
REVOKED_SHOWN = 50
MATCHES_PER_SERVER = 20
EXPIRING_SHOWN = 500


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Who looks: an access key's account and server names, in every region opscm serves."""

    account_id: str
    server_names: tuple[str, ...] | None
    regions: tuple[str, ...]

    def caller(self, region: str) -> Caller:
        if region not in self.regions:
            raise NotFound()
        return Caller(self.account_id, region, self.server_names)


@dataclasses.dataclass(frozen=True)
class ServerSummary:
    server: Server
    node_count: int
    last_backup: Backup | None
    next_maintenance: datetime | None


@dataclasses.dataclass(frozen=True)
class NodeRow:
    claim: NodeClaim
    credential: NodeCredential | None  # None: the server's backend is gone from the configuration


@dataclasses.dataclass(frozen=True)
class NodeQuery:
    """One page of a server's nodes: names containing ``contains``, after ``after`` or before ``before``."""

    contains: str | None = None
    after: str | None = None
    before: str | None = None
    size: int = 50


@dataclasses.dataclass(frozen=True)
class NodePage:
    rows: list[NodeRow]
    total: int  # nodes matching the query, on every page
    has_previous: bool
    has_next: bool


@dataclasses.dataclass(frozen=True)
class HourCount:
    start: datetime
    associated: int
    disassociated: int
    failed: int

    @property
    def total(self) -> int:
        return self.associated + self.disassociated + self.failed


@dataclasses.dataclass(frozen=True)
class ServerDetail:
    summary: ServerSummary
    nodes: NodePage
    revoked: list[NodeCredential]
    more_revoked: bool
    events: list[Event]
    backups: list[Backup]
    hours: list[HourCount]


@dataclasses.dataclass(frozen=True)
class Expiring:
    server: Server
    credential: NodeCredential


@dataclasses.dataclass(frozen=True)
class ExpiringList:
    items: list[Expiring]
    more: bool  # more than these expire within the horizon


@dataclasses.dataclass(frozen=True)
class ServerMatches:
    server: Server
    nodes: list[NodeRow]
    total: int
    revoked: list[NodeCredential]


def servers(deps: Dependencies, viewer: Viewer) -> list[ServerSummary]:
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        return [_summary(uow, server, now) for server in _visible(uow, viewer)]


def server_detail(deps: Dependencies, viewer: Viewer, region: str, name: str, query: NodeQuery) -> ServerDetail:
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        server = require_server(uow, viewer.caller(region), name)
        engine = _engine(deps, server)
        backups = uow.backups.list(server.account_id, server.region, server.name)
        revoked = engine.revoked_credentials(uow, server, query.contains, REVOKED_SHOWN + 1) if engine else []
        return ServerDetail(
            summary=_summary(uow, server, now, backups),
            nodes=_node_page(uow, engine, server, query),
            revoked=revoked[:REVOKED_SHOWN],
            more_revoked=len(revoked) > REVOKED_SHOWN,
            events=uow.events.latest(server.id, EVENTS_SHOWN),
            backups=backups,
            hours=_hours(uow, [server.id], now),
        )


def expiring_certificates(
    deps: Dependencies, viewer: Viewer, within: timedelta = EXPIRY_HORIZON, limit: int = EXPIRING_SHOWN
) -> ExpiringList:
    """The ``limit`` certificates in force that expire soonest within ``within`` (or have expired)."""
    before = deps.clock.now() + within
    found = []
    with deps.uow(read_only=True) as uow:
        for server in _visible(uow, viewer):
            engine = _engine(deps, server)
            if engine is not None:
                found += [Expiring(server, c) for c in engine.expiring_credentials(uow, server, before, limit + 1)]
    found.sort(key=lambda item: (item.credential.not_after, item.server.name, item.credential.node_name))
    return ExpiringList(found[:limit], len(found) > limit)


def associations_per_hour(deps: Dependencies, viewer: Viewer) -> list[HourCount]:
    with deps.uow(read_only=True) as uow:
        return _hours(uow, [server.id for server in _visible(uow, viewer)], deps.clock.now())


def find_nodes(deps: Dependencies, viewer: Viewer, text: str) -> list[ServerMatches]:
    """Nodes whose name contains ``text`` (without case), and revoked certificates too, per server."""
    found = []
    with deps.uow(read_only=True) as uow:
        for server in _visible(uow, viewer):
            engine = _engine(deps, server)
            page = _node_page(uow, engine, server, NodeQuery(contains=text, size=MATCHES_PER_SERVER))
            revoked = engine.revoked_credentials(uow, server, text, MATCHES_PER_SERVER) if engine else []
            if page.total or revoked:
                found.append(ServerMatches(server, page.rows, page.total, revoked))
    return found


def _visible(uow: UnitOfWork, viewer: Viewer) -> Iterator[Server]:
    for region in viewer.regions:
        caller = viewer.caller(region)
        yield from (server for server in uow.servers.list(viewer.account_id, region) if caller.may_touch(server.name))


def _engine(deps: Dependencies, server: Server) -> Engine | None:
    try:
        return deps.engine_for(server)
    except InvalidState:  # its backend is gone from the configuration: the server still shows
        return None


def _summary(uow: UnitOfWork, server: Server, now: datetime, backups: list[Backup] | None = None) -> ServerSummary:
    if backups is None:
        backups = uow.backups.list(server.account_id, server.region, server.name)
    window = server.settings.get("PreferredMaintenanceWindow")
    return ServerSummary(
        server=server,
        node_count=uow.nodes.count(server.id),
        last_backup=backups[0] if backups else None,  # newest first
        next_maintenance=next_window_start(window, now) if window else None,
    )


def _node_page(uow: UnitOfWork, engine: Engine | None, server: Server, query: NodeQuery) -> NodePage:
    # One more than a page tells whether there is another in that direction.
    claims = uow.nodes.page(
        server.id, after=query.after, before=query.before, contains=query.contains, limit=query.size + 1
    )
    more = len(claims) > query.size
    if query.before is not None:
        claims, has_previous, has_next = claims[-query.size :], more, True
    else:
        claims, has_previous, has_next = claims[: query.size], query.after is not None, more
    credentials = engine.credentials(uow, server, claims) if engine else [None] * len(claims)
    rows = [NodeRow(claim, credential) for claim, credential in zip(claims, credentials)]
    return NodePage(rows, uow.nodes.count(server.id, contains=query.contains), has_previous, has_next)


def _hours(uow: UnitOfWork, server_ids: list[str], now: datetime) -> list[HourCount]:
    """The last ``CHART_HOURS`` hours, the current one included, oldest first."""
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=back) for back in range(CHART_HOURS - 1, -1, -1)]
    counts: dict[datetime, collections.Counter] = {start: collections.Counter() for start in starts}
    for hour, action, status, count in uow.associations.count_by_hour(server_ids, starts[0]):
        if hour in counts:
            counts[hour][_outcome(action, status)] += count
    return [HourCount(start, c["associated"], c["disassociated"], c["failed"]) for start, c in counts.items()]


def _outcome(action: str, status: str) -> str:
    if status == AssociationStatus.FAILED:
        return "failed"
    return "disassociated" if action == AssociationAction.DISASSOCIATE else "associated"
