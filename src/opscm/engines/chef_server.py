"""The ``chef-server`` backend: a server's nodes are clients of the operator's Chef Infra Server
(or goiardi). opscm keeps no key of its own: AssociateNode creates the client with the node's
public key, DisassociateNode deletes the client and its node object.

Every call converges when repeated: a client that exists already with the node's key is a
success, a deleted client is absent. The admin credentials come from the configuration file
and never leave this adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opscm.domain.associations import CHEF_DEFAULT_ORGANIZATION, AssociationAction
from opscm.domain.engine_attributes import attribute_map
from opscm.domain.servers import Server
from opscm.pki.keys import public_key_fingerprint
from opscm.service.ports import Applied, NodeChange, Provisioned, UnitOfWork

from .chef_api import ChefApi, ClientExists
from .chef_nodes import vet_chef_change
from .credentials import KeyFingerprints
from .http import BackendRefused
from .remote import RemoteEngine

CHEF_SERVER_URL = "OPSCM_CHEF_SERVER_URL"


class ChefServerEngine(KeyFingerprints, RemoteEngine):
    engine = "ChefAutomate"

    def __init__(self, name: str, *, endpoint: str, api: ChefApi, url: str):
        """``api``: the admin client of the backend; ``url``: its base URL as configured."""
        self.name = name
        self.endpoint = endpoint
        self._api = api
        self._organization = api.organization
        root = f"/organizations/{api.organization}" if api.organization else ""
        # What knife and chef-client call chef_server_url.
        self.server_url = url.rstrip("/") + root

    # -- servers -----------------------------------------------------------------------------

    def prepare(self, server: Server, attributes) -> Provisioned:
        # The Chef server's own admin users and keys are the operator's: none is made here.
        attribute_map(attributes, allowed=())
        return Provisioned(once=[], engine_data={"chef_server_url": self.server_url})

    def provision(self, server: Server) -> Callable[[UnitOfWork, Server], None]:
        self._api.check()
        return lambda uow, created: None

    def describe(self, server: Server) -> list[dict[str, str]]:
        return [{"Name": CHEF_SERVER_URL, "Value": server.engine_data.get("chef_server_url", self.server_url)}]

    def reserved_names(self, server: Server) -> Iterable[str]:
        organization = self._organization or CHEF_DEFAULT_ORGANIZATION
        return (self._api.client_name, "pivotal", f"{organization}-validator", "chef-validator", "chef-webui", "admin")

    def refresh(self, server: Server) -> dict | None:
        return None

    # -- nodes -------------------------------------------------------------------------------

    def vet(self, server: Server, action: AssociationAction, node_name: str, attributes) -> NodeChange:
        # AWS's user data always names the organization 'default': it means this server's own.
        names = tuple(dict.fromkeys((CHEF_DEFAULT_ORGANIZATION, self._organization or CHEF_DEFAULT_ORGANIZATION)))
        return vet_chef_change(action, node_name, attributes, names)

    def apply_change(self, server: Server, change: NodeChange, replacing: bool) -> Applied:
        name = change.node_name
        if change.action is AssociationAction.DISASSOCIATE:
            # The key pair stops being valid with its client; the node object goes too, as
            # `knife node delete` + `knife client delete` would. Absent is what is wanted.
            self._api.delete_client(name)
            self._api.delete_node(name)
            return Applied()
        public_key = change.request["public_key"]
        try:
            self._api.create_client(name, public_key)
        except ClientExists:
            registered = self._api.client_public_key(name)
            if registered is None or public_key_fingerprint(registered) != public_key_fingerprint(public_key):
                if not replacing:
                    raise BackendRefused(
                        f"the Chef server already has a client named {name} with another key", 409
                    ) from None
                self._api.replace_client_key(name, public_key)
        return Applied(ref=public_key_fingerprint(public_key))

    # -- upkeep ------------------------------------------------------------------------------

    def maintain(self, server: Server) -> list[str]:
        self._api.check()
        return ["Checked the Chef server and opscm's credentials on it."]

    def check_health(self, server: Server) -> str | None:
        self._api.check()
        return None
