"""The ports the service layer needs; the store and the engines implement them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from opscm.domain.associations import Association, Outcome
from opscm.domain.backups import Backup
from opscm.domain.servers import Server


class Clock(Protocol):
    def now(self) -> datetime: ...


class SecretBox(Protocol):
    """Encrypts secrets at rest (CA keys, access key secrets)."""

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    account_id: str
    secret_access_key: str
    name: str
    actions: tuple[str, ...]
    server_names: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class Job:
    id: int
    kind: str
    server_id: str
    attempts: int
    payload: dict | None = None


@dataclasses.dataclass(frozen=True)
class Event:
    id: int
    server_id: str
    created_at: datetime
    message: str
    log_url: str | None = None


@dataclasses.dataclass(frozen=True)
class CaRecord:
    key_enc: bytes
    cert_pem: str
    crl_pem: str


@dataclasses.dataclass(frozen=True)
class IssuedCertificate:
    serial: int
    certname: str
    not_after: datetime
    revoked_at: datetime | None


@dataclasses.dataclass(frozen=True)
class CertificateRecord:
    """An issued certificate with its PEM, as a backup keeps it."""

    serial: int
    certname: str
    cert_pem: str
    not_after: datetime
    revoked_at: datetime | None


@dataclasses.dataclass(frozen=True)
class PuppetCaState:
    """A Puppet CA's whole state: key (sealed), certificate, CRL, counters, issued certificates."""

    ca: CaRecord
    next_serial: int
    crl_number: int
    certificates: tuple[CertificateRecord, ...]


class BackupStorage(Protocol):
    """Where backup snapshots live (sealed at rest); ``location`` is what the backup row keeps."""

    def put(self, backup_id: str, data: bytes) -> str: ...
    def get(self, location: str) -> bytes: ...
    def delete(self, location: str) -> None: ...
    def url(self, location: str) -> str | None:
        """What DescribeBackups shows as S3DataUrl (None: nothing to show)."""


class ServerRepository(Protocol):
    def add(self, server: Server) -> None: ...
    def get(self, account_id: str, region: str, name: str) -> Server | None: ...
    def get_by_id(self, server_id: str) -> Server | None: ...
    def list(self, account_id: str, region: str) -> list[Server]: ...
    def list_all(self) -> list[Server]: ...
    def count(self, account_id: str, region: str) -> int: ...
    def save(self, server: Server) -> None: ...
    def delete(self, server_id: str) -> None: ...


class AssociationRepository(Protocol):
    def add(self, association: Association, account_id: str, region: str) -> None: ...
    def get(self, token_hash: str) -> Association | None: ...
    def save(self, association: Association) -> None: ...


class JobRepository(Protocol):
    def add(self, kind: str, server_id: str, now: datetime, payload: dict | None = None) -> int: ...
    def claim(self, now: datetime, lease_seconds: float) -> Job | None: ...
    def finish(self, job_id: int, *, error: str | None = None) -> None: ...
    def unfinished(self) -> int: ...
    def release_leases(self) -> None: ...


class EventRepository(Protocol):
    def add(self, server_id: str, now: datetime, message: str, log_url: str | None = None) -> None: ...
    def list(self, server_id: str) -> list[Event]:
        """Newest first."""


class BackupRepository(Protocol):
    def add(self, backup: Backup) -> None: ...
    def get(self, account_id: str, region: str, backup_id: str) -> Backup | None: ...
    def save(self, backup: Backup) -> None: ...
    def delete(self, backup_id: str) -> None: ...
    def list(self, account_id: str, region: str, server_name: str | None = None) -> list[Backup]:
        """Newest first."""
    def count(self, account_id: str, region: str, backup_type: str) -> int: ...


class TagRepository(Protocol):
    def put(self, resource_arn: str, tags: Sequence[tuple[str, str]]) -> None:
        """Add or overwrite tags, keeping the first-seen order of keys."""
    def remove(self, resource_arn: str, keys: Sequence[str]) -> None: ...
    def list(self, resource_arn: str) -> list[tuple[str, str]]: ...
    def delete_all(self, resource_arn: str) -> None: ...


