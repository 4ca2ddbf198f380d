"""What every remote engine (an operator's backend) shares: opscm keeps almost nothing of it.

The backend keeps its own keys, certificates and backups; an opscm backup of such a server
holds only what opscm knows of the server, and a restore changes nothing on the backend.
"""

from __future__ import annotations

from opscm.domain.errors import ValidationFailed
from opscm.domain.servers import Server
from opscm.service.ports import UnitOfWork


class RemoteEngine:
    remote = True
    prepare_blocks = True  # never called: a remote engine's changes are applied by remote_changes
    engine: str  # set by each kind
    name: str

    def ca_document(self, server: Server, document: str, name: str) -> str | None:
        return None  # the backend publishes its own documents

    def ca_status(self, server: Server) -> None:
        return None  # the backend's CA, if any, is watched there

    def destroy(self, uow: UnitOfWork, server: Server) -> None:
        # The backend and what it holds are the operator's: deleting the opscm server keeps them.
        pass

    def prepare_change(self, server, change, holder):
        raise NotImplementedError("a remote engine is asked with apply_change")

    def commit_change(self, uow, server, prepared):
        raise NotImplementedError("a remote engine is asked with apply_change")

    def update_attribute(self, uow: UnitOfWork, server: Server, name: str, value: str | None) -> list[dict[str, str]]:
        raise ValidationFailed(
            f"AttributeName {name} cannot be updated here: server {server.name} is served by backend "
            f"'{self.name}', whose keys and passwords are managed there."
        )

    def snapshot(self, uow: UnitOfWork, server: Server) -> dict:
        return {"engine": self.engine, "backend": self.name, "engine_data": dict(server.engine_data)}

    def plan_restore(self, server: Server, snapshot: dict, *, new_server: bool) -> dict:
        if snapshot.get("engine") != self.engine or snapshot.get("backend") != self.name:
            raise ValidationFailed(f"The backup is not one of a server of backend '{self.name}'.")
        return dict(snapshot["engine_data"])

    def restore(self, uow: UnitOfWork, server: Server, plan: dict) -> None:
        server.engine_data = dict(plan)
        return None  # the node names in force are the backend's: unchanged
