"""SQLite's group commit (store/wal_sync.py, app/durable_answers.py): the event loop's writes
commit without waiting for the disk, one fsync of the WAL makes a group of them durable, and no
answer leaves before the commits made before it are on disk. While other requests are in
progress the sync runs in a thread of its own on a slow disk, and on the loop at the end of its
turn on a fast one; a request alone is synced on the loop."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import threading
import time

import pytest

from opscm.app.composition import Application, Settings
from opscm.app.durable_answers import FEW, LOOP_SYNC_SECONDS
from opscm.app.http_protocol import ALONE_LOOKS_AT
from opscm.store.wal_sync import WalSync
from tests.support.asgi_server import ThreadServer
from tests.support.http_wire import Answers, api_request, connect
from tests.support.in_process import call, wait_until_healthy
from tests.support.requests import create_server_params, public_pem, rsa_key


class Disk:
    """The WAL sync's fsync, recorded (the inode each call synced), and held while ``hold`` is
    clear; ``fail`` makes it fail as a dying disk does. A slow disk (each sync takes 5 ms, more
    than durable_answers.LOOP_SYNC_SECONDS) unless ``fast``: then no sync waits for anything."""

    def __init__(self):
        self.synced: list[int] = []
        self.threads: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.waiting = threading.Event()
        self.fail = False
        self.fast = False

    def fsync(self, fd: int) -> None:
        self.waiting.set()
        assert self.hold.wait(10)
        if self.fail:
            raise OSError(5, "Input/output error")
        if not self.fast:
            os.fsync(fd)
            time.sleep(5 * LOOP_SYNC_SECONDS)
        self.synced.append(os.fstat(fd).st_ino)
        self.threads.append(threading.current_thread().name)


@pytest.fixture
def app(tmp_path):
    application = Application(
        Settings(
            data_dir=tmp_path, verify_signatures=False, ca_key_bits=2048, schedule_interval=0, health_interval=0,
            checkpoint_apart=True, group_commit=True,
        )
    )  # fmt: skip
    application.start()
    application.disk = Disk()
    application.deps.uow.wal._sync_data = application.deps.uow.wal._sync_dir = application.disk.fsync
    status, answer = call(application, "CreateServer", json.dumps(create_server_params("chef", "ChefAutomate")).encode())
    assert status == 200, answer
    yield application
    application.close()


@pytest.fixture
def served(app):
    wait_until_healthy(app, "chef")
    with ThreadServer(app.asgi, lane=app.asgi) as server:
        yield server


def _associate(node: str) -> bytes:
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
    return api_request("AssociateNode", {"ServerName": "chef", "NodeName": node, "EngineAttributes": attributes})


def _associations(app) -> int:
    with sqlite3.connect(app.settings.data_dir / "opscm.db") as db:
        return db.execute("SELECT count(*) FROM associations").fetchone()[0]


def _wal_inode(app) -> int:
    return os.stat(app.settings.data_dir / "opscm.db-wal").st_ino


def _nothing_arrives(sock, seconds: float = 0.5) -> bool:
    readable, _, _ = select.select([sock], [], [], seconds)
    return not readable


def _busy(server):
    """A connection whose request is in progress (its body still on its way): the others' syncs
    then run in the sync thread, not on the loop."""
    sock = connect(server)
    sock.sendall(api_request("DescribeServers", {"ServerName": "chef"})[:-3])
    return sock


def _send_split(sock, request: bytes) -> None:
    """The body in two reads: uvicorn's cycle answers it, not the fast lane."""
    sock.sendall(request[:-5])
    select.select([], [], [], 0.2)
    sock.sendall(request[-5:])


