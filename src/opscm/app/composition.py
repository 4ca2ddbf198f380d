"""The composition root: the one place that chooses adapters and wires them together."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine as SqlEngine

from opscm import spec
from opscm.domain.regions import OPSWORKS_CM_REGIONS, check_regions
from opscm.engines.builtin_chef import BuiltinChef
from opscm.engines.builtin_puppet import BuiltinPuppet
from opscm.protocol.json11 import JsonProtocol
from opscm.service.context import Dependencies, Limits
from opscm.service.ports import Clock, NoTelemetry
from opscm.service import health, monitoring, retention, schedule, updates
from opscm.service.retention import Retention
from opscm.service.operations import LIGHT, OPERATIONS, STEPS
from opscm.service.pagination import PageTokens
from opscm.store.backup_files import FileBackupStorage, MemoryBackupStorage
from opscm.store.database import CHECKPOINT_SECONDS, is_shared_memory, migrate, open_database, sqlite_url
from opscm.store.schema_version import schema_problem
from opscm.service.server_cache import ServerCache
from opscm.store.sql import SqlChefClients, SqlPuppetCas
from opscm.store.lean_connections import POSTGRES_CONNECTIONS
from opscm.store.unit_of_work import SqlUnitOfWorkFactory, WriterGate

from .asgi import ca_api_prefix, create_asgi_app
from .backends import remote_engines
from .console import console_routes
from .config import Backend
from .credentials import KeyRing, ensure_admin
from .durable_answers import DurableAnswers
from .health import Readiness, health_routes
from .job_runner import JobRunner, PeriodicTask
from .leadership import Election, LeadershipLock
from .metrics import Metrics
from .pipeline import Authenticator, Pipeline, TrustingAuthenticator
from .secret_box import AesGcmBox, check_master_key, derive_key, load_master_key
from .request_body import DEFAULT_BODY_BUFFER_BYTES, DEFAULT_BODY_TIMEOUT, BodyBudget, BodyLimits
from .throttle import TokenBuckets


@dataclasses.dataclass
class Settings:
    data_dir: Path | None = None  # None: an in-memory database (the mock)
    database_url: str | None = None  # overrides the SQLite file in data_dir
    endpoint_host: str = "127.0.0.1"  # what DescribeServers reports as Endpoint
    public_url: str = "http://127.0.0.1"  # base of the published CA/CRL URLs
    api_url: str | None = None  # the API URL user data scripts call; default public_url
    ca_key_bits: int = 4096
    server_limit: int = 10
    manual_backup_limit: int = 50
    job_workers: int = 2
    schedule_interval: float = 30.0  # seconds between checks of backup / maintenance windows
    health_interval: float = 60.0  # seconds between engine health checks
    verify_signatures: bool = True
    throttle_rate: float | None = None  # requests a second per account; None: no throttling
    throttle_burst: int = 10
    regions: tuple[str, ...] = OPSWORKS_CM_REGIONS  # the regions requests may be scoped to
    # False (the mock): commits do not wait for the disk.
    durable: bool = True
    mock_account_id: str = "123456789012"
    mock_region: str = "us-east-1"
    # The operator's engine backends (``opscm serve --config``), by name.
    backends: dict[str, Backend] = dataclasses.field(default_factory=dict)
    # How long a remote engine's node change is retried before it is FAILED.
    remote_retry_seconds: float = 300.0
    # Finished tokens, events and jobs are pruned this often (seconds; 0: never) after their retention.
    retention_interval: float = 3600.0
    retention: Retention = Retention()
    # The certificate nodes must trust for the API when opscm serves it self-signed; None when
    # a public CA signed it, or over plain HTTP (user data pins it).
    api_ca_pem: str | None = None
    # Request bodies over HTTP: the deadline for a whole body, and the bytes all bodies in
    # progress may hold in one process.
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    body_buffer_bytes: int = DEFAULT_BODY_BUFFER_BYTES
    # Prometheus metrics (opscm serve): counted, and served at /metrics on the API's port, or
    # apart (``metrics_asgi``, served on a port of its own).
    metrics: bool = False
    metrics_apart: bool = False
    # SQLite (opscm serve): the hot path's writers leave WAL checkpoints to the leader's
    # background thread (see store.database.checkpoint_wal); elsewhere they checkpoint as usual.
    checkpoint_apart: bool = False
    # SQLite in a data dir (opscm serve): the event loop's commits are synced to disk as a
    # group, and the ASGI app's answers wait for it (see store.wal_sync).
    group_commit: bool = False


def open_store(settings: Settings) -> tuple[SqlEngine, SqlUnitOfWorkFactory, bytes]:
    """The migrated database, its unit of work and the master key: what ``opscm serve`` and
    ``opscm credentials`` both open."""
    url = settings.database_url or (sqlite_url(settings.data_dir) if settings.data_dir else "sqlite://")
    database = open_database(url, durable=settings.durable)
    migrate(database)
    # SQLite in a data dir: the hot path's writers queue on a lock rather than in SQLite's sleeps.
    on_disk = database.dialect.name == "sqlite" and settings.data_dir and not is_shared_memory(database.url)
    gate = WriterGate(Path(settings.data_dir) / "opscm.db.writer") if on_disk else None
    group_commit = settings.group_commit and settings.durable
    uow = SqlUnitOfWorkFactory(database, gate, checkpoint_apart=settings.checkpoint_apart, group_commit=group_commit)
    master_key = load_master_key(settings.data_dir)
    with uow(read_only=True) as reading:
        keys = reading.access_keys.list()
        check_master_key(AesGcmBox(master_key), reading.access_keys.get(keys[0].access_key_id)[1] if keys else None)
    return database, uow, master_key


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class Application:
    """Everything one opscm process runs; ``asgi`` serves it, ``pipeline.handle`` answers in-process."""

    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock = clock or UtcClock()
        self.database, uow, master_key = open_store(settings)
        self.secret_box = AesGcmBox(master_key)
        self.jobs = JobRunner(settings.job_workers)
        self.metrics = Metrics() if settings.metrics else None
        engines = {
            "Puppet": BuiltinPuppet(
                uow=uow,
                ca_store=SqlPuppetCas,
                secret_box=self.secret_box,
                clock=self.clock,
                ca_key_bits=settings.ca_key_bits,
                ca_urls=self._ca_urls,
            ),
            "ChefAutomate": BuiltinChef(uow=uow, registry=SqlChefClients, clock=self.clock),
        }
        self.deps = Dependencies(
            uow=uow,
            engines=engines,
            backends=remote_engines(settings.backends, self.clock),
            server_cache=ServerCache(uow),
            retention=settings.retention,
            clock=self.clock,
            wake_jobs=self.jobs.wake,
            endpoint_host=settings.endpoint_host,
            page_tokens=PageTokens(derive_key(master_key, "page-tokens")),
            backup_storage=(
                FileBackupStorage(Path(settings.data_dir) / "backups", self.secret_box)
                if settings.data_dir
                else MemoryBackupStorage(self.secret_box)
            ),
            limits=Limits(
                servers_per_region=settings.server_limit,
                manual_backups_per_region=settings.manual_backup_limit,
                remote_retry_seconds=settings.remote_retry_seconds,
            ),
            api_url=settings.api_url or settings.public_url,
            api_ca_pem=settings.api_ca_pem,
            telemetry=self.metrics or NoTelemetry(),
        )
        self.jobs.bind(self.deps)
        tasks = [
            ("opscm-schedule", settings.schedule_interval, lambda: schedule.tick(self.deps)),
            ("opscm-health", settings.health_interval, lambda: health.check_all(self.deps)),
            ("opscm-retention", settings.retention_interval, lambda: retention.prune(self.deps)),
        ]
        if settings.checkpoint_apart and self.database.dialect.name == "sqlite":
            tasks.append(("opscm-checkpoint", CHECKPOINT_SECONDS, uow.checkpoint_wal))
        # An interval of 0 turns a task off (the mock's scheduler; tests that must not meet a window).
        self.periodic = [PeriodicTask(name, interval, task) for name, interval, task in tasks if interval > 0]
        regions = frozenset(check_regions(settings.regions))
        if settings.verify_signatures:
            authenticate = Authenticator(KeyRing(uow, self.secret_box), self.clock, regions)
        else:
            authenticate = TrustingAuthenticator(settings.mock_account_id, settings.mock_region, regions)
        throttle = TokenBuckets(settings.throttle_rate, settings.throttle_burst) if settings.throttle_rate else None
        observe = self.metrics.observe_request if self.metrics else None
        self.pipeline = Pipeline(
            JsonProtocol(spec.service_model()), OPERATIONS, self.deps, authenticate, throttle, observe,
            light=LIGHT, steps=STEPS,
        )
        body_limits = BodyLimits(settings.body_timeout, BodyBudget(settings.body_buffer_bytes))
        routes = health_routes(Readiness(lambda: schema_problem(self.database)))
        self.metrics_asgi = None
        if self.metrics is not None:
            figures = functools.partial(monitoring.store_figures, self.deps)
            if settings.metrics_apart:
                self.metrics_asgi = self.metrics.app(figures)
            else:
                routes += self.metrics.routes(figures)
        routes += console_routes(
            self.deps, KeyRing(uow, self.secret_box, ttl=0), derive_key(master_key, "console"), regions, settings.body_timeout
        )
        self.asgi = create_asgi_app(
            self.pipeline, self.deps, body_limits, routes, DurableAnswers(uow.wal), store_threads=POSTGRES_CONNECTIONS
        )
        self._election: Election | None = None

    def ensure_admin_credentials(self) -> Path | None:
        assert self.settings.data_dir is not None
        region = self.settings.regions[0]  # the profile's region must be one served
        return ensure_admin(self.deps.uow, self.secret_box, self.settings.data_dir, self.clock.now(), region)

    def start(self, leadership: LeadershipLock | None = None) -> None:
        """Start the background work (jobs, scheduler, health checks): at once when this
        Application is alone on its store (the mock, tests), else whenever this process holds
        ``leadership`` (``opscm serve``'s workers and replicas: one of them runs it)."""
        if leadership is None:
            self.recover_interrupted_work()
            self._start_background()
            return
        self._election = Election(leadership, lead=self._start_background, follow=self._stop_background)
        self._election.start()

    def recover_interrupted_work(self) -> None:
        """Call only while no other process uses the store (``opscm serve`` before its workers start)."""
        if self.database.dialect.name == "sqlite":
            # One opscm per SQLite data dir: a lease still held, or an update still MODIFYING,
            # was left by a process now gone.
            self.jobs.release_leases()
            updates.recover_interrupted(self.deps)

    def close(self) -> None:
        self.asgi.close()
        if self._election is not None:
            self._election.stop()
        else:
            self._stop_background()
        self.deps.uow.close()
        self.database.dispose()

    def _start_background(self) -> None:
        self.jobs.start()
        for task in self.periodic:
            task.start()

    def _stop_background(self) -> None:
        for task in self.periodic:
            task.stop()
        self.jobs.stop()

    def _ca_urls(self, server) -> dict[str, str]:
        prefix = ca_api_prefix(self.settings.public_url, server.id)
        return {
            "PUPPET_API_CA_URL": f"{prefix}/certificate/ca",
            "PUPPET_API_CRL_URL": f"{prefix}/certificate_revocation_list/ca",
        }
