"""The ports the service layer needs; the store and the engines implement them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, ContextManager, Protocol, TypeVar, runtime_checkable

from opscm.domain.associations import Association, AssociationAction
from opscm.domain.backups import Backup
from opscm.domain.nodes import NodeClaim
from opscm.domain.servers import Server, ServerStatus

R = TypeVar("R")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SecretBox(Protocol):
    """Encrypts secrets at rest (CA keys, access key secrets)."""

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes:
        """The plaintext; ValueError when ``sealed`` is damaged or was sealed with another key."""


@dataclasses.dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    account_id: str
    secret_access_key: str = dataclasses.field(repr=False)  # never in a log line or a traceback
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
    created_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class Event:
    id: int
    server_id: str
    created_at: datetime
    message: str
    log_url: str | None = None


class BackupStorage(Protocol):
    """Where backup snapshots live (sealed at rest); ``location`` is what the backup row keeps."""

    def put(self, backup_id: str, data: bytes) -> str: ...
    def stored(self, backup_id: str) -> str | None:
        """The location of the snapshot already stored for ``backup_id`` (whole: a put is atomic), if any."""
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
    def save(self, server: Server) -> None:
        """Store the server and bump its revision (``server.revision`` is updated)."""
    def current(self, server_id: str) -> tuple[ServerStatus, int] | None:
        """Status and revision, held until the transaction ends."""
    def delete(self, server_id: str) -> None: ...


class AssociationRepository(Protocol):
    def add(self, association: Association, account_id: str, region: str) -> None: ...
    def get(self, token_hash: str) -> Association | None: ...
    def save(self, association: Association) -> None: ...
    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` finished associations made before ``before``."""
    def count_by_hour(self, server_ids: Sequence[str], since: datetime) -> list[tuple[datetime, str, str, int]]:
        """(hour in UTC, action, status, count) of the associations made since ``since``."""


class JobRepository(Protocol):
    def add(
        self, kind: str, server_id: str, now: datetime, payload: dict | None = None, *, lease_seconds: float = 0
    ) -> int:
        """A pending job; with ``lease_seconds`` the caller runs it first (the runner waits)."""
    def claim(self, now: datetime, lease_seconds: float, *, running: Collection[int] = ()) -> Job | None:
        """The oldest claimable job but those in ``running``, now leased for ``lease_seconds``."""
    def renew(self, job_id: int, attempt: int, until: datetime) -> bool:
        """Extend a running job's lease; False when another claim took it (its ``attempts``
        is no longer ``attempt``)."""
    def claimable(self, now: datetime) -> bool:
        """Whether :meth:`claim` would find a job (a read: no write lock taken)."""
    def retry(self, job_id: int, *, run_after: datetime, error: str) -> None: ...
    def finish(self, job_id: int, *, error: str | None = None) -> None: ...
    def unfinished(self) -> int: ...
    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state ("pending", "done", "failed"), finished ones until pruned."""
    def release_leases(self) -> None: ...
    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` finished jobs created before ``before``."""


