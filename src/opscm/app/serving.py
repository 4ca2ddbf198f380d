"""How ``opscm serve`` reaches clients: listening sockets made before the workers fork (one per
worker on the API's port, see :func:`make_listeners`), uvicorn in each worker with opscm's HTTP
protocol, and the supervisor that keeps N workers.

The parent makes the sockets, the TLS context's files, the schema and the admin credential,
then forks the workers; each builds its own :class:`Application` (no connection, thread or
lock crosses a fork), serves its sockets, and competes for the data store's leadership
(see ``leadership.py``). The parent prints the ready line once all of them serve, restarts a
worker that dies, and stops them all on SIGTERM / SIGINT.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable

import uvicorn

from .composition import Application, Settings
from .connection_shares import WorkerShare
from .http_protocol import DEFAULT_HEADER_TIMEOUT, FastLane, protocol_class
from .leadership import lock_for
from .tls import TlsFiles

log = logging.getLogger("opscm.serving")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long stopping workers may finish their requests before they are killed.
STOP_GRACE_SECONDS = 30.0
# A worker that dies sooner than this after its start is restarted after this long (no hot loop).
RESTART_DELAY_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class HttpOptions:
    max_connections: int = 1000  # per worker; further requests are answered 503 and closed
    keep_alive: float = 5.0  # seconds an idle connection is kept between requests
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # seconds a connection may take to send a whole request head
    tls: TlsFiles | None = None


def make_listener(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, reuse_port=reuse_port)
    # Linux hands the option down to accepted sockets (the TLS handshake, too); the protocol
    # sets it again on each connection, wherever the socket came from.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def make_listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port, one per worker (SO_REUSEPORT): the kernel spreads
    new connections over them. On one shared socket, the worker that wakes first accepts every
    connection waiting, so a burst of keep-alive clients (a boot storm's first second, a test
    suite's pool) can all land on one worker and leave the other cores idle.

    A plain socket bound first proves the port free: a socket with SO_REUSEPORT would otherwise
    join the group of another process of the same user on that port and silently share it."""
    if count <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [make_listener(host, port)] * count  # one socket, shared
    probe = make_listener(host, port)
    port = probe.getsockname()[1]
    probe.close()
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            listeners.append(make_listener(host, port, reuse_port=True))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def own_socket(listeners: list[socket.socket], index: int) -> socket.socket:
    """In worker ``index``: its socket of :func:`make_listeners`; the copies of the others' that
    the fork handed down are closed (the supervisor keeps them for the workers it restarts)."""
    mine = listeners[index]
    for listener in listeners:
        if listener is not mine:
            listener.close()
    return mine


def uvicorn_config(asgi, options: HttpOptions, lane: FastLane | None = None) -> uvicorn.Config:
    config = uvicorn.Config(
        asgi,
        http=protocol_class(options.header_timeout, lane),
        loop="uvloop",
        ws="none",
        lifespan="off",
        access_log=False,
        server_header=False,  # "server: uvicorn" tells a client nothing it needs, on every answer
        log_config=None,  # opscm's logging, set up once (app/logs.py), holds for uvicorn's loggers too
        log_level=None,
        limit_concurrency=options.max_connections,
        timeout_keep_alive=options.keep_alive,  # type: ignore[arg-type]  # seconds, a float is fine
        timeout_graceful_shutdown=STOP_GRACE_SECONDS - 5,  # type: ignore[arg-type]
    )
    if options.tls is not None:
        context = options.tls.server_context()
        config.ssl_context_factory = lambda _config, _default: context
    return config


class ServingServer(uvicorn.Server):
    """uvicorn's server, telling ``on_ready`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] = lambda: None):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets=None):
        await super().startup(sockets)
        if not self.should_exit:
            self._on_ready()


def run_worker(
    settings: Settings,
    options: HttpOptions,
    listeners: list[socket.socket],
    on_ready: Callable[[], None],
    share: WorkerShare | None = None,
) -> int:
    """One worker process: its own Application on its sockets (returns its exit status): its own
    on the API's port, and the metrics port's (shared) when there is one. ``share``: its count
    of the workers' connections, when there are several (see ``connection_shares.py``)."""
    app = Application(settings)
    if share is not None and app.metrics is not None:
        app.metrics.watch_connections(share)
    asgi = app.asgi
    if len(listeners) > 1:
        asgi = by_local_port({listeners[1].getsockname()[1]: app.metrics_asgi}, app.asgi)
    app.start(leadership=lock_for(app.database, settings.data_dir))
    freeze_startup_objects()
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, to the handler found at
    # start: a handler that ignores it turns a requested stop into a clean exit.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, lambda *_: None)
    try:
        lane = FastLane(app.asgi, listeners[0].getsockname()[1], share)
        ServingServer(uvicorn_config(asgi, options, lane), on_ready).run(sockets=listeners)
    finally:
        app.close()
    return 0


