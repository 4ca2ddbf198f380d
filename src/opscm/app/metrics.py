"""Prometheus metrics (prometheus-client): what is counted, and how ``/metrics`` answers.

Counts are made where things happen, in the process they happen in: requests in the pipeline,
node changes and certificates in the service once committed. ``opscm serve`` has several
worker processes: before forking them the supervisor points prometheus-client at a directory
of its own (its multiprocess mode), every worker writes its counts to files there, and a
scrape, whichever worker answers it, sums the files of all of them, dead workers' included.

Figures of the store (servers by status, jobs, certificate expiry, CRL age) are not counted
but read from the database at scrape time through the service layer: right whatever worker
answers, and no cost on any request.

Labels never carry a node name (there may be millions); a server's name only together with its
account and region, which ``--server-limit`` bounds.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opscm.domain.associations import AssociationAction
from opscm.domain.servers import SUPPORTED_ENGINES, ServerStatus
from opscm.service.monitoring import StoreFigures
from opscm.service.ports import Applied

from .connection_shares import WorkerShare

log = logging.getLogger(__name__)
# prometheus-client's own variable: where the processes' files are (set it to keep them on a tmpfs).
SHARED_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# From a token poll (~1 ms) to a Puppet server's creation with a 4096-bit CA (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# What the job gauge always shows, even at 0 (an alert needs the series to exist).
JOB_STATES = ("pending", "failed")


class Metrics:
    """This process's counters; also the service's :class:`~opscm.service.ports.Telemetry`."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry()  # scraped as is when this process is alone
        registry = self._registry
        self._requests = Counter(
            "opscm_requests", "API requests answered, by operation and outcome (success or the error code).",
            ["operation", "outcome"], registry=registry,
        )
        self._latency = Histogram(
            "opscm_request_duration_seconds", "Time to answer an API request, by operation.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self._node_changes = {
            AssociationAction.ASSOCIATE: Counter(
                "opscm_associations", "AssociateNode requests ended, by engine and outcome (success, failed, refused).",
                ["engine", "outcome"], registry=registry,
            ),
            AssociationAction.DISASSOCIATE: Counter(
                "opscm_disassociations", "DisassociateNode requests ended, by engine and outcome (success, failed, refused).",
                ["engine", "outcome"], registry=registry,
            ),
        }
        self._issued = Counter(
            "opscm_certificates_issued", "Node certificates signed by opscm's built-in Puppet CAs.", registry=registry
        )
        self._revoked = Counter(
            "opscm_certificates_revoked", "Node certificates revoked by opscm's built-in Puppet CAs.", registry=registry
        )
        self._sent_away = Counter(
            "opscm_connections_sent_away",
            "Keep-alive connections a worker holding more than its share asked to close (connection: close).",
            registry=registry,
        )
        self._connections: WorkerShare | None = None
        # Each process counts itself once; a dead worker's share is dropped (mark_process_dead).
        Gauge(
            "opscm_worker_processes", "Processes serving the API.", multiprocess_mode="livesum", registry=registry
        ).set(1)
        # labels() costs a lock and a tuple of str(); the hot path takes its pair from here.
        self._request_children: dict[tuple[str, str], tuple] = {}
        self._change_children: dict[tuple[AssociationAction, str, str], object] = {}

    def observe_request(self, operation: str, outcome: str, seconds: float) -> None:
        children = self._request_children.get((operation, outcome))
        if children is None:
            children = self._requests.labels(operation, outcome), self._latency.labels(operation)
            self._request_children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def node_changed(self, engine: str, action: AssociationAction, outcome: str, applied: Applied | None = None) -> None:
        child = self._change_children.get((action, engine, outcome))
        if child is None:
            child = self._change_children[(action, engine, outcome)] = self._node_changes[action].labels(engine, outcome)
        child.inc()
        if applied is not None:
            if applied.certificates_issued:
                self._issued.inc(applied.certificates_issued)
            if applied.certificates_revoked:
                self._revoked.inc(applied.certificates_revoked)

    def watch_connections(self, share: WorkerShare) -> None:
        """Count the clients this worker sends away, and show every worker's connections."""
        self._connections = share
        share.on_sent_away = self._sent_away.inc

    def exposition(self, store_figures: Callable[[], StoreFigures], encode=generate_latest) -> bytes:
        """Every process's counts and the store's figures now (Prometheus' text format by default)."""
        registry = CollectorRegistry()
        shared = _shared_directory()
        registry.register(MultiProcessCollector(None, shared) if shared else self._registry)
        registry.register(StoreCollector(store_figures))
        if self._connections is not None:
            registry.register(ConnectionsCollector(self._connections))
        return encode(registry)

    def routes(self, store_figures: Callable[[], StoreFigures]) -> list[Route]:
        async def scrape(request: Request) -> Response:
            encode, content_type = choose_encoder(request.headers.get("accept", ""))  # text, or OpenMetrics if asked
            body = await run_in_threadpool(self.exposition, store_figures, encode)  # SQL: off the event loop
            return Response(body, media_type=content_type)

        return [Route("/metrics", scrape, methods=["GET"])]

    def app(self, store_figures: Callable[[], StoreFigures]) -> Starlette:
        """``/metrics`` alone, for a port of its own."""
        return Starlette(routes=self.routes(store_figures))