class EventRepository(Protocol):
    def add(self, server_id: str, now: datetime, message: str, log_url: str | None = None) -> None: ...
    def list(self, server_id: str) -> list[Event]:
        """Newest first."""
    def latest(self, server_id: str, limit: int) -> list[Event]:
        """The newest ``limit``, newest first."""
    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` events older than ``before``."""


class BackupRepository(Protocol):
    def add(self, backup: Backup) -> None: ...
    def get(self, account_id: str, region: str, backup_id: str) -> Backup | None: ...
    def id_taken(self, backup_id: str) -> bool:
        """Whether a backup of any account or region has this id (ids are unique: files bear them)."""
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


class NodeRepository(Protocol):
    """Who holds each node name (see opscm.domain.nodes); every change is a compare-and-set."""

    def claim(self, claim: NodeClaim, *, server_revision: int | None = None) -> bool:
        """Take a free name; False when it is held, or (given ``server_revision``) when the
        server's row is not at that revision (see ``ServerRepository.current``)."""
    def take_over(self, claim: NodeClaim, *, expected_token_hash: str) -> bool: ...
    def release(self, server_id: str, name: str, *, token_hash: str) -> bool: ...
    def release_refs(self, server_id: str, refs: Iterable[str]) -> int: ...
    def get(self, server_id: str, name: str) -> NodeClaim | None: ...
    def list(self, server_id: str) -> list[NodeClaim]: ...
    def page(
        self, server_id: str, *, after: str | None = None, before: str | None = None, contains: str | None = None, limit: int
    ) -> list[NodeClaim]:
        """Up to ``limit`` claims in name order: the first, those after ``after``, or the last
        before ``before``; ``contains``: names containing it, without case."""
    def count(self, server_id: str, *, contains: str | None = None) -> int: ...
    def replace_all(self, server_id: str, claims: Sequence[NodeClaim]) -> None: ...


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
    nodes: NodeRepository
    access_keys: AccessKeyRepository
    events: EventRepository
    backups: BackupRepository
    tags: TagRepository

    def bind(self, repository: Callable[[Any], R]) -> R:
        """An engine's own repository on this unit of work's transaction."""
    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc) -> None: ...
    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    # An embedded database (SQLite): a lean transaction is no network round trip.
    embedded: bool
    # Its round trips are short (SQLite; PostgreSQL on the same host or near it): the event loop
    # may make a few.
    near: bool

    def __call__(self, *, read_only: bool = False, lean: bool = False) -> UnitOfWork:
        """``lean``: the association hot path's transactions, on the few repository methods it
        needs (servers.current, nodes, associations, the engines' node writes), at a tenth of the cost."""

    def without_waiting(self) -> ContextManager[None]:
        """In this block (on this thread) a write takes the write lock only if it is free, else
        raises WouldWait: what the event loop runs must never wait for another writer."""


class CommitSync(Protocol):
    """Commits made without waiting for the disk (SQLite's group commit, store.wal_sync), and
    the sync that makes them durable: what serves their answers waits for it."""

    def pending(self) -> bool:
        """Whether a commit counted so far is not on disk yet."""

    def sync(self) -> None:
        """Make every commit counted so far durable (blocks; raises OSError when the disk fails)."""


@dataclasses.dataclass(frozen=True)
class Provisioned:
    """What CreateServer returns once (passwords, private keys), what the engine keeps (non-secret),
    and the step that stores its material (a CA) in the transaction that creates the server."""

    once: list[dict[str, str]]
    engine_data: dict[str, object]
    store: Callable[[UnitOfWork], None] = lambda uow: None


@dataclasses.dataclass(frozen=True)
class NodeChange:
    """An AssociateNode / DisassociateNode the engine has vetted. ``request`` is JSON-able (a job
    keeps it when a remote engine must be asked again); ``vetted`` is its parsed form, in-process."""

    action: AssociationAction
    node_name: str
    request: dict
    vetted: object = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Applied:
    """What an engine did for a node: attributes DescribeNodeAssociationStatus shows, and the
    handle the node claim records (a certificate serial, a key fingerprint)."""

    engine_attributes: list[dict[str, str]] = dataclasses.field(default_factory=list)
    ref: str | None = None
    # Certificates opscm's own CA signed and revoked for the change (counted once it is committed).
    certificates_issued: int = 0
    certificates_revoked: int = 0


@dataclasses.dataclass(frozen=True)
class CaStatus:
    """What monitoring tells of a CA opscm keeps."""

    soonest_expiry: datetime | None  # the first end of validity: the CA's or a certificate in force
    crl_issued_at: datetime | None  # when the CRL in force was signed


class Telemetry(Protocol):
    """Told what the service did, for the metrics; the service never reads it back."""

    def node_changed(self, engine: str, action: AssociationAction, outcome: str, applied: Applied | None = None) -> None:
        """An association or disassociation ended: ``outcome`` is "success", "failed" (a backend
        refused it, or gave up) or "refused" (the request was refused)."""


class NoTelemetry:
    def node_changed(self, engine: str, action: AssociationAction, outcome: str, applied: Applied | None = None) -> None:
        pass


class Prepared(Protocol):
    """A local engine's change, made ready outside the transaction."""

    ref: str | None  # what the node claim will record (a serial, a key fingerprint)


@dataclasses.dataclass(frozen=True)
class NodeCredential:
    """What a node proves itself with, as its engine records it: a certificate (serial, end of
    validity, revocation) or a registered key (fingerprint). Unknown parts are None (a remote
    engine keeps them on the backend)."""

    node_name: str
    kind: str  # CERTIFICATE or KEY
    ref: str | None  # the certificate serial, the key fingerprint
    not_after: datetime | None = None
    revoked_at: datetime | None = None

    CERTIFICATE: ClassVar[str] = "certificate"
    KEY: ClassVar[str] = "key"


class StaleServer(Exception):
    """The server row a change was made for is not the current one (changed, or deleted): start
    again from a fresh row."""


@runtime_checkable
class RepeatableAssociation(Protocol):
    """A local engine that can tell an AssociateNode repeating the one in force (same key): the
    aws CLI sends a request again by itself when its answer was lost (a proxy's 5xx, a reset)."""

    def applied_if_held(self, server: Server, change: NodeChange, holder: NodeClaim) -> Applied | None:
        """What the association in force applied, if ``change`` asks for the same key; else None."""


class Conflict(Exception):
    """A compare-and-set lost to a concurrent change: prepare again from fresh state."""


class WouldWait(Exception):
    """A write begun under ``UnitOfWorkFactory.without_waiting()`` found the write lock taken:
    nothing was written; run the request again where it may wait (a thread)."""


class Engine(Protocol):
    """One configuration-management engine of a server: opscm's built-in CA / registry
    (``remote`` False), or an operator's Chef Infra Server / Puppet Server CA (``remote`` True).

    No method runs a network call or a signature inside a transaction it is given.
    """

    remote: bool
    # prepare_change signs or reads (the built-in CA): it runs where waiting is allowed, off
    # the event loop. False: it is a quick computation (the built-in Chef registry's).
    prepare_blocks: bool
    engine: str  # the engine it serves: "Puppet" or "ChefAutomate"
    endpoint: str | None  # the host nodes talk to (a backend's); None: opscm's own endpoint

    def prepare(self, server: Server, attributes: Sequence[Mapping[str, str]] | None) -> Provisioned:
        """Check CreateServer's engine attributes and make the server's keys (in the request,
        outside any transaction: the response carries the CA certificate in the starter kit)."""

    def provision(self, server: Server) -> Callable[[UnitOfWork, Server], None]:
        """Bring the engine up in a background job, outside any transaction (a remote engine's
        checks); returns the step run in the transaction that makes the server HEALTHY (given
        the server as read in that transaction). Raises BackendError when the backend fails."""

    def refresh(self, server: Server) -> dict | None:
        """New engine data learnt from the engine (a backend's CA certificate), or None."""

    def describe(self, server: Server) -> list[dict[str, str]]:
        """Public engine attributes shown by DescribeServers (from the server row: no I/O)."""

    def reserved_names(self, server: Server) -> Iterable[str]:
        """Names the engine's own parts answer to (server certificates, admin clients)."""

    def vet(self, server: Server, action: AssociationAction, node_name: str, attributes) -> NodeChange:
        """Every check of the request that needs no state (CSR, key, organization); raises
        ValidationFailed."""

    # -- local engines: prepared outside, committed in the association's one transaction --
    def prepare_change(self, server: Server, change: NodeChange, holder: NodeClaim | None) -> Prepared:
        """Sign what must be signed (a certificate, a CRL); ``holder`` is who holds the name now."""

    def commit_change(self, uow: UnitOfWork, server: Server, prepared: Prepared) -> Applied:
        """The engine's writes; raises Conflict when the state it prepared from has changed."""

    # -- remote engines: asked outside any transaction, again by a job until final --
    def apply_change(self, server: Server, change: NodeChange, replacing: bool) -> Applied:
        """Make the backend match the change; converges when run again. Raises
        BackendUnavailable (try later), BackendRefused or ValidationFailed (final)."""

    def ca_document(self, server: Server, document: str, name: str) -> str | None:
        """A published CA document (Puppet CA API v1 form), or None."""

    def ca_status(self, server: Server) -> CaStatus | None:
        """For monitoring, from what opscm keeps (no network call): None when it keeps no CA."""

    def destroy(self, uow: UnitOfWork, server: Server) -> None:
        """Forget everything of this server (keys, certificates, clients)."""

    def maintain(self, server: Server) -> list[str]:
        """Routine upkeep in its own short transactions; returns what was done."""

    def check_health(self, server: Server) -> str | None:
        """None when the engine works; otherwise why not (short, tenant-safe). Outside transactions."""

    def update_attribute(self, uow: UnitOfWork, server: Server, name: str, value: str | None) -> list[dict[str, str]]:
        """UpdateServerEngineAttributes; returns attributes shown once (a new private key)."""

    def snapshot(self, uow: UnitOfWork, server: Server) -> dict:
        """The engine's whole state as JSON-able data (private keys sealed), for a backup."""

    def plan_restore(self, server: Server, snapshot: dict, *, new_server: bool) -> object:
        """Everything a restore needs that is not a write (merging, a new CRL), outside transactions."""

    def restore(self, uow: UnitOfWork, server: Server, plan: object) -> list[tuple[str, str | None]]:
        """Apply a planned restore; returns the node names in force afterwards with their refs.
        Raises Conflict when the state planned from has changed."""

    # -- read-only listings (the web console): what opscm keeps, never a call to a backend --
    def credentials(self, uow: UnitOfWork, server: Server, claims: Sequence[NodeClaim]) -> list[NodeCredential]:
        """What each claimed node holds, one per claim in the same order."""

    def revoked_credentials(
        self, uow: UnitOfWork, server: Server, name_contains: str | None, limit: int
    ) -> list[NodeCredential]:
        """Credentials on record but no longer in force (revoked certificates), newest first."""

    def expiring_credentials(
        self, uow: UnitOfWork, server: Server, before: datetime, limit: int
    ) -> list[NodeCredential]:
        """Up to ``limit`` credentials in force whose validity ends before ``before``, soonest first."""
