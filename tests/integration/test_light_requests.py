"""Which requests ``opscm serve`` answers on its event loop, and which in a thread.

A boot storm's requests on the built-in engines are answered on the event loop, without the
hand-off to a thread; a Puppet change's signature alone runs in a thread, while the loop answers
other requests. A light change that finds SQLite's write lock taken never waits on the event loop: it
runs again in a thread, and is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import concurrent.futures
import json
import os
import sqlite3
import threading
import time

import psycopg
import pytest

from opscm.app.composition import Application, Settings
from opscm.app.durable_answers import FEW
from opscm.protocol.json11 import HttpRequest, HttpResponse, joined_headers
from opscm.service.ports import WouldWait
from opscm.store import database
from opscm.store.database import checkpoint_wal
from opscm.store.sql import SqlAssociations
from opscm.store import lean_connections
from opscm.store.lean_connections import (
    LOOP_LOCK_TIMEOUT_MS,
    LOOP_WRITER,
    POSTGRES_CONNECTIONS,
    READER,
    WRITER,
    LeanConnections,
)
from tests.support.in_process import TARGET_PREFIX, call, wait_until_healthy
from tests.support.postgres import fresh_database
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key


class CountingThreads(concurrent.futures.ThreadPoolExecutor):
    """The request threads, counting what is handed to them."""

    def __init__(self):
        super().__init__(4, thread_name_prefix="test-request")
        self.handed = 0

    def submit(self, *args, **kwargs):
        self.handed += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def app(tmp_path):
    application = Application(
        Settings(data_dir=tmp_path, verify_signatures=False, ca_key_bits=2048, schedule_interval=0, health_interval=0)
    )
    application.start()
    application.asgi._threads = CountingThreads()
    yield application
    application.close()


def _served(app, operation: str, params: dict) -> tuple[int, dict]:
    return asyncio.run(_served_async(app, operation, params))


async def _served_async(app, operation: str, params: dict) -> tuple[int, dict]:
    """One request through the ASGI application, as uvicorn hands it over."""
    body = json.dumps(params).encode()
    scope = {
        "type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"",
        "headers": [
            (b"x-amz-target", f"{TARGET_PREFIX}.{operation}".encode()),
            (b"content-type", b"application/x-amz-json-1.1"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app.asgi(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def _in_lane(app, operation: str, params: dict, others: int = 0) -> tuple[int, dict]:
    """One request as the fast lane hands it over, with ``others`` other requests of the process
    in progress."""
    body = json.dumps(params).encode()
    headers = joined_headers(
        [("x-amz-target", f"{TARGET_PREFIX}.{operation}"), ("content-type", "application/x-amz-json-1.1")]
    )
    request = HttpRequest(method="POST", path="/", query="", headers=headers, body=body)

    async def answer():
        answer = app.asgi.answer_now(request, lambda: others)
        if isinstance(answer, HttpResponse):
            return answer
        return await app.asgi.answer_later(answer, len(body), lambda: others)

    response = asyncio.run(answer())
    return response.status, json.loads(response.body)


def _healthy_server(app, name: str, engine: str) -> None:
    status, answer = call(app, "CreateServer", json.dumps(create_server_params(name, engine)).encode())
    assert status == 200, answer
    wait_until_healthy(app, name)


def _chef_attributes(key=None) -> list[dict]:
    return [
        {"Name": "CHEF_ORGANIZATION", "Value": "default"},
        {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(key or rsa_key())},
    ]


def _final_status(app, server: str, token: str) -> str:
    status, answer = _served(app, "DescribeNodeAssociationStatus", {"ServerName": server, "NodeAssociationStatusToken": token})
    assert status == 200, answer
    return answer["NodeAssociationStatus"]


def test_builtin_chef_changes_are_answered_on_the_event_loop(app):
    _healthy_server(app, "chef", "ChefAutomate")
    key = rsa_key()
    status, answer = _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": "warm", "EngineAttributes": _chef_attributes(key)})
    assert status == 200, answer
    handed = app.asgi._threads.handed  # the first one may read the server row in a thread

    tokens = []
    for i in range(3):
        status, answer = _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": f"n{i}", "EngineAttributes": _chef_attributes(key)})
        assert status == 200, answer
        tokens.append(answer["NodeAssociationStatusToken"])
    status, answer = _served(app, "DisassociateNode", {"ServerName": "chef", "NodeName": "n0", "EngineAttributes": _chef_attributes()[:1]})
    assert status == 200, answer
    tokens.append(answer["NodeAssociationStatusToken"])

    assert [_final_status(app, "chef", token) for token in tokens] == ["SUCCESS"] * 4
    assert app.asgi._threads.handed == handed, "no Chef change nor status was handed to a thread"
    # Other requests still run in a thread.
    assert _served(app, "DescribeServers", {"ServerName": "chef"})[0] == 200
    assert app.asgi._threads.handed == handed + 1


def test_puppet_changes_sign_in_a_thread_while_the_loop_goes_on(app):
    _healthy_server(app, "puppet", "Puppet")
    csr = lambda name: [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(name)}]  # noqa: E731
    assert _served(app, "AssociateNode", {"ServerName": "puppet", "NodeName": "warm", "EngineAttributes": csr("warm")})[0] == 200

    # The signature waits until the test says so: meanwhile the event loop answers others.
    engine = app.deps.engines["Puppet"]
    signing, go_on = threading.Event(), threading.Event()
    sign = engine.prepare_change

    def slow_prepare(*args):
        signing.set()
        assert go_on.wait(10)
        return sign(*args)

    engine.prepare_change = slow_prepare
    params = {"ServerName": "puppet", "NodeName": "p1", "EngineAttributes": csr("p1")}
    describe = {"ServerName": "puppet", "NodeAssociationStatusToken": "not-a-token"}

    async def scenario():
        before = app.asgi._threads.handed
        association = asyncio.ensure_future(_served_async(app, "AssociateNode", params))
        while not signing.is_set():
            await asyncio.sleep(0.01)
        status, answer = await _served_async(app, "DescribeNodeAssociationStatus", describe)
        assert (status, answer["__type"]) == (400, "ResourceNotFoundException")  # answered meanwhile
        assert not association.done()
        go_on.set()
        status, answer = await association
        assert status == 200, answer
        assert app.asgi._threads.handed == before + 1, "only the signature ran in a thread"
        return answer["NodeAssociationStatusToken"]

    token = asyncio.run(scenario())
    assert _final_status(app, "puppet", token) == "SUCCESS"


@pytest.fixture
def postgres_app(tmp_path):
    """opscm on PostgreSQL, its request threads and the store's counting what they are handed."""
    with fresh_database() as url:
        application = Application(
            Settings(data_dir=tmp_path, database_url=url, verify_signatures=False, schedule_interval=0, health_interval=0)
        )
        try:
            application.start()
            assert application.asgi._store_threads._max_workers == POSTGRES_CONNECTIONS
            application.asgi._threads, application.asgi._store_threads = CountingThreads(), CountingThreads()
            yield application
        finally:
            application.close()


