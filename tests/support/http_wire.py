"""HTTP/1.1 spoken by hand to a served opscm: requests of the JSON API written whole, and
their answers read back one by one (what the fast lane's tests need to control)."""

from __future__ import annotations

import json
import socket

from tests.support.in_process import TARGET_PREFIX

TARGET = f"{TARGET_PREFIX}."


def api_request(operation: str, params: dict, *extra: bytes) -> bytes:
    body = json.dumps(params).encode()
    head = [
        b"POST / HTTP/1.1",
        b"Host: opscm.local",
        f"X-Amz-Target: {TARGET}{operation}".encode(),
        b"Content-Type: application/x-amz-json-1.1",
        f"Content-Length: {len(body)}".encode(),
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Answers:
    """HTTP/1.1 answers read off a socket one by one (Content-Length bodies)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        chunk = self._sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self._buffer:
            assert self._fill(), f"connection closed; had {self._buffer!r}"
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            assert self._fill(), "connection closed inside a body"
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        return self._buffer == b"" and not self._fill()
