"""TagResource, UntagResource, ListTagsForResource on server and backup ARNs."""

from __future__ import annotations

from opscm.domain.errors import NotFound
from opscm.domain.servers import ServerStatus
from opscm.domain.tags import check_tag_count, parse_resource_arn, tag_pairs

from .context import Caller, Dependencies
from .ports import UnitOfWork


def require_resource(uow: UnitOfWork, caller: Caller, arn: str) -> str:
    """The ARN of an existing server or backup of the caller, exactly as stored; else NotFound."""
    name = parse_resource_arn(arn)
    if name is None or (name.region, name.account_id) != (caller.region, caller.account_id):
        raise NotFound()
    if name.kind == "server":
        server = uow.servers.get(caller.account_id, caller.region, name.name)
        if server is None or server.arn != arn or not caller.may_touch(server.name):
            raise NotFound()
        server.refuse_status(ServerStatus.DELETING, action="Tagging")
        return server.arn
    backup = uow.backups.get(caller.account_id, caller.region, name.name)
    if backup is None or not caller.may_touch(backup.server_name):
        raise NotFound()
    return backup.arn


def tag_resource(deps: Dependencies, caller: Caller, params: dict) -> dict:
    pairs = tag_pairs(params["Tags"])
    with deps.uow() as uow:
        arn = require_resource(uow, caller, params["ResourceArn"])
        check_tag_count((key for key, _ in uow.tags.list(arn)), (key for key, _ in pairs))
        uow.tags.put(arn, pairs)
        uow.commit()
    return {}


def untag_resource(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow() as uow:
        arn = require_resource(uow, caller, params["ResourceArn"])
        uow.tags.remove(arn, params["TagKeys"])
        uow.commit()
    return {}


def list_tags_for_resource(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow(read_only=True) as uow:
        arn = require_resource(uow, caller, params["ResourceArn"])
        tags = uow.tags.list(arn)
    page, next_token = deps.page_tokens.page(tags, params, f"ListTagsForResource:{arn}")
    return {"Tags": [{"Key": key, "Value": value} for key, value in page], "NextToken": next_token}
