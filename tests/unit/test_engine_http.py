"""The remote engines' HTTP transport: why a call failed, and what a reason may say."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from opscm.engines.http import BackendRefused, BackendUnavailable, HttpBackend, Reply, refusal

PEM = (
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n-----END PUBLIC KEY-----\n"
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_unavailable_at_once_and_says_so():
    backend = HttpBackend(f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        backend.request("GET", "/")
    assert time.monotonic() - started < 1
    # urllib3 2.x files NewConnectionError under timeouts; the reason must still say "refused".
    assert raised.value.reason == "the backend refused the connection or is not reachable"


@pytest.mark.parametrize(
    "body",
    [
        PEM,
        PEM.replace("-----BEGIN PUBLIC KEY-----", "-----BEGIN PUBLIC KEY----"),  # a header the server could not parse
        PEM.replace("\n", "\\n"),  # quoted inside a JSON error
        PEM[60:],  # cut: only base64 lines left
    ],
)
def test_a_reason_never_carries_key_material(body):
    reply = Reply(400, f'{{"error":["Public key does not validate: {body}"]}}'.encode(), {})
    error = refusal("creating Chef client 'web-1'", reply)
    assert isinstance(error, BackendRefused) and error.status == 400
    assert "Public key does not validate" in error.reason
    assert "MIIBIjAN" not in error.reason and "4lgOEePzNm0t" not in error.reason and "BEGIN" not in error.reason


def test_a_reason_keeps_a_short_server_message():
    reply = Reply(401, b'{"error":["Failed to authenticate as \'web-1\'."]}', {})
    assert refusal("x", reply).reason == 'x: HTTP 401 ({"error":["Failed to authenticate as \'web-1\'."]})'


def test_5xx_is_worth_another_try():
    assert isinstance(refusal("x", Reply(503, b"", {})), BackendUnavailable)


def test_a_backend_that_trickles_its_answer_is_given_up_on():
    """urllib3's read timeout bounds each wait for a byte, not the exchange: a backend sending a
    byte at a time, each well within the read timeout, must not hold the caller until it ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent_all = threading.Event()

    def trickle():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n" + b"x" * 60
            for byte in answer:  # one byte each 0.05 s: ~5 s in all
                connection.sendall(bytes([byte]))
                time.sleep(0.05)
            sent_all.set()

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    backend = HttpBackend(f"http://127.0.0.1:{listener.getsockname()[1]}", connect_timeout=0.2, read_timeout=0.5)
    with pytest.raises(BackendUnavailable) as raised:
        backend.request("GET", "/")
    assert raised.value.reason == "the backend did not answer in time"
    assert not sent_all.is_set(), "given up on while the backend was still trickling"
    listener.close()
