"""AssociateNode, DescribeNodeAssociationStatus, DisassociateNode.

Local engines (the built-in CA / registry) sign outside any transaction, then write the
certificate or key, the node claim and the token in ONE transaction. Remote engines (an
operator's Chef Infra Server / Puppet Server CA) record the request first (IN_PROGRESS, with
a job), are asked at once outside any transaction, and the job asks again until the change
is final (see ``remote_changes``).

A change is written as *steps* (a generator): it yields the work that may block (the
signature: ``Engine.prepare_change`` when ``prepare_blocks``) and is sent its result. In a
thread, :func:`~opscm.service.steps.run_steps` runs that work in place; on the event loop, the ASGI app runs it in a
thread and goes on with other requests meanwhile.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from collections.abc import Callable, Generator
from typing import Any

from opscm.domain.associations import Association, AssociationAction, AssociationStatus
from opscm.domain.errors import DomainError, InvalidState, NotFound
from opscm.domain.nodes import NodeClaim, NodeNamePolicy, NodeState, check_claim, check_not_reserved
from opscm.domain.servers import ASSOCIATION_STATES, Server

from . import remote_changes
from .context import Caller, Dependencies
from .ports import Applied, Conflict, Engine, NodeChange, RepeatableAssociation, StaleServer
from .server_cache import check_current
from .steps import Brief, Steps, run_steps

# AWS's tokens are 65 random bytes in base64; only their hash is stored.
TOKEN_BYTES = 65
# Compare-and-set rounds before a change that keeps losing to concurrent ones is refused.
MAX_ATTEMPTS = 8


def associate_node_steps(deps: Dependencies, caller: Caller, params: dict) -> Steps:
    return _change_node(deps, caller, params, AssociationAction.ASSOCIATE)


def disassociate_node_steps(deps: Dependencies, caller: Caller, params: dict) -> Steps:
    return _change_node(deps, caller, params, AssociationAction.DISASSOCIATE)


def associate_node(deps: Dependencies, caller: Caller, params: dict) -> dict:
    return run_steps(associate_node_steps(deps, caller, params))


def disassociate_node(deps: Dependencies, caller: Caller, params: dict) -> dict:
    return run_steps(disassociate_node_steps(deps, caller, params))


def change_is_light(deps: Dependencies, caller: Caller, params: dict) -> bool:
    """Whether this node change needs nothing but the store: its server is known without a read
    (cached), and its engine is local (no network call)."""
    if not caller.may_touch(params["ServerName"]):
        return False
    server = deps.server_cache.peek(caller.account_id, caller.region, params["ServerName"])
    if server is None:
        return False
    try:
        return not deps.engine_for(server).remote
    except DomainError:  # its backend is gone: the handler says so, from a thread
        return False


def describe_node_association_status(deps: Dependencies, caller: Caller, params: dict) -> dict:
    hashed = token_hash(params["NodeAssociationStatusToken"])
    association = deps.recent_answers.take(hashed)
    if association is None:
        with deps.uow(read_only=True, lean=True) as uow:
            association = uow.associations.get(hashed)
    server = _cached_server(deps, caller, params["ServerName"])
    if association is not None and association.server_id != server.id:
        # A server deleted and made again under the same name since it was cached.
        server = _cached_server(deps, caller, params["ServerName"], reload=True)
    if association is None or association.server_id != server.id:
        raise NotFound()
    return {"NodeAssociationStatus": str(association.status), "EngineAttributes": association.engine_attributes}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _cached_server(deps: Dependencies, caller: Caller, name: str, *, reload: bool = False) -> Server:
    server = None
    if caller.may_touch(name):
        lookup = deps.server_cache.reload if reload else deps.server_cache.get
        server = lookup(caller.account_id, caller.region, name)
    if server is None:
        raise NotFound()
    return server


def _change_node(deps: Dependencies, caller: Caller, params: dict, action: AssociationAction) -> Steps:
    operation = action.name.title() + "Node"
    node_name = params["NodeName"]
    server = _cached_server(deps, caller, params["ServerName"])
    if server.status not in ASSOCIATION_STATES:
        # Never refused on a cached row's word: the server may be HEALTHY again (its backup or
        # maintenance just ended, maybe in another worker), and a boot storm's nodes are waiting.
        server = _cached_server(deps, caller, params["ServerName"], reload=True)
    token = base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")
    for _ in range(MAX_ATTEMPTS):
        server.require_status(*ASSOCIATION_STATES, action=operation)
        engine = deps.engine_for(server)
        try:
            # Both ways: disassociating a reserved name would delete the server's own identity on
            # its engine (a backend's validator or admin client, puppetserver's certificate).
            check_not_reserved(server.name, node_name, (*server.own_names(), *engine.reserved_names(server)))
            change = engine.vet(server, action, node_name, params.get("EngineAttributes"))
            if engine.remote:
                remote_changes.start(deps, caller, server, engine, change, token_hash(token))
            else:
                yield from _change_locally(deps, caller, server, engine, change, token_hash(token))
            return {"NodeAssociationStatusToken": token}
        except StaleServer:
            server = _cached_server(deps, caller, params["ServerName"], reload=True)
        except Conflict:
            continue  # a concurrent change of this name won the race: look again
        except DomainError as refusal:
            _record_refusal(deps, server, operation, node_name, refusal)  # first: it may raise WouldWait
            deps.telemetry.node_changed(server.engine.engine, action, "refused")
            raise
    raise InvalidState(f"Server {server.name} kept changing while node {node_name} was being changed; try again.")


def _record_refusal(deps: Dependencies, server: Server, operation: str, node_name: str, refusal: DomainError) -> None:
    """A refused change is kept as an event of the server (the request's transaction is gone)."""
    with deps.uow() as uow:
        if uow.servers.current(server.id) is not None:
            uow.events.add(server.id, deps.clock.now(), f"{operation} for node {node_name} failed: {refusal.message}")
            uow.commit()


def _holder(deps: Dependencies, server: Server, node_name: str) -> NodeClaim | None:
    with deps.uow(read_only=True, lean=True) as uow:
        return uow.nodes.get(server.id, node_name)


def _repeated(server: Server, engine: Engine, change: NodeChange, holder: NodeClaim | None) -> Applied | None:
    """What the association in force applied, when this AssociateNode asks for the same key on the
    UNIQUE policy: the aws CLI repeats a request whose answer was lost, and the node, given a
    refusal, would keep a name held by a key it never installed."""
    if (
        change.action is not AssociationAction.ASSOCIATE
        or holder is None
        or holder.state is not NodeState.ASSOCIATED
        or server.node_name_policy is not NodeNamePolicy.UNIQUE
        or not isinstance(engine, RepeatableAssociation)
    ):
        return None
    return engine.applied_if_held(server, change, holder)


def _record(deps: Dependencies, caller: Caller, server: Server, change: NodeChange, hashed: str, applied: Applied) -> None:
    """A repeated association's own token, answered with what the one in force applied."""
    now = deps.clock.now()
    with deps.uow(lean=True) as uow:
        check_current(uow, server)
        association = _succeeded(server, change, hashed, now, applied)
        uow.associations.add(association, caller.account_id, caller.region)
        uow.commit()
    deps.recent_answers.put(association)


def _succeeded(server: Server, change: NodeChange, hashed: str, now, applied: Applied) -> Association:
    return Association(
        token_hash=hashed,
        server_id=server.id,
        node_name=change.node_name,
        action=change.action,
        status=AssociationStatus.SUCCESS,
        created_at=now,
        engine_attributes=applied.engine_attributes,
    )


def _change_locally(
    deps: Dependencies, caller: Caller, server: Server, engine: Engine, change: NodeChange, hashed: str
) -> Generator[Callable[[], Any], Any, None]:
    action, name = change.action, change.node_name
    holder = None
    for attempt in range(MAX_ATTEMPTS):
        # An association first assumes the name is free (the common case costs no read).
        if attempt or action is AssociationAction.DISASSOCIATE:
            holder = _holder(deps, server, name)
            if action is AssociationAction.DISASSOCIATE and holder is None:
                raise NotFound(f"Node {name} is not associated with server {server.name}.")
            repeated = _repeated(server, engine, change, holder)
            if repeated is not None:
                _record(deps, caller, server, change, hashed, repeated)
                return
            check_claim(server.name, name, action, holder, server.node_name_policy)
        if engine.prepare_blocks:
            step = functools.partial(engine.prepare_change, server, change, holder)
            # A new name's change is one signature; replacing or removing a holder's also revokes
            # (a new CRL, as long as the revocations).
            prepared = yield Brief(step) if holder is None and action is AssociationAction.ASSOCIATE else step
        else:
            prepared = engine.prepare_change(server, change, holder)
        now = deps.clock.now()
        try:
            with deps.uow(lean=True) as uow:
                # The name first: a concurrent change of it waits here, or finds it taken.
                claim = NodeClaim(server.id, name, NodeState.ASSOCIATED, hashed, prepared.ref, now)
                if action is AssociationAction.ASSOCIATE and holder is None:
                    # The common case: the server's check goes with the claim, in one statement.
                    taken = uow.nodes.claim(claim, server_revision=server.revision)
                    if not taken:
                        check_current(uow, server)  # a changed server, else the name is held
                else:
                    check_current(uow, server)
                    if action is AssociationAction.DISASSOCIATE:
                        taken = uow.nodes.release(server.id, name, token_hash=holder.token_hash)
                    else:
                        taken = uow.nodes.take_over(claim, expected_token_hash=holder.token_hash)
                if not taken:
                    raise Conflict(name)
                applied = engine.commit_change(uow, server, prepared)
                association = _succeeded(server, change, hashed, now, applied)
                uow.associations.add(association, caller.account_id, caller.region)
                uow.commit()
            deps.recent_answers.put(association)
            deps.telemetry.node_changed(server.engine.engine, action, "success", applied)
            return
        except Conflict:
            continue
    raise InvalidState(f"Node {name} is being changed by other requests at the same time; try again.")
