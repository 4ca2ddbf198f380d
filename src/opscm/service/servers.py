"""CreateServer, DescribeServers, DeleteServer."""

from __future__ import annotations

import uuid

from opscm.domain.errors import AlreadyExists, LimitExceeded, NotFound, ValidationFailed
from opscm.domain.servers import Server, ServerStatus, choose_engine
from opscm.domain.tags import check_tag_count, tag_pairs

from . import snapshots
from .context import Caller, Dependencies
from .starter_kits import starter_kit_attribute
from .views import server_view

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
    )
    tags = tag_pairs(params.get("Tags"))
    check_tag_count((), (key for key, _ in tags))
    engine = deps.engine_for(choice.engine)
    # Keys (a CA, a pivotal key) are made before the transaction opens: it holds the write lock.
    if source:
        provisioned = source.provisioned(engine, server)
    else:
        provisioned = engine.prepare(server, params.get("EngineAttributes"))
    server.engine_data = dict(provisioned.engine_data)
    with deps.uow() as uow:
        if uow.servers.get(caller.account_id, caller.region, server.name) is not None:
            raise AlreadyExists(f"A server named {server.name} already exists.")
        if uow.servers.count(caller.account_id, caller.region) >= deps.limits.servers_per_region:
            raise LimitExceeded(
                f"You have reached the maximum of {deps.limits.servers_per_region} servers in {caller.region}."
            )
        uow.servers.add(server)
        provisioned.store(uow)
        # What DescribeServers will show (the CA certificate) goes into the starter kit.
        described = engine.describe(uow, server)
        uow.tags.put(server.arn, tags)
        uow.events.add(server.id, deps.clock.now(), f"Server {server.name} creation started ({choice.engine}).")
        if source:
            uow.events.add(server.id, deps.clock.now(), f"Server {server.name} is made from backup {source.backup.id}.")
        uow.jobs.add("create-server", server.id, deps.clock.now())
        uow.commit()
    deps.wake_jobs()
    kit = starter_kit_attribute(deps, server, provisioned.once, described)
    return {"Server": server_view(server, [*provisioned.once, kit])}


def describe_servers(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow(read_only=True) as uow:
        if params.get("ServerName"):
            servers = [require_server(uow, caller, params["ServerName"])]
        else:
            servers = [s for s in uow.servers.list(caller.account_id, caller.region) if caller.may_touch(s.name)]
        scope = f"DescribeServers:{caller.account_id}:{caller.region}:{params.get('ServerName', '')}"
        page, next_token = deps.page_tokens.page(servers, params, scope)
        views = [server_view(s, deps.engine_for(s.engine.engine).describe(uow, s)) for s in page]
    return {"Servers": views, "NextToken": next_token}


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