def _warm_chef(app) -> None:
    """A Chef server, and an association and a poll: the hot path's connections are made (in a
    thread: a connect would hold the loop) and the server row is cached."""
    _healthy_server(app, "chef", "ChefAutomate")
    status, answer = _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": "warm", "EngineAttributes": _chef_attributes()})
    assert status == 200, answer
    assert _final_status(app, "chef", answer["NodeAssociationStatusToken"]) == "SUCCESS"


def test_on_a_near_postgresql_a_boot_storm_among_few_requests_is_answered_on_the_event_loop(postgres_app, monkeypatch):
    """PostgreSQL on the same host (or near it): a lean transaction's few round trips cost the
    loop less than the hand-off to a thread and back costs the CPU, while few other requests
    are in progress. Among many they run in the store's threads, side by side."""
    app = postgres_app
    threads, store = app.asgi._threads, app.asgi._store_threads
    _warm_chef(app)
    measured = app.deps.uow._lean_connections.round_trip
    assert 0 < measured < 0.1, "making a connection measured how far the database is"
    # Near whatever this machine measured (a busy one may take longer than a quiet one).
    monkeypatch.setattr(lean_connections, "NEAR_ROUND_TRIP_SECONDS", max(1.0, measured))
    handed, stored = threads.handed, store.handed
    chef = {"ServerName": "chef", "EngineAttributes": _chef_attributes()}
    status, answer = _in_lane(app, "AssociateNode", {**chef, "NodeName": "n1"}, others=FEW)
    assert status == 200, answer
    poll = {"ServerName": "chef", "NodeAssociationStatusToken": answer["NodeAssociationStatusToken"]}
    assert _in_lane(app, "DescribeNodeAssociationStatus", poll, others=FEW)[1]["NodeAssociationStatus"] == "SUCCESS"
    status, answer = _in_lane(app, "DisassociateNode", {**chef, "NodeName": "n1", "EngineAttributes": _chef_attributes()[:1]})
    assert status == 200, answer
    assert (threads.handed, store.handed) == (handed, stored), "nothing was handed to a thread"

    status, answer = _in_lane(app, "AssociateNode", {**chef, "NodeName": "n2"}, others=FEW + 1)
    assert status == 200, answer
    poll = {"ServerName": "chef", "NodeAssociationStatusToken": answer["NodeAssociationStatusToken"]}
    assert _in_lane(app, "DescribeNodeAssociationStatus", poll, others=FEW + 1)[1]["NodeAssociationStatus"] == "SUCCESS"
    assert (threads.handed, store.handed) == (handed, stored + 2), "among many, in the store's threads"
    assert _served(app, "DescribeServers", {"ServerName": "chef"})[0] == 200
    assert (threads.handed, store.handed) == (handed + 1, stored + 2)


