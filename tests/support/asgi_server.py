"""An ASGI app served in a thread with opscm's own HTTP configuration, and a middleware that
records (and may rewrite) the API's answers: a bridge from real clients (the aws CLI, user data
scripts) to an in-process opscm whose jobs the test runs when it chooses."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable

from opscm.app.http_protocol import FastLane
from opscm.app.serving import HttpOptions, ServingServer, make_listener, uvicorn_config


class ThreadServer:
    """*asgi* served as ``opscm serve`` serves it; with *lane* (an OpscmAsgi), its fast lane on
    the listener's port (or on *lane_port*, to serve a port the lane must leave alone), counting
    its connections in *share* if given (a worker's WorkerShare)."""

    def __init__(
        self,
        asgi,
        listener: socket.socket | None = None,
        options: HttpOptions = HttpOptions(),
        lane=None,
        lane_port=None,
        share=None,
    ):
        listener = listener or make_listener("127.0.0.1", 0)
        ready = threading.Event()
        self.port = listener.getsockname()[1]
        fast_lane = FastLane(lane, lane_port or self.port, share) if lane is not None else None
        self.server = ServingServer(uvicorn_config(asgi, options, fast_lane), on_ready=ready.set)
        self.url = f"http://127.0.0.1:{self.port}"
        # The thread of its event loop.
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]}, daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the in-process server did not start")

    def accepted_sockets(self) -> list:
        return [protocol.transport.get_extra_info("socket") for protocol in self.server.server_state.connections]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> ThreadServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Recorder:
    """ASGI middleware: ``calls`` lists (operation, status, error code) of each JSON API answer;
    ``rewrite(operation, answer)`` may change an answer's JSON before the client sees it."""

    def __init__(self, app, rewrite: Callable[[str, dict], dict] | None = None):
        self._app = app
        self._rewrite = rewrite
        self.calls: list[tuple[str, int, str | None]] = []

    def count(self, operation: str, code: str | None = None) -> int:
        return sum(1 for op, _status, error in self.calls if op == operation and (code is None or error == code))

    async def __call__(self, scope, receive, send):
        target = dict(scope.get("headers", [])).get(b"x-amz-target", b"").decode()
        if not target:
            return await self._app(scope, receive, send)
        operation = target.rpartition(".")[2]
        start: dict = {}
        body = bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                body.extend(message.get("body", b""))

        await self._app(scope, receive, capture)
        answer = json.loads(body or b"{}")
        self.calls.append((operation, start["status"], answer.get("__type")))
        if self._rewrite is not None and start["status"] == 200:
            body = bytearray(json.dumps(self._rewrite(operation, answer)).encode())
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": bytes(body)})
