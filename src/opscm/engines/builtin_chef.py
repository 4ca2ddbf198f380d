"""The built-in Chef engine: a registry of client public keys per server and organization."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opscm.domain.associations import (
    AssociationStatus,
    Outcome,
    check_chef_client_name,
    chef_request,
)
from opscm.domain.engine_attributes import attribute_map
from opscm.domain.errors import NotFound, ValidationFailed
from opscm.domain.passwords import check_admin_password, generate_admin_password
from opscm.domain.servers import Server
from opscm.pki import PkiError, check_rsa_public_key, generate_rsa_key, hash_password
from opscm.service.ports import ChefClient, Clock, Provisioned, UnitOfWork

PIVOTAL_KEY = "CHEF_AUTOMATE_PIVOTAL_KEY"
ADMIN_PASSWORD = "CHEF_AUTOMATE_ADMIN_PASSWORD"
RESET_PIVOTAL_KEY = "CHEF_PIVOTAL_KEY"


class BuiltinChef:
    def __init__(self, *, clock: Clock, pivotal_key_bits: int = 2048):
        self._clock = clock
        self._pivotal_key_bits = pivotal_key_bits

    def prepare(self, server: Server, attributes) -> Provisioned:
        values = attribute_map(attributes, allowed=(PIVOTAL_KEY, ADMIN_PASSWORD))
        once = []
        if values.get(PIVOTAL_KEY):
            # The user keeps the private key; opscm only ever sees the public one.
            public_key = _public_key(values[PIVOTAL_KEY], PIVOTAL_KEY)
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

    def provision(self, server: Server) -> Callable[[UnitOfWork], None]:
        return lambda uow: None  # the registry needs nothing before the first client

    def describe(self, uow: UnitOfWork, server: Server) -> list[dict[str, str]]:
        return []

    def associate(self, uow: UnitOfWork, server: Server, node_name: str, attributes) -> Outcome:
        request = chef_request(attributes, need_key=True)
        check_chef_client_name(node_name)
        public_key = _public_key(request.public_key_pem, "CHEF_NODE_PUBLIC_KEY")
        # Re-associating a name re-keys the client: the old key stops working at once.
        uow.chef.put(server.id, request.organization, node_name, public_key, self._clock.now())
        return Outcome(AssociationStatus.SUCCESS)

    def disassociate(self, uow: UnitOfWork, server: Server, node_name: str, attributes) -> Outcome:
        request = chef_request(attributes, need_key=False)
        if not uow.chef.delete(server.id, request.organization, node_name):
            raise NotFound(f"Node {node_name} is not associated with server {server.name}.")
        return Outcome(AssociationStatus.SUCCESS)

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
                for client in uow.chef.list(server.id)
            ],
        }

    def restore(self, uow: UnitOfWork, server: Server, snapshot: dict) -> None:
        if snapshot.get("engine") != "ChefAutomate":
            raise ValidationFailed("The backup is not a Chef Automate backup.")
        clients = [
            ChefClient(c["organization"], c["name"], c["public_key_pem"], datetime.fromisoformat(c["created_at"]))
            for c in snapshot["clients"]
        ]
        # Clients registered after the backup are gone; re-keyed ones get their old key back.
        uow.chef.replace_all(server.id, clients)
        server.engine_data = dict(snapshot["engine_data"])

    def maintain(self, uow: UnitOfWork, server: Server) -> list[str]:
        # The registry holds only public keys: checking them is the upkeep there is.
        clients = uow.chef.list(server.id)
        unusable = [c.name for c in clients if not _usable(c.public_key_pem)]
        return [f"Checked {len(clients)} client key(s); unusable: {', '.join(unusable) or 'none'}."]

    def check_health(self, uow: UnitOfWork, server: Server) -> str | None:
        if not _usable(server.engine_data.get("pivotal_public_key", "")):
            return "the pivotal public key is missing or unusable"
        return None

    def update_attribute(self, uow: UnitOfWork, server: Server, name: str, value: str | None) -> list[dict[str, str]]:
        if name != RESET_PIVOTAL_KEY:
            raise ValidationFailed(f"AttributeName {name} cannot be updated on a Chef server; use {RESET_PIVOTAL_KEY}.")
        once = []
        if value:
            public_key = _public_key(value, RESET_PIVOTAL_KEY)
        else:
            private_key, public_key = generate_rsa_key(self._pivotal_key_bits)
            once.append({"Name": RESET_PIVOTAL_KEY, "Value": private_key})
        # The old pivotal key stops being valid: only the new public half is kept.
        server.engine_data["pivotal_public_key"] = public_key
        return once


def _usable(pem: str) -> bool:
    try:
        check_rsa_public_key(pem)
    except PkiError:
        return False
    return True


def _public_key(pem: str, attribute: str) -> str:
    try:
        return check_rsa_public_key(pem)
    except PkiError as error:
        raise ValidationFailed(f"{attribute}: {error}") from None
