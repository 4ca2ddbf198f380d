"""``opscm serve --workers N``: N processes on one port (a socket each), background work led by
one of them per data store (SQLite and PostgreSQL), a dead leader replaced, a dead worker
restarted, a burst of connections spread over the workers."""

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opscm.app.serving import make_listener, make_listeners
from tests.support.http_wire import Answers, api_request, connect
from tests.support.postgres import fresh_database
from tests.support.requests import create_server_params
from tests.support.server import start_server, wait_for_status
from tests.support.waiting import wait_for

LEADS = re.compile(r"opscm\.leadership: process (?P<pid>\d+) leads")
WORKER = re.compile(r"opscm\.serving: worker (?P<index>\d+) of (?P<count>\d+) serving as pid (?P<pid>\d+)")


def _leaders(server, since: int = 0) -> list[int]:
    return [int(m["pid"]) for line in server.output[since:] if (m := LEADS.search(line))]


def _workers(server) -> list[int]:
    return [int(m["pid"]) for line in server.output if (m := WORKER.search(line))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def _run_the_model(tmp_path: Path, *store_args: str) -> None:
    server = start_server(tmp_path, "--ca-key-bits", "2048", "--workers", "2", "--tls-self-signed", *store_args)
    try:
        assert sum("opscm: serving on" in line for line in server.output) == 1, "one ready line"
        workers = _workers(server)
        assert len(workers) == 2 and server.process.pid not in workers
        leader = wait_for(lambda: _leaders(server), 10, "a leader")[0]
        assert leader in workers
        client = server.client()
        # Both workers answer (concurrent requests over separate connections), over TLS.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: server.client().describe_account_attributes(), range(16)))
        assert len(answers) == 16
        client.create_server(**create_server_params("led", "ChefAutomate"))
        wait_for_status(client, "led")  # the leader's job runner ran it
        assert len(_leaders(server)) == 1, "one leader per data store"

        # The leader dies: the other worker takes over within seconds, the supervisor starts a third.
        since = len(server.output)
        killed_at = time.monotonic()
        os.kill(leader, signal.SIGKILL)
        new_leader = wait_for(lambda: _leaders(server, since), 10, "a new leader")[0]
        takeover = time.monotonic() - killed_at
        print(f"leader takeover after kill -9: {takeover:.2f}s")
        assert new_leader != leader and new_leader in _workers(server)
        wait_for(lambda: any("(restarted)" in line for line in server.output[since:]), 10, "a restarted worker")
        client.create_server(**create_server_params("after", "Puppet"))
        wait_for_status(client, "after")  # the new leader's job runner ran it

        # A stop signal to the supervisor stops every worker; exit 0.
        workers = _workers(server)
        assert server.stop(signal.SIGTERM) == 0
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        server.stop(signal.SIGKILL)


def test_workers_on_sqlite(tmp_path):
    _run_the_model(tmp_path)


def test_workers_on_postgresql(tmp_path):
    with fresh_database() as url:
        _run_the_model(tmp_path, "--database-url", url)


def test_an_unreachable_database_is_one_line(tmp_path):
    command = [sys.executable, "-m", "opscm", "serve", "--port", "0", "--data-dir", str(tmp_path),
               "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opscm: cannot open the database: "), result.stderr


def test_workers_end_with_their_supervisor(tmp_path):
    server = start_server(tmp_path, "--ca-key-bits", "2048", "--workers", "2")
    workers = _workers(server)
    server.stop(signal.SIGKILL)  # no chance to stop them: the kernel tells them (PR_SET_PDEATHSIG)
    wait_for(lambda: not [pid for pid in workers if _alive(pid)], 10, "the workers' end")


def _sockets_of(pid: int, port: int, state: str) -> set[str]:
    """The inodes of the process's TCP sockets on local ``port`` in ``state`` (/proc: 01
    established, 0A listening)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state and fields[9] in inodes:
            found.add(fields[9])
    return found


def test_a_burst_of_connections_is_spread_over_the_workers(tmp_path):
    """Connections made all at once (a boot storm's first second, a pool of keep-alive clients)
    reach every worker: on one shared socket, the worker that woke first took them all. Each
    worker listens on a socket of its own, and the kernel spreads connections over them."""
    server = start_server(tmp_path, "--ca-key-bits", "2048", "--workers", "2")
    try:
        port = int(server.url.rsplit(":", 1)[1])
        workers = _workers(server)
        listening = [_sockets_of(pid, port, "0A") for pid in workers]
        assert [len(inodes) for inodes in listening] == [1, 1] and listening[0] != listening[1]
        sockets = []
        for _ in range(64):
            connection = socket.socket()
            connection.setblocking(False)
            connection.connect_ex(("127.0.0.1", port))  # all SYNs before any accept
            sockets.append(connection)
        for connection in sockets:
            connection.setblocking(True)
            connection.sendall(b"GET /health HTTP/1.1\r\nhost: opscm\r\n\r\n")
        for connection in sockets:
            assert connection.recv(4096).startswith(b"HTTP/1.1 ")
        held = [len(_sockets_of(pid, port, "01")) for pid in workers]
        assert sum(held) == 64
        assert min(held) >= 8, held  # the kernel's hash: about 32 each (1 in 10^8 below 8)
        for connection in sockets:
            connection.close()
    finally:
        server.stop()


def _peer_ports(pid: int, port: int) -> set[int]:
    """The client ports of the process's established connections on local ``port``."""
    inodes = _sockets_of(pid, port, "01")
    return {
        int(fields[2].rsplit(":", 1)[1], 16)
        for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[9] in inodes
    }


def test_keep_alive_clients_placed_unevenly_are_evened_out_over_the_workers(tmp_path):
    """The kernel places a connection by a hash, whatever the workers hold: a few keep-alive
    clients often land unevenly (8 over 2 workers: 6 and 2 or worse one time in four). Made 7 and 1
    here: the worker holding more than its share answers with ``connection: close``, the clients
    reconnect (as HTTP clients do), and the workers end up holding 4 each. /metrics (on a port of
    its own: its connections are not the API's) shows both."""
    server = start_server(tmp_path, "--ca-key-bits", "2048", "--workers", "2", "--metrics-port", "0")
    try:
        port = int(server.url.rsplit(":", 1)[1])
        workers = _workers(server)
        opened = [connect(server) for _ in range(16)]
        wait_for(lambda: sum(len(_peer_ports(pid, port)) for pid in workers) == 16, 10, "16 connections held")
        held = [_peer_ports(pid, port) for pid in workers]
        busy = max(0, 1, key=lambda index: len(held[index]))  # at least 8 of the 16
        keep = set(sorted(held[busy])[:7]) | set(sorted(held[1 - busy])[:1])
        clients = []
        for connection in opened:
            if connection.getsockname()[1] in keep:
                clients.append([connection, Answers(connection)])
            else:
                connection.close()
        wait_for(lambda: [len(_peer_ports(pid, port)) for pid in workers] in ([7, 1], [1, 7]), 10, "7 and 1")
        time.sleep(0.2)  # the workers have seen the others close
        # Unsigned: refused in the fast lane, which is all this needs.
        request = api_request("DescribeNodeAssociationStatus", {"ServerName": "any", "NodeAssociationStatusToken": "any"})
        reconnected, rounds = 0, 0
        while True:
            rounds += 1
            assert rounds <= 100, f"still uneven after {reconnected} reconnections"
            before = reconnected
            for client in clients:
                if client[0] is None:
                    client[0] = connect(server)
                    client[1] = Answers(client[0])
                client[0].sendall(request)
                status, headers, _ = client[1].next()
                assert 400 <= status < 500  # a whole answer, close or not
                if headers.get("connection") == "close":
                    assert client[1].closed()
                    client[0].close()
                    client[0] = None
                    reconnected += 1
            if reconnected == before:
                break
        assert reconnected >= 3
        wait_for(lambda: [len(_peer_ports(pid, port)) for pid in workers] == [4, 4], 10, "4 and 4")
        print(f"evened out after {reconnected} reconnections in {rounds} rounds")
        metrics_url = next(m[1] for line in server.output if (m := re.search(r"opscm: metrics on (\S+)$", line.strip())))
        scraped = {
            (sample.name, tuple(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(httpx.get(metrics_url).text)
            for sample in family.samples
        }
        assert scraped[("opscm_connections_sent_away_total", ())] == reconnected
        assert [scraped[("opscm_api_connections", (("worker", str(index)),))] for index in (1, 2)] == [4, 4]
        for client in clients:
            client[0].close()
    finally:
        server.stop()


def test_the_workers_sockets_share_one_port_no_other_process_may_join(tmp_path):
    listeners = make_listeners("127.0.0.1", 0, 3)
    try:
        ports = {listener.getsockname()[1] for listener in listeners}
        assert len(ports) == 1 and len(set(listeners)) == 3
        port = ports.pop()
        for attempt in (lambda: make_listeners("127.0.0.1", port, 2), lambda: make_listener("127.0.0.1", port)):
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno == errno.EADDRINUSE
    finally:
        for listener in listeners:
            listener.close()


def test_a_worker_leaves_its_startup_objects_out_of_full_collections(tmp_path):
    """What a worker made to start lives as long as it does: frozen, a full collection (which
    stalls the event loop) walks only what was made since."""
    script = f"""
import gc
from opscm.app.composition import Application, Settings
from opscm.app.serving import freeze_startup_objects
app = Application(Settings(data_dir={str(tmp_path)!r}, schedule_interval=0, health_interval=0))
frozen = freeze_startup_objects()
print(frozen, len(gc.get_objects()))
app.close()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    frozen, walked = map(int, result.stdout.split())
    assert frozen > 50_000
    assert walked < frozen / 20
