"""Domain objects to the model's output structures (member names of the service model)."""

from __future__ import annotations

from opscm.domain.servers import Server


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