class ConnectionsCollector:
    """Each worker's open API connections, read at each scrape from the memory the workers share
    (see connection_shares.py): an uneven spread shows here."""

    def __init__(self, share: WorkerShare):
        self._share = share

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("opscm_api_connections", "Open connections on the API's port, by worker.", labels=["worker"])
        for index, count in enumerate(self._share.counts(), 1):
            gauge.add_metric([str(index)], count)
        yield gauge


class StoreCollector:
    """Gauges read from the store at each scrape."""

    def __init__(self, store_figures: Callable[[], StoreFigures]):
        self._store_figures = store_figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            figures = self._store_figures()
        except Exception as error:  # noqa: BLE001 - the counters are still worth a scrape
            log.warning("/metrics without the store's figures: %s", (str(error).strip() or type(error).__name__).splitlines()[0])
            return
        servers = GaugeMetricFamily("opscm_servers", "Servers by engine and status.", labels=["engine", "status"])
        counts = {(engine, str(status)): 0 for engine in SUPPORTED_ENGINES for status in ServerStatus}
        for server in figures.servers:
            counts[(server.engine, server.status)] = counts.get((server.engine, server.status), 0) + 1
        for (engine, status), count in sorted(counts.items()):
            servers.add_metric([engine, status], count)
        yield servers

        jobs = GaugeMetricFamily("opscm_jobs", "Background jobs pending, and failed (kept a day).", labels=["state"])
        for state in JOB_STATES:
            jobs.add_metric([state], figures.jobs_by_state.get(state, 0))
        yield jobs

        where = ["account", "region", "server"]
        expiry = GaugeMetricFamily(
            "opscm_certificate_expiry_seconds",
            "Seconds until the first certificate of a server's built-in Puppet CA expires (the CA's own, or a node's in force).",
            labels=where,
        )
        crl_age = GaugeMetricFamily(
            "opscm_crl_age_seconds", "Seconds since the CRL of a server's built-in Puppet CA was signed.", labels=where
        )
        for server in figures.servers:
            status = server.certificates
            if status is None:
                continue
            labels = [server.account_id, server.region, server.name]
            if status.soonest_expiry is not None:
                expiry.add_metric(labels, (status.soonest_expiry - figures.now).total_seconds())
            if status.crl_issued_at is not None:
                crl_age.add_metric(labels, (figures.now - status.crl_issued_at).total_seconds())
        yield expiry
        yield crl_age


class SharedDirectory:
    """The directory the workers' counts are written to (made by the supervisor)."""

    def __init__(self, path: Path, owned: bool):
        self.path = path
        self._owned = owned

    def worker_ended(self, pid: int) -> None:
        mark_process_dead(pid, str(self.path))  # its live gauges stop counting; its counts stay

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


def share_between_processes(environ=os.environ) -> SharedDirectory:
    """In the supervisor, before forking: metrics made from now on, in this process and its
    children, are written to files of a directory that any process's scrape sums.

    The directory is ``$PROMETHEUS_MULTIPROC_DIR`` when set (its ``*.db`` files are wiped), else
    a new private temporary one, removed at exit. Never in the data dir: prometheus-client's
    files are memory-mapped and grow sparse, and a write into them on a full disk kills the
    process (SIGBUS), where opscm answers a full data dir with 503s.
    """
    given = environ.get(SHARED_DIRECTORY_VARIABLE)
    if given:
        path = Path(given)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's counts
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="opscm-metrics-"))
    os.environ[SHARED_DIRECTORY_VARIABLE] = str(path)
    # prometheus-client reads the variable once, when first imported: opscm imported it already.
    values.ValueClass = values.get_value_class()
    return SharedDirectory(path, owned=not given)


def _shared_directory() -> str | None:
    """Where this process's counts are written, when they are shared between processes."""
    return os.environ.get(SHARED_DIRECTORY_VARIABLE) if getattr(values.ValueClass, "_multiprocess", False) else None
