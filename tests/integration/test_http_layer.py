"""The HTTP layer of ``opscm serve``: TCP_NODELAY on accepted sockets, deadlines for request heads
and bodies, a budget of buffered body bytes, and a clean log when clients go away."""

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from opscm.app.serving import make_listener
from tests.support.asgi_server import ThreadServer
from tests.support.requirements import require
from tests.support.server import start_server

MODEL_404 = "/aws-cli/models/opsworks-cm/2016-11-01/nothing.json"  # cheap: no database, no signing


async def _hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_every_accepted_socket_gets_tcp_nodelay():
    # A listener made by hand, without the option: the protocol must set it on each connection.
    listener = socket.create_server(("127.0.0.1", 0))
    assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    served = ThreadServer(_hello, listener)
    clients = [http.client.HTTPConnection("127.0.0.1", served.port, timeout=5) for _ in range(3)]
    try:
        for client in clients:
            client.request("GET", "/")
            assert client.getresponse().read() == b"hello"
        accepted = served.accepted_sockets()
        assert len(accepted) == 3
        assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in accepted)
    finally:
        for client in clients:
            client.close()
        served.stop()


def test_opscm_listener_has_tcp_nodelay():
    listener = make_listener("127.0.0.1", 0)
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener.close()


def test_one_keep_alive_client_is_not_held_by_delayed_acks(opscm):
    # Without TCP_NODELAY every answer waited ~40 ms for the client's delayed ACK (≈22/s);
    # with it, hundreds a second. The bound is 2 s for 100 requests: 50/s, twice the old rate.
    host, port = opscm.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", MODEL_404)
    connection.getresponse().read()
    first_socket = connection.sock
    started = time.monotonic()
    for _ in range(100):
        connection.request("GET", MODEL_404)
        response = connection.getresponse()
        response.read()
        assert response.status == 404
    elapsed = time.monotonic() - started
    assert connection.sock is first_socket, "one keep-alive connection"
    connection.close()
    assert elapsed < 2.0, f"100 keep-alive requests took {elapsed:.2f}s"


# ---- deadlines ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A server with a 1 s deadline for heads and bodies."""
    server = start_server(tmp_path_factory.mktemp("strict"), "--ca-key-bits", "2048", "--body-timeout", "1")
    yield server
    server.stop()


def _connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _head(length: int, operation: str = "DescribeServers") -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: OpsWorksCM_V2016_11_01.{operation}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_short_body_is_answered_408_and_closed(strict):
    with _connect(strict) as sock:
        sock.sendall(_head(100) + b"{" * 10)
        answer = _read_all(sock)  # the server closes: the read ends (the socket's own timeout is 10 s)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["__type"] == "RequestTimeoutException"


@pytest.mark.parametrize("operation", ["DescribeServers", "AssociateNode"])  # AssociateNode: the fast lane's
def test_a_trickling_body_is_answered_408(strict, operation):
    with _connect(strict) as sock:
        sock.sendall(_head(50, operation))
        for _ in range(8):  # 1 byte every 0.25 s: each arrives before the deadline, the body does not
            try:
                sock.send(b" ")
            except OSError:
                break
            time.sleep(0.25)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_head_that_never_ends_is_closed(strict):
    with _connect(strict) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        assert _read_all(sock) == b""


def test_a_connection_that_sends_nothing_is_closed(strict):
    # Before, the head's deadline began with its first byte: silent connections were held for
    # ever, and --max-connections of them made every request of the worker 503.
    with _connect(strict) as sock:
        assert _read_all(sock) == b""


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_bytes_that_begin_no_request_do_not_hold_a_connection(strict):
    with _connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"\r\n")  # stops uvicorn's keep-alive timer and begins no request
        assert _read_all(sock) == b""


def test_an_endless_request_head_is_closed(strict):
    with _connect(strict) as sock:
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * (1024 * 1024))
        except OSError:
            pass  # closed while the head was still being sent
        try:
            assert _read_all(sock) == b""
        except ConnectionResetError:
            pass  # closed with unread bytes: a reset
    assert any("head exceeded" in line for line in strict.output)


def _console_form(sock: socket.socket, length: int) -> None:
    sock.sendall(
        b"POST /console/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {length}\r\n\r\ncsrf=".encode()
    )


def test_a_console_form_short_of_its_length_is_answered_408_and_closed(strict):
    with _connect(strict) as sock:
        _console_form(sock, 1000)
        head, _, _ = _read_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()


def test_a_console_form_whose_client_leaves_is_no_traceback(strict):
    line = len(strict.output)
    for _ in range(3):
        with _connect(strict) as sock:
            _console_form(sock, 1000)
    with _connect(strict) as sock:  # answered after the three: their ends were handled
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
    time.sleep(0.5)  # the server's log lines reach the test's reader
    assert not any("Traceback" in text for text in strict.output[line:])


# ---- slow clients ----------------------------------------------------------------------------

