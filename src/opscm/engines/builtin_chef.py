"""The built-in Chef engine: a registry of client public keys per server and organization.

It has no Chef server API in front of it; for nodes that run chef-client, bind the server to a
``chef-server`` backend (a Chef Infra Server, or goiardi) instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime

from opscm.domain.associations import AssociationAction
from opscm.domain.engine_attributes import attribute_map
from opscm.domain.errors import ValidationFailed
from opscm.domain.nodes import NodeClaim
from opscm.domain.passwords import check_admin_password, generate_admin_password
from opscm.domain.servers import Server
from opscm.pki import generate_rsa_key, hash_password
from opscm.pki.keys import checked_key_fingerprint, public_key_fingerprint
from opscm.service.ports import Applied, CaStatus, Clock, NodeChange, Provisioned, UnitOfWork, UnitOfWorkFactory

from .chef_nodes import checked_public_key, is_usable_key, vet_chef_change
from .credentials import KeyFingerprints
from .ports import ChefClient, ChefRegistry

PIVOTAL_KEY = "CHEF_AUTOMATE_PIVOTAL_KEY"
ADMIN_PASSWORD = "CHEF_AUTOMATE_ADMIN_PASSWORD"
RESET_PIVOTAL_KEY = "CHEF_PIVOTAL_KEY"
# Chef Server's own user and the organization's validator: never a node's name.
RESERVED_CLIENTS = ("pivotal", "default-validator")


@dataclasses.dataclass(frozen=True)
class PreparedChange:
    change: NodeChange
    now: datetime
    ref: str | None  # the new key's fingerprint


@dataclasses.dataclass(frozen=True)
class RestorePlan:
    clients: list[ChefClient]
    engine_data: dict


class BuiltinChef(KeyFingerprints):
    remote = False
    prepare_blocks = False  # a key's fingerprint
    engine = "ChefAutomate"
    endpoint = None

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        registry: Callable[..., ChefRegistry],
        clock: Clock,
        pivotal_key_bits: int = 2048,
    ):
        self._uow = uow
        self._registry = registry
        self._clock = clock
        self._pivotal_key_bits = pivotal_key_bits

    def prepare(self, server: Server, attributes) -> Provisioned:
        values = attribute_map(attributes, allowed=(PIVOTAL_KEY, ADMIN_PASSWORD))
        once = []
        if values.get(PIVOTAL_KEY):
            # The user keeps the private key; opscm only ever sees the public one.
            public_key = checked_public_key(values[PIVOTAL_KEY], PIVOTAL_KEY)
        else:
            private_key, public_key = generate_rsa_key(self._pivotal_key_bits)
            once.append({"Name": PIVOTAL_KEY, "Value": private_key})
        password = values.get(ADMIN_PASSWORD)
        if password is None:
            password = generate_admin_password()
        else:
            check_admin_password(ADMIN_PASSWORD, password)
        once.append({"Name": ADMIN_PASSWORD, "Value": password})
        return Provisioned(
            once=once,
            engine_data={"pivotal_public_key": public_key, "admin_password_hash": hash_password(password)},
        )

    def provision(self, server: Server) -> Callable[[UnitOfWork, Server], None]:
        return lambda uow, created: None  # the registry needs nothing before the first client

    def refresh(self, server: Server) -> dict | None:
        return None

    def describe(self, server: Server) -> list[dict[str, str]]:
        return []

    def reserved_names(self, server: Server) -> Iterable[str]:
        return RESERVED_CLIENTS

    def ca_document(self, server: Server, document: str, name: str) -> str | None:
        return None

    def vet(self, server: Server, action: AssociationAction, node_name: str, attributes) -> NodeChange:
        return vet_chef_change(action, node_name, attributes)

    def prepare_change(self, server: Server, change: NodeChange, holder: NodeClaim | None) -> PreparedChange:
        key = change.request.get("public_key")  # as vet_chef_change checked it
        return PreparedChange(change, self._clock.now(), checked_key_fingerprint(key) if key else None)

    def applied_if_held(self, server: Server, change: NodeChange, holder: NodeClaim) -> Applied | None:
        key = change.request.get("public_key")  # as vet_chef_change checked it
        return Applied(ref=holder.ref) if key and holder.ref == checked_key_fingerprint(key) else None

    def commit_change(self, uow: UnitOfWork, server: Server, prepared: PreparedChange) -> Applied:
        change, registry = prepared.change, uow.bind(self._registry)
        organization = change.request["organization"]
        if change.action is AssociationAction.DISASSOCIATE:
            registry.delete(server.id, organization, change.node_name)
            return Applied()
        # Registering a held name (the REPLACE policy) re-keys the client: the old key stops working.
        public_key = change.request["public_key"]
        registry.put(server.id, organization, change.node_name, public_key, prepared.now)
        return Applied(ref=prepared.ref)

    def apply_change(self, server: Server, change: NodeChange, replacing: bool) -> Applied:
        raise NotImplementedError("the built-in engine commits changes locally")

    def ca_status(self, server: Server) -> CaStatus | None:
        return None  # a registry of public keys: no CA

    def destroy(self, uow: UnitOfWork, server: Server) -> None:
        # Client rows go with the server (ON DELETE CASCADE); the pivotal key was never stored.
        pass

    def snapshot(self, uow: UnitOfWork, server: Server) -> dict:
        return {
            "engine": "ChefAutomate",
            "engine_data": dict(server.engine_data),  # the pivotal public key, the admin password's hash
            "clients": [
                {
                    "organization": client.organization,
                    "name": client.name,
                    "public_key_pem": client.public_key_pem,
                    "created_at": client.created_at.isoformat(),
                }
                for client in uow.bind(self._registry).list(server.id)
            ],
        }

    def plan_restore(self, server: Server, snapshot: dict, *, new_server: bool) -> RestorePlan:
        if snapshot.get("engine") != "ChefAutomate":
            raise ValidationFailed("The backup is not a Chef Automate backup.")
        clients = [
            ChefClient(c["organization"], c["name"], c["public_key_pem"], datetime.fromisoformat(c["created_at"]))
            for c in snapshot["clients"]
        ]
        return RestorePlan(clients, dict(snapshot["engine_data"]))

    def restore(self, uow: UnitOfWork, server: Server, plan: RestorePlan) -> list[tuple[str, str | None]]:
        # Clients registered after the backup are gone; re-keyed ones get their old key back.
        uow.bind(self._registry).replace_all(server.id, plan.clients)
        server.engine_data = dict(plan.engine_data)
        return [(c.name, public_key_fingerprint(c.public_key_pem)) for c in plan.clients]

    def maintain(self, server: Server) -> list[str]:
        # The registry holds only public keys: checking them is the upkeep there is.
        with self._uow(read_only=True) as uow:
            clients = uow.bind(self._registry).list(server.id)
        unusable = [c.name for c in clients if not is_usable_key(c.public_key_pem)]
        return [f"Checked {len(clients)} client key(s); unusable: {', '.join(unusable) or 'none'}."]

    def check_health(self, server: Server) -> str | None:
        if not is_usable_key(server.engine_data.get("pivotal_public_key", "")):
            return "the pivotal public key is missing or unusable"
        return None

    def update_attribute(self, uow: UnitOfWork, server: Server, name: str, value: str | None) -> list[dict[str, str]]:
        if name != RESET_PIVOTAL_KEY:
            raise ValidationFailed(f"AttributeName {name} cannot be updated on a Chef server; use {RESET_PIVOTAL_KEY}.")
        once = []
        if value:
            public_key = checked_public_key(value, RESET_PIVOTAL_KEY)
        else:
            private_key, public_key = generate_rsa_key(self._pivotal_key_bits)
            once.append({"Name": RESET_PIVOTAL_KEY, "Value": private_key})
        # The old pivotal key stops being valid: only the new public half is kept.
        server.engine_data["pivotal_public_key"] = public_key
        return once

