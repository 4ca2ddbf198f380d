"""A tiny local HTTP(S) server serving documents the test changes at will (stdlib only)."""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path


class DocumentServer:
    """Serves ``documents[path] = (status, body)`` on 127.0.0.1 to GET and POST; anything else is 404.

    ``tls=(cert_file, key_file)`` serves https instead. Use as a context manager."""

    def __init__(self, tls: tuple[Path, Path] | None = None):
        self.documents: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        documents, requests = self.documents, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                status, body = documents.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # the body is not looked at: answered by path, as a GET
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.do_GET()

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def serve(self, path: str, body: str | bytes, status: int = 200) -> None:
        self.documents[path] = (status, body.encode() if isinstance(body, str) else body)

    def __enter__(self) -> DocumentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