class PuppetCaRepository(Protocol):
    def create(self, server_id: str, ca: CaRecord) -> None: ...
    def get(self, server_id: str) -> CaRecord | None: ...
    def allocate_serial(self, server_id: str) -> int: ...
    def allocate_crl_number(self, server_id: str) -> int: ...
    def set_crl(self, server_id: str, crl_pem: str) -> None: ...
    def add_certificate(self, server_id: str, serial: int, certname: str, cert_pem: str, not_after: datetime) -> None: ...
    def certificates(self, server_id: str, certname: str | None = None) -> list[IssuedCertificate]: ...
    def certificate_pem(self, server_id: str, certname: str) -> str | None: ...
    def revoke(self, server_id: str, serial: int, at: datetime) -> None: ...
    def export_state(self, server_id: str) -> PuppetCaState | None: ...
    def import_state(self, server_id: str, state: PuppetCaState) -> None:
        """Replace the server's CA row and every certificate row with ``state``."""
    def delete_expired(self, server_id: str, now: datetime) -> int: ...


@dataclasses.dataclass(frozen=True)
class ChefClient:
    organization: str
    name: str
    public_key_pem: str
    created_at: datetime


class ChefClientRepository(Protocol):
    def list(self, server_id: str) -> list[ChefClient]: ...
    def put(self, server_id: str, organization: str, name: str, public_key_pem: str, now: datetime) -> bool: ...
    def get(self, server_id: str, organization: str, name: str) -> str | None: ...
    def delete(self, server_id: str, organization: str, name: str) -> bool: ...
    def replace_all(self, server_id: str, clients: Sequence[ChefClient]) -> None: ...


class AccessKeyRepository(Protocol):
    def add(self, key: AccessKey, secret_enc: bytes, now: datetime) -> None: ...
    def get(self, access_key_id: str) -> tuple[AccessKey, bytes] | None: ...
    def list(self) -> list[AccessKey]:
        """Every key without its secret, oldest first."""
    def remove(self, access_key_id: str) -> bool: ...
    def count(self) -> int: ...


class UnitOfWork(Protocol):
    servers: ServerRepository
    associations: AssociationRepository
    jobs: JobRepository
    puppet: PuppetCaRepository
    chef: ChefClientRepository
    access_keys: AccessKeyRepository
    events: EventRepository
    backups: BackupRepository
    tags: TagRepository

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc) -> None: ...
    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...


@dataclasses.dataclass(frozen=True)
class Provisioned:
    """What CreateServer returns once (passwords, private keys), what the engine keeps (non-secret),
    and the step that stores its material (a CA) in the transaction that creates the server."""

    once: list[dict[str, str]]
    engine_data: dict[str, object]
    store: Callable[[UnitOfWork], None] = lambda uow: None


class Engine(Protocol):
    """One configuration-management engine (built-in CA / registry, or a remote server)."""

    def prepare(self, server: Server, attributes: Sequence[Mapping[str, str]] | None) -> Provisioned:
        """Check CreateServer's engine attributes and make the server's keys (in the request,
        outside any transaction: the response carries the CA certificate in the starter kit)."""

    def provision(self, server: Server) -> Callable[[UnitOfWork], None]:
        """Bring the engine up in a background job, outside any transaction (a remote engine's
        setup); returns the step run in the transaction that makes the server HEALTHY."""

    def describe(self, uow: UnitOfWork, server: Server) -> list[dict[str, str]]:
        """Public engine attributes shown by DescribeServers."""

    def associate(self, uow: UnitOfWork, server: Server, node_name: str, attributes) -> Outcome: ...

    def disassociate(self, uow: UnitOfWork, server: Server, node_name: str, attributes) -> Outcome: ...

    def destroy(self, uow: UnitOfWork, server: Server) -> None:
        """Forget everything of this server (keys, certificates, clients)."""

    def maintain(self, uow: UnitOfWork, server: Server) -> list[str]:
        """Routine upkeep (republish the CRL, prune expired certificates); returns what was done."""

    def check_health(self, uow: UnitOfWork, server: Server) -> str | None:
        """None when the engine works; otherwise why it does not."""

    def update_attribute(self, uow: UnitOfWork, server: Server, name: str, value: str | None) -> list[dict[str, str]]:
        """UpdateServerEngineAttributes; returns attributes shown once (a new private key)."""

    def snapshot(self, uow: UnitOfWork, server: Server) -> dict:
        """The engine's whole state as JSON-able data (private keys sealed), for a backup."""

    def restore(self, uow: UnitOfWork, server: Server, snapshot: dict) -> None:
        """Bring a snapshot back onto ``server`` (same CA; later associations gone)."""
