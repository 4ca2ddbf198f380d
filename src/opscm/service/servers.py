"""CreateServer, DescribeServers, DeleteServer."""

from __future__ import annotations

import uuid

from opscm.domain.engine_attributes import attribute_map
from opscm.domain.errors import AlreadyExists, LimitExceeded, NotFound, ValidationFailed
from opscm.domain.nodes import BACKEND, NODE_NAME_POLICY, OPSCM_CREATE_ATTRIBUTES, parse_policy
from opscm.domain.servers import Server, ServerStatus, choose_engine
from opscm.domain.tags import check_tag_count, tag_pairs

from . import snapshots
from .context import Caller, Dependencies
from .ports import UnitOfWork
from .starter_kits import starter_kit_attribute
from .views import described, server_view

# Members of CreateServerRequest that DescribeServers echoes back unchanged.
ECHOED_SETTINGS = (
    "AssociatePublicIpAddress",
    "BackupRetentionCount",
    "CustomDomain",
    "DisableAutomatedBackup",
    "InstanceProfileArn",
    "InstanceType",
    "KeyPair",
    "PreferredBackupWindow",
    "PreferredMaintenanceWindow",
    "SecurityGroupIds",
    "ServiceRoleArn",
    "SubnetIds",
)
DEFAULT_SETTINGS = {
    "AssociatePublicIpAddress": True,
    "BackupRetentionCount": 1,
    "DisableAutomatedBackup": False,
    "PreferredBackupWindow": "08:00",
    "PreferredMaintenanceWindow": "Mon:08:00",
}
CUSTOM_DOMAIN_MEMBERS = ("CustomDomain", "CustomCertificate", "CustomPrivateKey")


def create_server(deps: Dependencies, caller: Caller, params: dict) -> dict:
    # With BackupId, the engine, its state and the settings not given come from the backup.
    source = snapshots.backup_source(deps, caller, params)
    if source:
        choice = source.engine
    else:
        choice = choose_engine(params["Engine"], params.get("EngineModel"), params.get("EngineVersion"))
    given = [m for m in CUSTOM_DOMAIN_MEMBERS if params.get(m)]
    if given and len(given) != len(CUSTOM_DOMAIN_MEMBERS):
        raise ValidationFailed("CustomDomain, CustomCertificate and CustomPrivateKey must be given together.")
    opscm, engine_attributes = _split_attributes(params.get("EngineAttributes"))
    inherited = source.settings if source else {}
    settings = {**DEFAULT_SETTINGS, **inherited, **{k: params[k] for k in ECHOED_SETTINGS if k in params}}
    server = Server(
        id=str(uuid.uuid4()),
        account_id=caller.account_id,
        region=caller.region,
        name=params["ServerName"],
        engine=choice,
        status=ServerStatus.CREATING,
        created_at=deps.clock.now(),
        endpoint=params.get("CustomDomain") or deps.endpoint_host,
        settings=settings,
        backend=opscm.get(BACKEND) or (source.backend if source else None),
        node_name_policy=parse_policy(opscm.get(NODE_NAME_POLICY) or "UNIQUE"),
    )
    tags = tag_pairs(params.get("Tags"))
    check_tag_count((), (key for key, _ in tags))
    engine = deps.engine_for_new(server)
    if engine.endpoint and not params.get("CustomDomain"):
        server.endpoint = engine.endpoint  # nodes talk to the backend's host
    # The cheap refusals first: a CA key costs a second of CPU.
    with deps.uow(read_only=True) as uow:
        _check_room(deps, uow, caller, server.name)
    # Keys (a CA, a pivotal key) are made before the transaction opens: it holds the write lock.
    if source:
        provisioned = source.provisioned(engine, server)
    else:
        provisioned = engine.prepare(server, engine_attributes)
    server.engine_data = dict(provisioned.engine_data)
    with deps.uow() as uow:
        _check_room(deps, uow, caller, server.name)
        uow.servers.add(server)
        provisioned.store(uow)
        uow.tags.put(server.arn, tags)
        uow.events.add(server.id, deps.clock.now(), f"Server {server.name} creation started ({choice.engine}).")
        if source:
            uow.events.add(server.id, deps.clock.now(), f"Server {server.name} is made from backup {source.backup.id}.")
        uow.jobs.add("create-server", server.id, deps.clock.now())
        uow.commit()
    deps.wake_jobs()
    kit = starter_kit_attribute(deps, server, provisioned.once, engine.describe(server))
    return {"Server": server_view(server, [*provisioned.once, kit])}


def _split_attributes(attributes) -> tuple[dict[str, str], list[dict[str, str]]]:
    """opscm's own attributes (backend, node name policy) apart from the engine's."""
    attributes = list(attributes or ())
    ours = [a for a in attributes if a.get("Name") in OPSCM_CREATE_ATTRIBUTES]
    return attribute_map(ours, allowed=OPSCM_CREATE_ATTRIBUTES), [a for a in attributes if a not in ours]


def _check_room(deps: Dependencies, uow: UnitOfWork, caller: Caller, name: str) -> None:
    if uow.servers.get(caller.account_id, caller.region, name) is not None:
        raise AlreadyExists(f"A server named {name} already exists.")
    if uow.servers.count(caller.account_id, caller.region) >= deps.limits.servers_per_region:
        raise LimitExceeded(f"You have reached the maximum of {deps.limits.servers_per_region} servers in {caller.region}.")


def describe_servers(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow(read_only=True, lean=True) as uow:
        if params.get("ServerName"):
            servers = [require_server(uow, caller, params["ServerName"])]
        else:
            servers = [s for s in uow.servers.list(caller.account_id, caller.region) if caller.may_touch(s.name)]
    scope = f"DescribeServers:{caller.account_id}:{caller.region}:{params.get('ServerName', '')}"
    page, next_token = deps.page_tokens.page(servers, params, scope)
    return {"Servers": [described(deps, s) for s in page], "NextToken": next_token}


def delete_server(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        server.begin_deletion()
        uow.servers.save(server)
        uow.jobs.add("delete-server", server.id, deps.clock.now())
        uow.commit()
    deps.wake_jobs()
    return {}


def require_server(uow, caller: Caller, name: str) -> Server:
    server = uow.servers.get(caller.account_id, caller.region, name) if caller.may_touch(name) else None
    if server is None:
        raise NotFound()
    return server
