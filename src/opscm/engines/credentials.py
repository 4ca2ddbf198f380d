"""What engines without certificate records tell about nodes' credentials (read-only listings).

A node claim records the engine's handle on what is in force (a key fingerprint, a certificate
serial); these engines know nothing more locally: no end of validity, nothing once revoked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from opscm.domain.nodes import NodeClaim
from opscm.domain.servers import Server
from opscm.service.ports import NodeCredential, UnitOfWork


class NoCredentialHistory:
    def revoked_credentials(
        self, uow: UnitOfWork, server: Server, name_contains: str | None, limit: int
    ) -> list[NodeCredential]:
        return []

    def expiring_credentials(
        self, uow: UnitOfWork, server: Server, before: datetime, limit: int
    ) -> list[NodeCredential]:
        return []


class KeyFingerprints(NoCredentialHistory):
    """Chef engines: a client's key is named by its fingerprint; a deleted client leaves nothing."""

    def credentials(self, uow: UnitOfWork, server: Server, claims: Sequence[NodeClaim]) -> list[NodeCredential]:
        return [NodeCredential(claim.name, NodeCredential.KEY, claim.ref) for claim in claims]


class BackendCertificates(NoCredentialHistory):
    """A backend's CA keeps the certificates; opscm knows each node's serial from its claim."""

    def credentials(self, uow: UnitOfWork, server: Server, claims: Sequence[NodeClaim]) -> list[NodeCredential]:
        return [NodeCredential(claim.name, NodeCredential.CERTIFICATE, claim.ref) for claim in claims]
