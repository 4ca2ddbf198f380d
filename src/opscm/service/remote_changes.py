"""Node changes on a remote engine (Chef Infra Server, Puppet Server CA).

The request is recorded first (association IN_PROGRESS, the name claimed, a job holding
everything needed to ask again), then the backend is asked at once, outside any transaction.
A healthy backend answers before the waiter's first poll; one that is down or slow leaves the
job to the runner, which asks again with backoff until the answer is final, or gives up after
``Limits.remote_retry_seconds`` (FAILED, with the reason in DescribeEvents). The engine's call
converges when repeated (the client already exists with this key, the certificate is signed),
so a restart in the middle finishes the change.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from opscm.domain.associations import Association, AssociationAction, AssociationStatus
from opscm.domain.errors import DomainError
from opscm.domain.nodes import NodeClaim, NodeNamePolicy, NodeState, check_claim
from opscm.domain.servers import Server
from opscm.engines.http import BackendError, BackendUnavailable

from .context import Caller, Dependencies
from .leases import lease_kept
from .ports import Applied, Conflict, Engine, Job, NodeChange, UnitOfWork
from .server_cache import check_current

log = logging.getLogger(__name__)

NODE_CHANGE = "node-change"
MAX_BACKOFF_SECONDS = 60.0


def start(deps: Dependencies, caller: Caller, server: Server, engine: Engine, change: NodeChange, hashed: str) -> None:
    now = deps.clock.now()
    with deps.uow() as uow:
        check_current(uow, server)
        replacing = _claim(uow, server, change, hashed, now)
        association = Association(
            token_hash=hashed,
            server_id=server.id,
            node_name=change.node_name,
            action=change.action,
            status=AssociationStatus.IN_PROGRESS,
            created_at=now,
        )
        uow.associations.add(association, caller.account_id, caller.region)
        payload = {
            "token_hash": hashed,
            "action": str(change.action),
            "node_name": change.node_name,
            "request": change.request,
            "replacing": replacing,
        }
        # Leased to this request while it asks the backend; the runner takes it over after that.
        job_id = uow.jobs.add(NODE_CHANGE, server.id, now, payload, lease_seconds=deps.limits.remote_attempt_seconds)
        uow.commit()
    job = Job(job_id, NODE_CHANGE, server.id, attempts=1, payload=payload, created_at=now)
    # Renewed while the backend is asked (several calls may take longer than the lease): the
    # runner takes the job over only if this request's process dies.
    lease = deps.limits.remote_attempt_seconds
    with lease_kept(deps, job, lease, every=lease / 3):
        attempt(deps, job, server, change)


def _claim(uow: UnitOfWork, server: Server, change: NodeChange, hashed: str, now) -> bool:
    """Hold the name while the backend works; returns whether what the backend holds under this
    name may be replaced (a node in force here, or anything there when the policy is REPLACE)."""
    name = change.node_name
    associate = change.action is AssociationAction.ASSOCIATE
    state = NodeState.ASSOCIATING if associate else NodeState.DISASSOCIATING
    if associate and uow.nodes.claim(NodeClaim(server.id, name, state, hashed, None, now)):
        return server.node_name_policy is NodeNamePolicy.REPLACE
    holder = uow.nodes.get(server.id, name)
    if holder is None:
        if associate:
            raise Conflict(name)  # released meanwhile: the caller's next round claims it
        return False  # not associated through opscm: the backend decides
    check_claim(server.name, name, change.action, holder, server.node_name_policy)
    if not uow.nodes.take_over(NodeClaim(server.id, name, state, hashed, holder.ref, now), expected_token_hash=holder.token_hash):
        raise Conflict(name)
    return associate


def attempt(deps: Dependencies, job: Job, server: Server | None = None, change: NodeChange | None = None) -> None:
    """Ask the backend once; record the final answer, or schedule the next try."""
    payload = job.payload or {}
    if server is None:
        with deps.uow(read_only=True) as uow:
            server = uow.servers.get_by_id(job.server_id)
        if server is None:
            return _forget(deps, job)  # deleted with its server (associations and claims too)
    if change is None:
        change = NodeChange(AssociationAction(payload["action"]), payload["node_name"], payload["request"])
    engine = deps.engine_for(server)
    try:
        applied = engine.apply_change(server, change, bool(payload.get("replacing")))
    except BackendUnavailable as error:
        age = deps.clock.now() - job.created_at if job.created_at else timedelta(0)
        if age.total_seconds() >= deps.limits.remote_retry_seconds:
            reason = f"{error.reason}; gave up after {int(age.total_seconds())} s of retries"
            return _finish(deps, job, server, change, failure=reason)
        return _retry(deps, job, server, change, error.reason)
    except (BackendError, DomainError) as error:
        return _finish(deps, job, server, change, failure=getattr(error, "reason", None) or error.message)
    except Exception:  # noqa: BLE001 - an adapter bug must end the change, not leave it IN_PROGRESS
        log.exception("node change %s of %s on server %s failed", change.action, change.node_name, server.id)
        return _finish(deps, job, server, change, failure="an internal error of opscm (see its log)")
    _finish(deps, job, server, change, applied=applied)


def _finish(
    deps: Dependencies,
    job: Job,
    server: Server,
    change: NodeChange,
    *,
    applied: Applied | None = None,
    failure: str | None = None,
) -> None:
    hashed = job.payload["token_hash"]
    name, associate = change.node_name, change.action is AssociationAction.ASSOCIATE
    now = deps.clock.now()
    with deps.uow() as uow:
        association = uow.associations.get(hashed)
        ending = association is not None and association.status is AssociationStatus.IN_PROGRESS
        if ending:
            if applied is not None:
                association.status = AssociationStatus.SUCCESS
                association.engine_attributes = applied.engine_attributes
            else:
                association.status, association.status_reason = AssociationStatus.FAILED, failure
                operation = "AssociateNode" if associate else "DisassociateNode"
                uow.events.add(server.id, now, f"{operation} for node {name} failed: {failure}")
            uow.associations.save(association)
            holder = uow.nodes.get(server.id, name)
            if holder is not None and holder.token_hash == hashed:
                if associate == (applied is not None):  # associated, or a disassociation that failed
                    ref = applied.ref if applied is not None else holder.ref
                    uow.nodes.take_over(
                        NodeClaim(server.id, name, NodeState.ASSOCIATED, hashed, ref, now), expected_token_hash=hashed
                    )
                else:
                    uow.nodes.release(server.id, name, token_hash=hashed)
        uow.jobs.finish(job.id, error=failure)
        uow.commit()
    if ending:  # not when a job run again after a crash finds the change already ended
        deps.telemetry.node_changed(server.engine.engine, change.action, "failed" if failure else "success", applied)


def _retry(deps: Dependencies, job: Job, server: Server, change: NodeChange, reason: str) -> None:
    # 1, 2, 4 ... 60 s, with jitter so that a fleet does not come back in step.
    delay = min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, job.attempts - 1)) * random.uniform(0.8, 1.2)
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.jobs.retry(job.id, run_after=now + timedelta(seconds=delay), error=reason)
        if job.attempts == 1:
            uow.events.add(
                server.id, now, f"The backend of server {server.name} did not take node {change.node_name} yet "
                f"({reason}); opscm keeps trying."
            )
        uow.commit()


def _forget(deps: Dependencies, job: Job) -> None:
    with deps.uow() as uow:
        uow.jobs.finish(job.id)
        uow.commit()