@pytest.mark.parametrize("way", ["lane", "uvicorn"])
def test_an_answer_waits_until_its_commit_is_on_disk(app, served, way):
    with connect(served) as sock, _busy(served):
        answers = Answers(sock)
        sock.sendall(_associate("warm"))  # the server's row cached: the next change runs on the loop
        assert answers.next()[0] == 200
        before = _associations(app)

        app.disk.hold.clear()
        app.disk.waiting.clear()
        request = _associate("held")
        sock.sendall(request) if way == "lane" else _send_split(sock, request)
        assert app.disk.waiting.wait(10), "the commit was never synced"
        # Committed (another connection sees it), but not on disk yet: the client hears nothing.
        assert _associations(app) == before + 1
        assert _nothing_arrives(sock)

        app.disk.hold.set()
        status, _, body = answers.next()
        assert status == 200, body
        token = json.loads(body)["NodeAssociationStatusToken"]
        assert app.disk.synced[-1] == _wal_inode(app)  # the WAL itself was synced
        assert app.disk.threads[-1].startswith("opscm-wal-sync")
        wal = app.deps.uow.wal
        assert wal.synced == wal.counted >= 1

        sock.sendall(api_request("DescribeNodeAssociationStatus", {"ServerName": "chef", "NodeAssociationStatusToken": token}))
        status, _, body = answers.next()
        assert (status, json.loads(body)["NodeAssociationStatus"]) == (200, "SUCCESS")


def test_one_sync_serves_the_answers_of_its_moment(app, served):
    with connect(served) as first:
        first.sendall(_associate("warm"))
        assert Answers(first).next()[0] == 200
    wal = app.deps.uow.wal
    counted = wal.counted
    syncs = app.disk.synced.count(_wal_inode(app))
    app.disk.hold.clear()
    app.disk.waiting.clear()
    socks = [connect(served) for _ in range(6)]
    busy = _busy(served)
    try:
        socks[0].sendall(_associate("n0"))
        assert app.disk.waiting.wait(10)  # the first sync is under way, held
        for i, sock in enumerate(socks[1:], 1):
            sock.sendall(_associate(f"n{i}"))
        deadline = time.monotonic() + 10
        while wal.counted < counted + 6:  # every commit made while the first sync is held
            assert time.monotonic() < deadline, "the changes were not committed"
            time.sleep(0.01)
        assert all(_nothing_arrives(sock, 0.05) for sock in socks)
        app.disk.hold.set()
        assert [Answers(sock).next()[0] for sock in socks] == [200] * 6
    finally:
        for sock in (*socks, busy):
            sock.close()
    # The held sync (n0's), then one for the five commits made meanwhile.
    assert app.disk.synced.count(_wal_inode(app)) - syncs == 2


def test_a_request_alone_is_synced_on_the_event_loop(app, served):
    with connect(served) as sock:
        answers = Answers(sock)
        sock.sendall(_associate("warm"))
        assert answers.next()[0] == 200
        syncs = len(app.disk.synced)
        sock.sendall(_associate("alone"))
        assert answers.next()[0] == 200
    assert len(app.disk.synced) > syncs and app.disk.synced[-1] == _wal_inode(app)
    assert not app.disk.threads[-1].startswith("opscm-wal-sync")  # uvicorn's thread: the loop's
    assert app.deps.uow.wal.synced == app.deps.uow.wal.counted


def _associated(sock, answers, *nodes: str) -> None:
    for node in nodes:
        sock.sendall(_associate(node))
        assert answers.next()[0] == 200


def _on_a_fast_disk(app, served, sock, answers) -> None:
    """The server's row cached, syncs measured fast, then a sync made on the loop while another
    request is in progress (the caller's ``_busy``). A busy machine can stretch a measured sync
    past LOOP_SYNC_SECONDS (its thread waiting for the GIL or a core): the expected time then
    takes a few fast syncs to come back down, so the changes go on until one is synced on the
    loop, a bounded number of times."""
    app.disk.fast = True
    _associated(sock, answers, "warm", "measured")
    for attempt in range(40):
        _associated(sock, answers, f"fast-{attempt}")
        if app.disk.threads[-1] == served.thread.name:
            return
    raise AssertionError(f"no sync was made on the loop in 40 changes on a fast disk: {app.disk.threads[-5:]}")


def test_on_a_fast_disk_an_answer_waits_for_a_sync_made_on_the_loop(app, served):
    with connect(served) as sock, _busy(served):
        answers = Answers(sock)
        _on_a_fast_disk(app, served, sock, answers)
        syncs = len(app.disk.synced)

        app.disk.hold.clear()
        app.disk.waiting.clear()
        sock.sendall(_associate("held-on-the-loop"))
        assert app.disk.waiting.wait(10), "the commit was never synced"
        assert _nothing_arrives(sock)
        app.disk.hold.set()
        assert answers.next()[0] == 200
    assert len(app.disk.synced) == syncs + 1 and app.disk.threads[-1] == served.thread.name
    assert app.deps.uow.wal.synced == app.deps.uow.wal.counted