def freeze_startup_objects() -> int:
    """Leave what a worker made to start (the service model, SQLAlchemy's metadata, routes:
    ~100,000 objects, alive as long as it is) out of the garbage collector's full collections:
    each walked them all, a 47 ms stall of the worker's event loop, which a storm of 64 Puppet
    clients met as a p99 of 2.7-4.4x the median (1.5-1.9x frozen). Returns how many are frozen."""
    gc.collect()  # what startup left as garbage is not kept forever
    gc.freeze()
    return gc.get_freeze_count()


def by_local_port(apps: dict[int, Callable], default: Callable) -> Callable:
    """One ASGI app per listening port (uvicorn serves every socket it is given with one app)."""

    async def route(scope, receive, send) -> None:
        server = scope.get("server")
        await apps.get(server[1] if server else None, default)(scope, receive, send)

    return route


class Supervisor:
    """Keeps ``count`` workers forked from this process; ``work(index, on_ready)`` runs in each;
    ``on_worker_exit(pid)`` is told of each worker that ended."""

    def __init__(
        self,
        count: int,
        work: Callable[[int, Callable[[], None]], int],
        on_worker_exit: Callable[[int], None] | None = None,
    ):
        self._count = count
        self._work = work
        self._on_worker_exit = on_worker_exit or (lambda _pid: None)
        self._workers: dict[int, tuple[int, float]] = {}  # pid -> (index, start time)
        self._started: set[int] = set()  # indexes started at least once
        self._stopping = False

    def run(self, on_ready: Callable[[], None]) -> int:
        """Until a stop signal (0), or a worker that could not start (1)."""
        ready_read, ready_write = os.pipe()
        self._ready_write = ready_write
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, self._stop)
        for index in range(self._count):
            self._spawn(index)
        waiting = self._count  # workers of the first round not serving yet
        try:
            while not self._stopping:
                readable, _, _ = select.select([ready_read], [], [], 0.2)
                if readable:
                    tokens = os.read(ready_read, 4096)
                    if waiting > 0 and waiting - len(tokens) <= 0:
                        on_ready()
                    waiting -= len(tokens)
                for pid, index, status in self._reap():
                    self._on_worker_exit(pid)
                    if self._stopping:
                        break
                    if waiting > 0:
                        log.error("worker %d (pid %d) could not start (%s): stopping", index + 1, pid, status)
                        return 1
                    log.warning("worker %d (pid %d) ended (%s): starting another", index + 1, pid, status)
                    self._spawn(index)
            return 0
        finally:
            self._stop_all()
            os.close(ready_read)
            os.close(ready_write)

    def _stop(self, *_args) -> None:
        self._stopping = True

    def _spawn(self, index: int) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                _follow_the_parent(supervisor)
                for stop_signal in STOP_SIGNALS:
                    signal.signal(stop_signal, signal.SIG_DFL)
                status = self._work(index, lambda: os.write(self._ready_write, b"r"))
            except BaseException as error:  # noqa: BLE001 - one line, never a traceback, then out
                log.error("worker %d: %s", index + 1, error)
            finally:
                logging.shutdown()
                os._exit(status)  # never back into the parent's code
        restarted = index in self._started
        self._started.add(index)
        self._workers[pid] = (index, time.monotonic())
        log.info("worker %d of %d serving as pid %d%s", index + 1, self._count, pid, " (restarted)" if restarted else "")

    def _reap(self):
        """The workers that ended since the last call: (pid, index, why)."""
        ended = []
        while self._workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            index, started = self._workers.pop(pid, (None, 0.0))
            if index is None:
                continue
            if time.monotonic() - started < RESTART_DELAY_SECONDS and not self._stopping:
                time.sleep(RESTART_DELAY_SECONDS)
            ended.append((pid, index, _why(status)))
        return ended

    def _stop_all(self) -> None:
        for pid in self._workers:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self._workers and time.monotonic() < deadline:
            for pid, _index, _status in self._reap():
                pass
            time.sleep(0.05)
        for pid in list(self._workers):
            log.warning("worker pid %d did not stop in %gs: killed", pid, STOP_GRACE_SECONDS)
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self._workers.clear()


def _follow_the_parent(supervisor: int) -> None:
    """In a new worker: stop only when the supervisor says so, and when it dies.

    A group of its own keeps a terminal's Ctrl-C for the supervisor (which then stops every
    worker, none restarted by mistake); PR_SET_PDEATHSIG ends a worker whose supervisor was killed
    (Linux; elsewhere orphans serve on until stopped)."""
    os.setpgid(0, 0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _why(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
