"""opscm's HTTP/1.1 protocol: uvicorn's (httptools), with TCP_NODELAY, a deadline on request
heads, a response's head and body written at once, and a fast lane for the JSON API.

The fast lane: a ``POST /`` request of the boot storm's operations that arrives whole (its head
and body in what one read brought) is answered by the protocol itself in the loop's next turn,
with no ASGI task, event or receive/send round trips: uvicorn's cycle cost 60-120 µs of CPU per
request over the lane's (measured with a fixed answer). A uvicorn cycle object still stands for
the request, so requests behind it queue and a shutdown or a disconnect reaches it as any other.
An answer that must wait (a signature, a request run in a thread) is awaited in a task of the
lane's own and written as the lane writes the others, not through uvicorn's ASGI cycle.
Whatever the lane does not take goes uvicorn's own way unchanged: another path or method, a
request behind one still running (pipelining), Expect: 100-continue, a chunked or large body, a
body still on its way, a connection that will close, a client not reading its answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import socket
from collections.abc import Iterable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from opscm.protocol.json11 import HttpRequest, HttpResponse, joined_headers

from .asgi import Later, OpscmAsgi
from .connection_shares import WorkerShare
from .durable_answers import MANY

log = logging.getLogger("opscm.serving")

DEFAULT_HEADER_TIMEOUT = 30.0
# A request head larger than this closes its connection: httptools keeps no bound, and one
# endless header held a worker's CPU and hundreds of MiB. A SigV4 request's head is ~1-2 KiB.
MAX_HEAD_BYTES = 64 * 1024
# At most this many connections are looked at to count the requests in progress (see _others).
ALONE_LOOKS_AT = 64
# asyncio waits up to 30 s for a TLS client's close_notify; an idle HTTP client never sends it.
TLS_CLOSE_GRACE_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class FastLane:
    """The API a worker answers in the fast lane, and the local port it serves it on: any other
    port of the same uvicorn (the metrics port) never takes the lane. With ``share``, the
    worker counts its connections on that port and asks a client to reconnect while it holds
    more than its share (see ``connection_shares.py``)."""

    api: OpscmAsgi
    port: int
    share: WorkerShare | None = None


@dataclasses.dataclass
class _LaneRequest:
    headers: dict[str, str]
    body: bytearray = dataclasses.field(default_factory=bytearray)


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class OpscmHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools), with TCP_NODELAY, a deadline on request heads, a
    response's head and body written at once, and the fast lane (see the module's doc).

    asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP, which a socket made by
    hand is not: each response (head and body are two writes) then waited ~40 ms for the
    client's delayed ACK. uvicorn times idle connections but not a request head that never
    ends: a client sending one byte would hold its connection forever.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    lane: FastLane | None = None

    def connection_made(self, transport):  # type: ignore[override]
        set_nodelay(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_lane: _LaneRequest | None = None
        if transport.get_extra_info("sslcontext") is not None:
            transport = _TlsTransport(transport, self.loop)
        super().connection_made(_CoalescingTransport(transport, self.loop))
        lane = self.lane
        self._lane = lane if lane is not None and self.server is not None and self.server[1] == lane.port else None
        self._share = self._lane.share if self._lane is not None else None
        if self._share is not None:
            self._share.opened()
        # A connection that sends nothing is held no longer than a head that never ends.
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_lane is not None:
            # The head came whole, the body did not: uvicorn's cycle takes the request over (the
            # body's deadline and budget then apply: see request_body.py).
            if self.transport.is_closing():  # a bad request behind it was answered 400
                self._in_lane = None
            else:
                self._leave_lane()
        if self.transport.is_closing():
            return
        if self._head_deadline is None and self._between_requests():
            # Bytes that began no request (a CRLF, the rest of a body already answered) stopped
            # uvicorn's keep-alive timer: they must not hold the connection for ever either.
            self._arm_head_deadline()
        if self._head_deadline is not None:  # the head is still incomplete after these bytes
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._cancel_head_deadline()
                log.info("closed a connection from %s: its request head exceeded %d bytes", _peer(self.client), MAX_HEAD_BYTES)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_bytes = 0
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _between_requests(self) -> bool:
        """No request begun, in the lane, queued or waiting for its answer."""
        cycle = self.cycle
        return (cycle is None or cycle.response_complete) and self._in_lane is None and not self.pipeline

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        if self._lane is not None:
            self._in_lane = self._lane_takes(self._lane)
            if self._in_lane is not None:
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._in_lane is not None:
            self._in_lane.body += body
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        taken = self._in_lane
        if taken is None:
            super().on_message_complete()
            return
        self._in_lane = None
        # A cycle of uvicorn's stands for the request until it is answered: the requests behind
        # it queue, and a shutdown or a disconnect reaches it as any other.
        scope = self.scope
        scope.update(method="POST", path="/", raw_path=b"/", query_string=b"")
        cycle = RequestResponseCycle(
            scope=scope, transport=self.transport, flow=self.flow, logger=self.logger,
            access_logger=self.access_logger, access_log=self.access_log,
            default_headers=self.server_state.default_headers, message_event=asyncio.Event(),
            expect_100_continue=False, keep_alive=True, on_response=self.on_response_complete,
        )  # fmt: skip
        cycle.more_body = False
        self.cycle = cycle
        request = HttpRequest(method="POST", path="/", query="", headers=taken.headers, body=bytes(taken.body))
        # Answered in the loop's next turn, in turn with the work other requests wait for (a
        # signature done in a thread), not ahead of it while a read brings many requests.
        self.loop.call_soon(self._answer_in_lane, cycle, request)

    def _answer_in_lane(self, cycle: RequestResponseCycle, request: HttpRequest) -> None:
        if cycle.disconnected or self.transport.is_closing():
            return
        api = self._lane.api  # type: ignore[union-attr]  # a request is in the lane only when there is one
        try:
            answer = api.answer_now(request, self._others)
        except Exception as failure:  # noqa: BLE001 - a bug: uvicorn logs it and answers 500, as for any app
            self._run(cycle, functools.partial(_raise, failure))
            return
        if not isinstance(answer, HttpResponse):
            task = self.loop.create_task(self._answer_later_in_lane(cycle, api, answer, len(request.body)))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)  # uvicorn waits for them at shutdown
            return
        api.deliver_on_disk(answer, functools.partial(self._send_answer, cycle), self._others)

    async def _answer_later_in_lane(self, cycle: RequestResponseCycle, api: OpscmAsgi, later: Later, body_size: int) -> None:
        try:
            answer = await api.answer_later(later, body_size, self._others)
        except Exception as failure:  # noqa: BLE001 - a bug: uvicorn logs it and answers 500, as for any app
            self._run(cycle, functools.partial(_raise, failure))
            return
        self._send_answer(cycle, answer)

    def _others(self) -> int:
        """How many other connections of this process have a request in progress, counted up to
        more than a few (``MANY``); not looked for among many connections: many clients are no
        lone node, and the look would cost."""
        connections = self.connections
        if len(connections) > ALONE_LOOKS_AT:
            return MANY
        others = 0
        for other in connections:
            if other is not self and other.cycle is not None and not other.cycle.response_complete:
                others += 1
                if others == MANY:
                    break
        return others

    def _send_answer(self, cycle: RequestResponseCycle, answer: HttpResponse) -> None:
        if cycle.disconnected:  # while its commit was being synced
            return
        cycle.response_started = cycle.response_complete = True
        if cycle.keep_alive and self._leaves_for_balance():
            cycle.keep_alive = False
        # Written with the loop's other answers at the end of its turn (as uvicorn's are here):
        # a send per answer the moment it is made gave a 64-client storm a longer tail.
        self.transport.write(_response_bytes(answer, self.server_state.default_headers, cycle.keep_alive))
        if not cycle.keep_alive:  # the server is stopping, or this worker holds more than its share
            self.transport.close()
        cycle.on_response()

    def _leaves_for_balance(self) -> bool:
        """True if this connection is to close after its answer, as its worker holds more than
        its share of connections (``connection: close``: the client reconnects, and the kernel
        places the new connection afresh). Never with a request behind this one, begun or
        queued: closing would drop it."""
        share = self._share
        if share is None or not share.over():
            return False
        if self.pipeline or self._head_deadline is not None or self._in_lane is not None:
            return False
        share.sent_away()  # gone from now on: the worker's next answers see the share it will have
        self._share = None
        return True

    def _run(self, cycle: RequestResponseCycle, app) -> None:
        """Finish the request in its cycle, as uvicorn runs an app (its failures logged, 500)."""
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        if self._share is not None:
            self._share.closed()
            self._share = None
        super().connection_lost(exc)

    def _lane_takes(self, lane: FastLane) -> _LaneRequest | None:
        """The request whose head was just read, if the fast lane takes it (see the module's doc)."""
        parser = self.parser
        if self.url != b"/" or parser.get_method() != b"POST" or self.expect_100_continue or parser.should_upgrade():
            return None
        if parser.get_http_version() != "1.1" or not parser.should_keep_alive():
            return None
        if (self.cycle is not None and not self.cycle.response_complete) or self.pipeline or self.flow.write_paused:
            return None  # uvicorn keeps the order of pipelined answers, and waits for a slow reader
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return None  # uvicorn answers 503
        headers = joined_headers(_decoded(self.headers))
        declared = headers.get("content-length", "")
        if "transfer-encoding" in headers or not declared.isdigit():
            return None
        if not lane.api.may_answer_now(headers.get("x-amz-target", ""), int(declared)):
            return None
        return _LaneRequest(headers)

    def _leave_lane(self) -> None:
        taken, self._in_lane = self._in_lane, None
        super().on_headers_complete()
        if taken.body:  # type: ignore[union-attr]  # called with a request in the lane
            self.cycle.body += taken.body
            self.cycle.message_event.set()

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            log.info(
                "closed a connection from %s: no whole request head within %gs", _peer(self.client), self.header_timeout
            )
            self.transport.close()

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None


def _decoded(headers: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[str, str]]:
    return ((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers)


def _response_bytes(response: HttpResponse, default_headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    """The whole HTTP/1.1 answer, as uvicorn writes one (its default headers first)."""
    parts = [STATUS_LINE[response.status]]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (f"{name.lower()}: {value}\r\n".encode("latin-1") for name, value in response.headers)
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"content-length: %d\r\n\r\n" % len(response.body))
    parts.append(response.body)
    return b"".join(parts)


async def _raise(failure: Exception, scope, receive, send) -> None:
    raise failure


class _CoalescingTransport:
    """Writes made in one turn of the event loop go out as one: uvicorn writes a response's head
    and its body apart, two send() calls (two packets, with TCP_NODELAY) where one does."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _TlsTransport:
    """A TLS transport whose close() sends close_notify and then does not wait long for the
    client's: a closed connection (keep-alive timeout, shutdown) is gone within a second."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop

    def close(self) -> None:
        self._transport.close()
        self._loop.call_later(TLS_CLOSE_GRACE_SECONDS, self._transport.abort)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"


def protocol_class(header_timeout: float = DEFAULT_HEADER_TIMEOUT, lane: FastLane | None = None) -> type[OpscmHttpProtocol]:
    return type("OpscmHttpProtocol", (OpscmHttpProtocol,), {"header_timeout": header_timeout, "lane": lane})
