"""AssociateNode, DescribeNodeAssociationStatus, DisassociateNode."""

from __future__ import annotations

import base64
import hashlib
import secrets

from opscm.domain.associations import Association, AssociationAction
from opscm.domain.errors import DomainError, NotFound
from opscm.domain.servers import ASSOCIATION_STATES

from .context import Caller, Dependencies
from .servers import require_server

# AWS's tokens are 65 random bytes in base64; only their hash is stored.
TOKEN_BYTES = 65


def associate_node(deps: Dependencies, caller: Caller, params: dict) -> dict:
    return _change_node(deps, caller, params, AssociationAction.ASSOCIATE)


def disassociate_node(deps: Dependencies, caller: Caller, params: dict) -> dict:
    return _change_node(deps, caller, params, AssociationAction.DISASSOCIATE)


def _change_node(deps: Dependencies, caller: Caller, params: dict, action: AssociationAction) -> dict:
    operation = action.name.title() + "Node"
    try:
        return _apply_change(deps, caller, params, action, operation)
    except EngineRefusal as refusal:
        # The request's transaction is gone; the failure is kept as an event of the server.
        with deps.uow() as uow:
            uow.events.add(
                refusal.server_id,
                deps.clock.now(),
                f"{operation} for node {params['NodeName']} failed: {refusal.error.message}",
            )
            uow.commit()
        raise refusal.error from None


class EngineRefusal(Exception):
    def __init__(self, server_id: str, error: DomainError):
        self.server_id = server_id
        self.error = error


def _apply_change(deps: Dependencies, caller: Caller, params: dict, action: AssociationAction, operation: str) -> dict:
    node_name = params["NodeName"]
    token = base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        server.require_status(*ASSOCIATION_STATES, action=operation)
        engine = deps.engine_for(server.engine.engine)
        change = engine.associate if action is AssociationAction.ASSOCIATE else engine.disassociate
        try:
            outcome = change(uow, server, node_name, params.get("EngineAttributes"))
        except DomainError as error:
            raise EngineRefusal(server.id, error) from None
        association = Association(
            token_hash=token_hash(token),
            server_id=server.id,
            node_name=node_name,
            action=action,
            status=outcome.status,
            created_at=deps.clock.now(),
            engine_attributes=list(outcome.engine_attributes),
            status_reason=outcome.reason,
        )
        uow.associations.add(association, caller.account_id, caller.region)
        uow.commit()
    return {"NodeAssociationStatusToken": token}


def describe_node_association_status(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow(read_only=True) as uow:
        server = require_server(uow, caller, params["ServerName"])
        association = uow.associations.get(token_hash(params["NodeAssociationStatusToken"]))
        if association is None or association.server_id != server.id:
            raise NotFound()
    return {"NodeAssociationStatus": str(association.status), "EngineAttributes": association.engine_attributes}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