def test_on_a_far_postgresql_a_boot_storm_runs_in_the_stores_threads(postgres_app, monkeypatch):
    """Each round trip would hold the loop: the boot storm's requests run in threads of their
    own, as many as the store's connections, even alone; anything else in the request threads."""
    app = postgres_app
    threads, store = app.asgi._threads, app.asgi._store_threads
    monkeypatch.setattr(lean_connections, "NEAR_ROUND_TRIP_SECONDS", 0.0)
    _warm_chef(app)
    handed, stored = threads.handed, store.handed
    params = {"ServerName": "chef", "NodeName": "n1", "EngineAttributes": _chef_attributes()}
    status, answer = _in_lane(app, "AssociateNode", params)
    assert status == 200, answer
    poll = {"ServerName": "chef", "NodeAssociationStatusToken": answer["NodeAssociationStatusToken"]}
    assert _in_lane(app, "DescribeNodeAssociationStatus", poll)[1]["NodeAssociationStatus"] == "SUCCESS"
    assert (threads.handed, store.handed) == (handed, stored + 2)
    assert _served(app, "DescribeServers", {"ServerName": "chef"})[0] == 200
    assert (threads.handed, store.handed) == (handed + 1, stored + 2)


def test_on_postgresql_the_event_loop_never_waits_for_a_row_lock(postgres_app, monkeypatch):
    """A row held by another transaction (here the server's, as a status change holds it): the
    loop's statement gives up at once, rolled back, and the change runs again in a thread, which
    waits for the lock; it is recorded once."""
    app = postgres_app
    monkeypatch.setattr(lean_connections, "NEAR_ROUND_TRIP_SECONDS", 1.0)
    _warm_chef(app)
    holder = psycopg.connect(str(app.deps.uow.engine.url.set(drivername="postgresql")))
    holder.execute("SELECT 1 FROM servers WHERE name = 'chef' FOR UPDATE")
    released = threading.Event()
    release = threading.Timer(10, holder.commit)  # at the latest: a loop that waited would hang here
    release.start()
    try:
        server_id = holder.execute("SELECT id FROM servers WHERE name = 'chef'").fetchone()[0]
        with pytest.raises(WouldWait), app.deps.uow.without_waiting(), app.deps.uow(lean=True) as uow:
            uow.servers.current(server_id)
        assert not released.is_set() and release.is_alive(), "it gave up while the lock was held"
        handed = app.asgi._threads.handed
        threading.Timer(0.3, lambda: (holder.commit(), released.set())).start()
        status, answer = _in_lane(app, "AssociateNode", {"ServerName": "chef", "NodeName": "late", "EngineAttributes": _chef_attributes()})
    finally:
        release.cancel()
    assert status == 200, answer
    assert released.is_set(), "the change in a thread waited for the lock"
    assert app.asgi._threads.handed == handed + 1, "the change ran again in a thread"
    assert _final_status(app, "chef", answer["NodeAssociationStatusToken"]) == "SUCCESS"
    assert holder.execute("SELECT count(*) FROM associations WHERE node_name = 'late'").fetchone()[0] == 1
    assert holder.execute("SELECT count(*) FROM chef_clients WHERE name = 'late'").fetchone()[0] == 1
    holder.close()


