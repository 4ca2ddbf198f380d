"""DescribeEvents: a server's events, newest first, paginated."""

from __future__ import annotations

from .context import Caller, Dependencies
from .servers import require_server


def describe_events(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow(read_only=True) as uow:
        server = require_server(uow, caller, params["ServerName"])
        events = uow.events.list(server.id)
    scope = f"DescribeEvents:{server.id}"
    page, next_token = deps.page_tokens.page(events, params, scope)
    views = [
        {"CreatedAt": e.created_at, "ServerName": server.name, "Message": e.message, "LogUrl": e.log_url} for e in page
    ]
    return {"ServerEvents": views, "NextToken": next_token}
