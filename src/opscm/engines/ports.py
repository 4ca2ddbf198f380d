"""What the built-in engines keep, behind their own small ports (the SQL store implements them).

The generic ports of the service layer know nothing of CAs or client registries: an engine
reaches its own repository on the unit of work's transaction with ``uow.bind(...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class CaRecord:
    key_enc: bytes = dataclasses.field(repr=False)  # sealed by the secret box, never the plain key
    cert_pem: str
    crl_pem: str


@dataclasses.dataclass(frozen=True)
class CertificateRecord:
    serial: int
    certname: str
    cert_pem: str
    not_after: datetime
    revoked_at: datetime | None


@dataclasses.dataclass(frozen=True)
class CertificateStatus:
    """A certificate without its PEM: what listings show."""

    serial: int
    certname: str
    not_after: datetime
    revoked_at: datetime | None


@dataclasses.dataclass(frozen=True)
class RevocationState:
    """What a new CRL is made of: the current CRL number and every revoked serial."""

    crl_number: int
    revoked: tuple[tuple[int, datetime], ...]


@dataclasses.dataclass(frozen=True)
class PuppetCaState:
    """A Puppet CA's whole state: key (sealed), certificate, CRL, counters, issued certificates."""

    ca: CaRecord
    next_serial: int
    crl_number: int
    certificates: tuple[CertificateRecord, ...]


class CaStore(Protocol):
    """The built-in Puppet CA of each server.

    Every change of the set of revoked certificates goes with a new CRL, published by
    :meth:`publish_crl` only if the CRL number is still the one the CRL was made from: CRLs
    are signed outside transactions, and this compare-and-set keeps them complete.
    """

    def create(self, server_id: str, ca: CaRecord) -> None: ...
    def get(self, server_id: str) -> CaRecord | None: ...
    def reserve_serials(self, server_id: str, count: int) -> int | None:
        """Take ``count`` serials at once (a block, like a cached sequence); returns the first
        (None: the server has no CA, as when it was deleted)."""
    def revocation_state(self, server_id: str) -> RevocationState | None: ...
    def publish_crl(self, server_id: str, *, expected_number: int, number: int, crl_pem: str) -> bool:
        """Replace the CRL if its number is still ``expected_number``; False when another won."""
    def add_certificate(self, server_id: str, serial: int, certname: str, cert_pem: str, not_after: datetime) -> None: ...
    def revoke(self, server_id: str, serials: Sequence[int], at: datetime) -> None: ...
    def certificate_pem(self, server_id: str, certname: str) -> str | None:
        """The newest unrevoked certificate of ``certname``."""
    def certificates(self, server_id: str) -> list[CertificateRecord]: ...
    def soonest_expiry(self, server_id: str, *, after: datetime) -> datetime | None:
        """The first end of validity, later than ``after``, of an unrevoked certificate."""
    def expired(self, server_id: str, now: datetime) -> list[CertificateRecord]: ...
    def delete_certificates(self, server_id: str, serials: Sequence[int]) -> None: ...
    def export_state(self, server_id: str) -> PuppetCaState | None: ...
    # -- listings (read-only) --
    def statuses(self, server_id: str, serials: Sequence[int]) -> list[CertificateStatus]: ...
    def revoked_statuses(self, server_id: str, certname_contains: str | None, limit: int) -> list[CertificateStatus]:
        """Revoked certificates still on record, newest revocation first."""
    def expiring_statuses(self, server_id: str, before: datetime, limit: int) -> list[CertificateStatus]:
        """Up to ``limit`` unrevoked certificates whose validity ends before ``before``, soonest first."""
    def import_state(self, server_id: str, state: PuppetCaState) -> None:
        """Replace the server's CA row and every certificate row with ``state``; the serial
        counter is never lowered (serials reserved meanwhile stay unique)."""


@dataclasses.dataclass(frozen=True)
class ChefClient:
    organization: str
    name: str
    public_key_pem: str
    created_at: datetime


class ChefRegistry(Protocol):
    """The built-in Chef client registry of each server."""

    def put(self, server_id: str, organization: str, name: str, public_key_pem: str, now: datetime) -> None:
        """Register or re-key a client."""
    def delete(self, server_id: str, organization: str, name: str) -> bool: ...
    def list(self, server_id: str) -> list[ChefClient]: ...
    def replace_all(self, server_id: str, clients: Sequence[ChefClient]) -> None: ...