def test_the_event_loop_takes_an_idle_postgresql_connection_or_none(postgres_app):
    """Making a connection, or waiting for a free slot, would hold the loop: without waiting a
    connection is an idle one with a free slot, else WouldWait. The loop's writers give up on a
    row lock held for long."""
    connections = LeanConnections(postgres_app.deps.uow.engine, postgres_limit=1)
    try:
        with pytest.raises(WouldWait):
            connections.acquire(READER, wait=False)  # none idle
        handle, reader = connections.acquire(READER)  # made, as a thread makes it
        assert 0 < connections.round_trip < 0.1
        with pytest.raises(WouldWait):
            connections.acquire(READER, wait=False)  # its only slot is taken
        connections.release(handle, reusable=True)
        handle, again = connections.acquire(READER, wait=False)
        assert again is reader
        connections.release(handle, reusable=True)

        with pytest.raises(WouldWait):
            connections.acquire(LOOP_WRITER, wait=False)  # no writer idle either
        handle, writer = connections.acquire(WRITER)
        assert writer.execute("SHOW lock_timeout").fetchone()[0] == "0"
        writer.rollback()
        connections.release(handle, reusable=True)
        handle, loop_writer = connections.acquire(LOOP_WRITER, wait=False)
        assert loop_writer is writer
        writer.rollback()  # the setting outlives the transactions of the connection
        assert writer.execute("SHOW lock_timeout").fetchone()[0] == f"{LOOP_LOCK_TIMEOUT_MS}ms"
        writer.rollback()
        connections.release(handle, reusable=True)
    finally:
        connections.close()
    # Nor a connection of SQLAlchemy's pool (it may have to make one), to read or to write.
    for read_only in (True, False):
        with pytest.raises(WouldWait), postgres_app.deps.uow.without_waiting(), postgres_app.deps.uow(read_only=read_only):
            pass


@pytest.fixture
def postgres_chef(tmp_path):
    """opscm on PostgreSQL with a healthy Chef server."""
    with fresh_database() as url:
        application = Application(
            Settings(data_dir=tmp_path, database_url=url, verify_signatures=False, schedule_interval=0, health_interval=0)
        )
        try:
            application.start()
            _healthy_server(application, "chef", "ChefAutomate")
            yield application
        finally:
            application.close()


def _traced(drivers, path, request):
    """``request()``'s result, and what libpq sent on ``drivers`` meanwhile (its trace lines)."""
    with open(path, "w") as trace:
        for driver in drivers:
            driver.pgconn.trace(trace.fileno())
        try:
            result = request()
        finally:
            for driver in drivers:
                driver.pgconn.untrace()
    return result, path.read_text()


def test_on_postgresql_a_poll_is_one_statement_with_no_transaction_around_it(postgres_chef, tmp_path):
    """BEGIN and ROLLBACK around a single SELECT would be two more round trips (and a ROLLBACK
    drops the connection's prepared statements): what libpq sends says they are gone."""
    params = {"ServerName": "chef", "NodeName": "n1", "EngineAttributes": _chef_attributes()}
    token = _served(postgres_chef, "AssociateNode", params)[1]["NodeAssociationStatusToken"]
    poll = {"ServerName": "chef", "NodeAssociationStatusToken": token}
    assert _served(postgres_chef, "DescribeNodeAssociationStatus", poll)[0] == 200  # a reader is idle now
    readers = [driver for driver, _ in postgres_chef.deps.uow._lean_connections._idle[READER]]
    assert readers
    (status, answer), sent = _traced(
        readers, tmp_path / "libpq.trace", lambda: _served(postgres_chef, "DescribeNodeAssociationStatus", poll)
    )
    assert (status, answer["NodeAssociationStatus"]) == (200, "SUCCESS")
    assert "FROM associations" in sent
    assert "BEGIN" not in sent and "ROLLBACK" not in sent