def test_with_more_than_a_few_requests_in_progress_even_a_fast_disk_syncs_in_the_thread(app, served):
    # On the loop, a sync slowed by a checkpoint would stall them all.
    with connect(served) as sock, _busy(served):
        answers = Answers(sock)
        _on_a_fast_disk(app, served, sock, answers)
        crowd = [_busy(served) for _ in range(FEW)]  # with the first: more than a few in progress
        try:
            _associated(sock, answers, "crowded")
        finally:
            for other in crowd:
                other.close()
    assert app.disk.threads[-1] == "opscm-wal-sync_0"


def test_a_disk_that_slows_down_gets_its_syncs_made_in_the_thread(app, served):
    with connect(served) as sock, _busy(served):
        answers = Answers(sock)
        _on_a_fast_disk(app, served, sock, answers)
        app.disk.fast = False  # 5 ms a sync from now on
        _associated(sock, answers, "slow", "slower")
    # The first slow sync was made on the loop, and seen: the next one went to the thread.
    assert app.disk.threads[-2:] == [served.thread.name, "opscm-wal-sync_0"]


def test_among_many_connections_no_request_is_taken_for_alone(app, served):
    idle = [connect(served) for _ in range(ALONE_LOOKS_AT + 1)]  # connected, no request
    try:
        with connect(served) as sock:
            answers = Answers(sock)
            sock.sendall(_associate("warm"))
            assert answers.next()[0] == 200
            sock.sendall(_associate("crowded"))
            assert answers.next()[0] == 200
    finally:
        for other in idle:
            other.close()
    assert app.disk.threads[-1].startswith("opscm-wal-sync")


def test_a_disk_that_fails_to_sync_gets_503_and_no_success(app, served):
    with connect(served) as sock:
        answers = Answers(sock)
        sock.sendall(_associate("warm"))
        assert answers.next()[0] == 200

        app.disk.fail = True
        for node, other in (("lost", None), ("after", _busy(served))):  # once failed, every later one fails too
            sock.sendall(_associate(node))
            status, _, body = answers.next()
            answer = json.loads(body)
            assert status == 503, answer
            assert answer["__type"] == "ServiceUnavailable" and "sync" in answer["message"]
            if other is not None:
                other.close()


def test_only_the_event_loops_writes_skip_the_sync(app):
    wait_until_healthy(app, "chef")  # the creation job's writes are done: the loop's write never waits
    uow = app.deps.uow
    with uow(lean=True) as thread_write:
        assert thread_write._driver.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: synced at commit
        thread_write.commit()
    with uow.without_waiting(), uow(lean=True) as loop_write:
        assert loop_write._driver.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: synced as a group
        counted = uow.wal.counted
        loop_write.commit()
    assert uow.wal.counted == counted + 1 and uow.wal.pending()


def test_an_in_memory_database_has_no_group_commit():
    mock = Application(Settings(verify_signatures=False, schedule_interval=0, health_interval=0, group_commit=True))
    try:
        assert mock.deps.uow.wal is None
    finally:
        mock.close()


def test_a_new_wal_file_is_synced_with_its_directory(tmp_path):
    database = tmp_path / "db"
    synced: list[int] = []
    record = lambda fd: synced.append(os.fstat(fd).st_ino)  # noqa: E731
    sync = WalSync(database, sync_data=record, sync_dir=record)
    sync.committed()
    sync.sync()  # no WAL file: every commit is in the database file
    assert synced == [] and not sync.pending()

    wal = tmp_path / "db-wal"
    wal.write_bytes(b"frames")
    sync.committed()
    sync.sync()
    assert synced == [os.stat(tmp_path).st_ino, os.stat(wal).st_ino]  # its name first, then its frames
    wal.unlink()
    wal.write_bytes(b"a new log")  # SQLite made a new WAL after its last connection closed
    synced.clear()
    sync.committed()
    sync.sync()
    assert synced == [os.stat(tmp_path).st_ino, os.stat(wal).st_ino]
    sync.close()
