"""Domain objects to the model's output structures (member names of the service model)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opscm.domain.errors import InvalidState
from opscm.domain.nodes import BACKEND, NODE_NAME_POLICY
from opscm.domain.servers import Server

from .context import Dependencies


def server_view(server: Server, engine_attributes: list[dict[str, str]]) -> dict:
    view = {
        "ServerName": server.name,
        "ServerArn": server.arn,
        "CreatedAt": server.created_at,
        "Endpoint": server.endpoint,
        "Engine": server.engine.engine,
        "EngineModel": server.engine.model,
        "EngineVersion": server.engine.version,
        "EngineAttributes": engine_attributes,
        "Status": str(server.status),
        "StatusReason": server.status_reason,
        "MaintenanceStatus": server.maintenance_status,
    }
    view.update(server.settings)
    return view


def opscm_attributes(server: Server) -> list[dict[str, str]]:
    """opscm's own attributes of a server, after the engine's."""
    attributes = [{"Name": NODE_NAME_POLICY, "Value": str(server.node_name_policy)}]
    if server.backend:
        attributes.append({"Name": BACKEND, "Value": server.backend})
    return attributes


def described(deps: Dependencies, server: Server, once: Iterable[Mapping[str, str]] = ()) -> dict:
    """The server as DescribeServers shows it; ``once``: attributes only this answer carries."""
    try:
        public = deps.engine_for(server).describe(server)
    except InvalidState:  # its backend is gone from the configuration: the server still shows
        public = []
    return server_view(server, [*map(dict, once), *public, *opscm_attributes(server)])