def test_on_postgresql_a_lean_association_is_two_round_trips(postgres_chef, tmp_path):
    """The writer's pipeline (store/pipelined_writer.py): BEGIN leaves with the name's claim,
    which checks the server's row in the same statement; the key and the token leave with the
    COMMIT. Without it: five (BEGIN, three statements, COMMIT). What libpq sends says so."""
    params = {"ServerName": "chef", "EngineAttributes": _chef_attributes()}
    assert _served(postgres_chef, "AssociateNode", {**params, "NodeName": "warm"})[0] == 200  # a writer is idle now
    idle = postgres_chef.deps.uow._lean_connections._idle
    writers = [connection.driver for kind in (WRITER, LOOP_WRITER) for connection, _ in idle[kind]]
    assert writers
    (status, answer), sent = _traced(
        writers, tmp_path / "libpq.trace", lambda: _served(postgres_chef, "AssociateNode", {**params, "NodeName": "traced"})
    )
    assert status == 200, answer
    assert _final_status(postgres_chef, "chef", answer["NodeAssociationStatusToken"]) == "SUCCESS"
    frontend = [fields for fields in (line.split("\t") for line in sent.splitlines()) if fields[1] == "F"]
    assert [fields[3] for fields in frontend if fields[3] in ("Flush", "Sync")] == ["Flush", "Sync"]
    statements = " ".join(fields[4] for fields in frontend if fields[3] == "Parse")
    assert statements.count("FROM servers") == 1  # within the claim: no read of its own
    for part in ("BEGIN", "FROM servers", "INTO nodes", "INTO chef_clients", "INTO associations", "COMMIT"):
        assert part in statements