BODY = 4 * 1024 * 1024
SOCKETS = 48


def _tree_rss_kib(pid: int, field: str = "VmRSS") -> int:
    """*field* of /proc/<pid>/status, for the server process and its workers together."""
    total = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total


def _send_all_but_last_byte(server, results: list, index: int) -> None:
    try:
        sock = _connect(server)
        sock.sendall(_head(BODY) + b"x" * (BODY - 1))
        results[index] = sock
    except OSError as error:  # refused with 503 and closed while sending: expected for most
        results[index] = error


def test_slow_bodies_cannot_hold_the_memory(tmp_path):
    # One worker with the default budget (32 MiB of bodies). 48 sockets × 4 MiB would be 192 MiB
    # of buffered bodies; the budget keeps the worker's growth under 2 × 32 MiB + 32 MiB.
    server = start_server(tmp_path / "data", "--ca-key-bits", "2048", "--body-timeout", "20")
    try:
        pid = server.process.pid
        http.client.HTTPConnection(*_host_port(server), timeout=5).request("GET", MODEL_404)
        time.sleep(0.5)
        baseline = _tree_rss_kib(pid)
        results: list = [None] * SOCKETS
        threads = [threading.Thread(target=_send_all_but_last_byte, args=(server, results, i)) for i in range(SOCKETS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        time.sleep(1.0)  # let the worker take in what was sent
        held = [r for r in results if isinstance(r, socket.socket)]
        growth_mib = (_tree_rss_kib(pid) - baseline) / 1024
        # A fresh worker had no high-water mark before: its peak is the attack's.
        peak_growth_mib = (_tree_rss_kib(pid, "VmHWM") - baseline) / 1024
        print(f"held sockets {len(held)}, RSS growth {growth_mib:.1f} MiB, peak growth {peak_growth_mib:.1f} MiB")
        assert peak_growth_mib < 96, f"RSS grew by {peak_growth_mib:.0f} MiB"
        # The refused ones were answered 503 ServiceUnavailable; the server still answers.
        probe = http.client.HTTPConnection(*_host_port(server), timeout=5)
        probe.request("GET", MODEL_404)
        assert probe.getresponse().status == 404
        # Clients going away mid-body: one log line each, never a traceback.
        for sock in held:
            sock.close()
        time.sleep(1.0)
        log = "".join(server.output)
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
        assert "went away before its request body arrived" in log
        assert "request refused" in log  # the budget said so
    finally:
        assert server.stop() == 0


def test_a_refused_body_is_answered_503_json(tmp_path):
    server = start_server(tmp_path / "data", "--ca-key-bits", "2048", "--body-buffer-mib", "1")
    try:
        with _connect(server) as sock:
            sock.sendall(_head(2 * 1024 * 1024))  # more than the whole budget: refused before any byte
            answer = _read_all(sock)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert json.loads(body)["__type"] == "ServiceUnavailable"
    finally:
        server.stop()


def _host_port(server):
    host, port = server.url.split("://")[1].split(":")
    return host, int(port)


# ---- an unusable data dir ----------------------------------------------------------------

def _serve_once(data_dir: str, prefix=()) -> subprocess.CompletedProcess:
    command = [*prefix, sys.executable, "-m", "opscm", "serve", "--port", "0", "--data-dir", data_dir]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_data_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    result = _serve_once(str(tmp_path / "plain-file" / "data"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"opscm: cannot create the data dir {tmp_path}/plain-file/data (not a directory): choose another with --data-dir"]


def test_a_read_only_data_dir_is_one_line(tmp_path):
    # A read-only tmpfs in a mount namespace of our own: read-only even for root.
    usable = subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    require(usable, "unshare -rm (user and mount namespaces)")
    data = tmp_path / "ro"
    data.mkdir()
    result = _serve_once(str(data), prefix=("unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {data} && exec \"$@\"", "-"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"opscm: cannot write to the data dir {data} (read-only file system): mount it read-write, or choose another with --data-dir"
    ]


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_another_master_key_than_the_stores_is_one_line(tmp_path, monkeypatch):
    """Before, opscm started and answered every signed request 500 (the secrets would not open)."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("OPSCM_MASTER_KEY", _key())
    server = start_server(data_dir)  # the admin key is sealed with it
    server.stop()
    monkeypatch.setenv("OPSCM_MASTER_KEY", _key())
    result = _serve_once(str(data_dir))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "opscm: the master key does not open the secrets stored in this database: start with the master key "
        "they were sealed with (OPSCM_MASTER_KEY, or the data dir's master.key)"
    ]


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_master_key_that_is_no_key_is_one_line(tmp_path, monkeypatch, value):
    monkeypatch.setenv("OPSCM_MASTER_KEY", value)
    result = _serve_once(str(tmp_path / "data"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "opscm: OPSCM_MASTER_KEY is not a master key: 32 bytes in base64 (44 characters) are expected"
    ]