def test_a_light_change_never_waits_for_the_write_lock_on_the_event_loop(app, tmp_path):
    _healthy_server(app, "chef", "ChefAutomate")
    assert _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": "warm", "EngineAttributes": _chef_attributes()})[0] == 200

    # Another program holds SQLite's write lock for a moment (outside opscm's gate).
    holder = sqlite3.connect(tmp_path / "opscm.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    released.start()
    try:
        # Not waiting: refused at once, with nothing written.
        with pytest.raises(WouldWait), app.deps.uow.without_waiting(), app.deps.uow(lean=True):
            pass
        handed = app.asgi._threads.handed
        status, answer = _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": "late", "EngineAttributes": _chef_attributes()})
    finally:
        released.join()
        holder.close()
    assert status == 200, answer
    assert app.asgi._threads.handed == handed + 1, "the change ran again in a thread, which waited for the lock"
    assert _final_status(app, "chef", answer["NodeAssociationStatusToken"]) == "SUCCESS"
    with sqlite3.connect(tmp_path / "opscm.db") as db:
        assert db.execute("select count(*) from associations where node_name = 'late'").fetchone()[0] == 1
        assert db.execute("select count(*) from chef_clients where name = 'late'").fetchone()[0] == 1


def test_served_writers_leave_wal_checkpoints_to_the_leader(tmp_path):
    # opscm serve's settings: a checkpoint writes and syncs the database file, which must never
    # happen in a commit on the event loop; the leader's thread checkpoints instead.
    application = Application(
        Settings(data_dir=tmp_path, verify_signatures=False, ca_key_bits=2048, schedule_interval=0,
                 health_interval=0, checkpoint_apart=True)
    )
    try:
        assert "opscm-checkpoint" in [task._name for task in application.periodic]
        with application.deps.uow(lean=True) as uow:
            assert uow._driver.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        application.start()
        _healthy_server(application, "chef", "ChefAutomate")
        for i in range(20):
            params = {"ServerName": "chef", "NodeName": f"n{i}", "EngineAttributes": _chef_attributes()}
            assert call(application, "AssociateNode", json.dumps(params).encode())[0] == 200
        busy, frames, copied = checkpoint_wal(application.database)
        assert busy == 0 and frames > 0 and copied == frames, "every committed page is in the database file"
    finally:
        application.close()


@pytest.fixture
def served_sqlite(tmp_path, monkeypatch):
    """An Application with opscm serve's SQLite settings and a Chef server, its own periodic
    checkpoint stopped (the test makes each one), and a WAL restarted past 20 frames."""
    monkeypatch.setattr(database, "RESTART_FRAMES", 20)
    application = Application(
        Settings(data_dir=tmp_path, verify_signatures=False, ca_key_bits=2048, schedule_interval=0,
                 health_interval=0, checkpoint_apart=True)
    )
    try:
        application.start()
        next(task for task in application.periodic if task._name == "opscm-checkpoint").stop()
        _healthy_server(application, "chef", "ChefAutomate")
        yield application
    finally:
        application.close()


def _associate(application, *names: str) -> None:
    for name in names:
        params = {"ServerName": "chef", "NodeName": name, "EngineAttributes": _chef_attributes()}
        assert call(application, "AssociateNode", json.dumps(params).encode())[0] == 200


def _frames_in_wal(application) -> int:
    return checkpoint_wal(application.database)[1]


def _reader_in_wal(application) -> sqlite3.Connection:
    """A read transaction left open on the WAL's newest snapshot (as a poll is, for an instant)."""
    reader = sqlite3.connect(application.database.url.database, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM nodes").fetchone()
    return reader


@contextlib.contextmanager
def _gate_the_reader_leaves(reader: sqlite3.Connection, gate):
    """The writers' gate, as the reader leaves the WAL when a restart begins (as polls do)."""
    reader.execute("COMMIT")
    with gate:
        yield


@pytest.mark.parametrize("leaders", [False, True], ids=["passive alone", "the leader's"])
def test_the_leaders_checkpoint_starts_the_wal_over_where_a_passive_one_cannot(served_sqlite, leaders):
    # SQLite starts a WAL over only once every frame of it is copied and no reader is in it. In
    # a storm some reader or commit always came after a passive checkpoint's snapshot, and the
    # WAL grew by every page written (~45 KB per association; 477 MB in 10 s). Here one reader
    # stands for them: it holds an older snapshot through the passive pass.
    _associate(served_sqlite, *(f"a{i}" for i in range(5)))
    reader = _reader_in_wal(served_sqlite)
    _associate(served_sqlite, "beyond-the-reader")
    gate = _gate_the_reader_leaves(reader, served_sqlite.deps.uow._gate) if leaders else None
    busy, frames, copied = checkpoint_wal(served_sqlite.database, gate)
    reader.close()
    assert frames > 20
    _associate(served_sqlite, "after")
    if leaders:
        assert (busy, copied) == (0, frames)
        assert _frames_in_wal(served_sqlite) < 20, "the next commit wrote the WAL from its start"
    else:
        assert copied < frames
        assert _frames_in_wal(served_sqlite) > frames, "the WAL went on growing"


def test_a_restart_gives_up_on_a_reader_that_stays_and_lets_the_writers_go(served_sqlite):
    _associate(served_sqlite, *(f"a{i}" for i in range(5)))
    reader = _reader_in_wal(served_sqlite)
    _associate(served_sqlite, "beyond-the-reader")  # frames a checkpoint may copy only once it leaves
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # It waits RESTART_WAIT_MS for the reader, not the 30 s of SQLite's busy timeout.
        busy, _frames, _copied = pool.submit(served_sqlite.deps.uow.checkpoint_wal).result(timeout=10)
    assert busy == 1
    _associate(served_sqlite, "while-the-reader-stays")  # the gate was let go
    reader.close()


def _wal(application) -> str:
    return f"{application.database.url.database}-wal"


def _wal_bytes(application) -> int:
    return os.stat(_wal(application)).st_size


def test_a_wal_started_over_keeps_its_file_and_a_short_one_is_truncated_once_the_storm_is_over(served_sqlite, monkeypatch):
    # Cut back at each restart, a storm's WAL grew its file again every second, and the commits
    # waiting for their sync stalled meanwhile: in a storm the file is written again in place.
    monkeypatch.setattr(database, "WAL_SIZE_LIMIT", 4096)
    gate = served_sqlite.deps.uow._gate
    with served_sqlite.deps.uow(lean=True) as uow:  # no writer cuts it back as it starts over
        assert uow._driver.execute("PRAGMA journal_size_limit").fetchone() == (-1,)
    _associate(served_sqlite, *(f"a{i}" for i in range(5)))
    grown = _wal_bytes(served_sqlite)
    busy, frames, copied = checkpoint_wal(served_sqlite.database, gate)
    assert frames > 20 and (busy, copied) == (0, frames)
    _associate(served_sqlite, "after")
    assert _frames_in_wal(served_sqlite) < 20, "the WAL started over"
    assert _wal_bytes(served_sqlite) == grown > database.WAL_SIZE_LIMIT, "in place: its file kept its size"
    # The storm over (a WAL short of RESTART_FRAMES), a file larger than WAL_SIZE_LIMIT is cut.
    assert checkpoint_wal(served_sqlite.database, gate)[0] == 0
    assert _wal_bytes(served_sqlite) == 0
    _associate(served_sqlite, "later")
    assert 0 < _wal_bytes(served_sqlite) < grown


def test_a_wal_file_left_long_by_the_storm_is_truncated_once_none_is_written_for_a_while(served_sqlite, monkeypatch):
    monkeypatch.setattr(database, "WAL_SIZE_LIMIT", 4096)
    gate = served_sqlite.deps.uow._gate
    _associate(served_sqlite, *(f"a{i}" for i in range(5)))
    checkpoint_wal(served_sqlite.database, gate)  # the storm's last restart: no commit after it,
    assert _frames_in_wal(served_sqlite) > 20  # so the WAL still counts its frames
    assert checkpoint_wal(served_sqlite.database, gate)[0] == 0 and _wal_bytes(served_sqlite) > 4096, "written just now"
    quiet = time.time() - database.QUIET_SECONDS
    os.utime(_wal(served_sqlite), (quiet, quiet))
    assert checkpoint_wal(served_sqlite.database, gate)[0] == 0
    assert _wal_bytes(served_sqlite) == 0


def test_a_short_wal_within_its_size_is_left_alone(served_sqlite):
    gate = served_sqlite.deps.uow._gate
    checkpoint_wal(served_sqlite.database, gate)  # the server's creation: started over
    _associate(served_sqlite, "one")
    before = _wal_bytes(served_sqlite)
    busy, frames, copied = checkpoint_wal(served_sqlite.database, gate)
    assert frames <= 20 and _wal_bytes(served_sqlite) == before > 0


@pytest.fixture
def store_polls(monkeypatch):
    """How many polls were read from the store."""
    reads = []
    read = SqlAssociations.get
    monkeypatch.setattr(SqlAssociations, "get", lambda self, token_hash: reads.append(token_hash) or read(self, token_hash))
    return reads


def test_the_poll_right_after_an_association_is_answered_without_reading_the_store(app, store_polls):
    _healthy_server(app, "chef", "ChefAutomate")
    status, answer = _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": "n1", "EngineAttributes": _chef_attributes()})
    assert status == 200, answer
    poll = {"ServerName": "chef", "NodeAssociationStatusToken": answer["NodeAssociationStatusToken"]}
    assert _served(app, "DescribeNodeAssociationStatus", poll)[1]["NodeAssociationStatus"] == "SUCCESS"
    assert store_polls == []
    # Once: a later poll (or one at another worker) reads the store, and gets the same answer.
    assert _served(app, "DescribeNodeAssociationStatus", poll)[1]["NodeAssociationStatus"] == "SUCCESS"
    assert len(store_polls) == 1


def test_a_deleted_servers_association_is_not_answered_from_memory(app, store_polls):
    _healthy_server(app, "chef", "ChefAutomate")
    status, answer = _served(app, "AssociateNode", {"ServerName": "chef", "NodeName": "n1", "EngineAttributes": _chef_attributes()})
    assert status == 200, answer
    assert call(app, "DeleteServer", json.dumps({"ServerName": "chef"}).encode())[0] == 200
    while app.jobs.run_pending() or app.jobs.unfinished():  # the deletion job: its rows go,
        time.sleep(0.02)  # and this process forgets its outcomes
    poll = {"ServerName": "chef", "NodeAssociationStatusToken": answer["NodeAssociationStatusToken"]}
    status, answer = _served(app, "DescribeNodeAssociationStatus", poll)
    assert (status, answer["__type"]) == (400, "ResourceNotFoundException")


def test_elsewhere_writers_checkpoint_as_usual(app):
    # The mock and the command-line tools run no leader's checkpoint: their writers do it.
    with app.deps.uow(lean=True) as uow:
        assert uow._driver.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)


def test_an_idle_job_queue_is_polled_without_the_write_lock(tmp_path):
    """The job runner polls every quarter second; during a boot storm a poll that took SQLite's
    write lock would make the associations queue behind it. With another writer holding the
    lock, a poll of an idle queue returns at once, and a queued job is still run afterwards."""
    app = Application(Settings(data_dir=tmp_path, verify_signatures=False, ca_key_bits=2048))  # not started: polled here
    try:
        holder = sqlite3.connect(tmp_path / "opscm.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            polled = concurrent.futures.ThreadPoolExecutor(1).submit(app.jobs.run_pending)
            assert polled.result(timeout=5) == 0  # a write would wait out the 30 s busy timeout
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert call(app, "CreateServer", json.dumps(create_server_params("queued", "ChefAutomate")).encode())[0] == 200
        assert app.jobs.run_pending() == 1
    finally:
        app.close()
