"""The HTTP transport of remote engines (Chef Infra Server, Puppet Server CA): TLS, timeouts,
and the two ways a backend can fail, which decide between retrying and giving up."""

from __future__ import annotations

import dataclasses
import re
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

import urllib3

# Connect quickly or not at all; a backend that accepted the connection gets longer to answer.
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
# Statuses that say "not now" rather than "no": worth another try later.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Servers echo what they were sent (goiardi quotes a PEM it could not parse): a reason must never
# carry a key or certificate on, whole or cut, so PEM blocks and long base64 runs are blanked.
_KEY_MATERIAL = re.compile(r"-{3,}BEGIN.*?(?:-{3,}END[ A-Z0-9]*-*|$)|[A-Za-z0-9+/=]{40,}", re.DOTALL)


class BackendError(Exception):
    """A backend call that did not succeed. ``reason`` is short and safe to show to tenants:
    it never holds exception text, keys, or response bodies beyond a short server message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BackendUnavailable(BackendError):
    """No usable answer (refused connection, timeout, TLS failure, 5xx): try again later."""


class BackendRefused(BackendError):
    """The backend answered and said no (401, 403, 409 when not expected, other 4xx): final."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def text(self, limit: int = 200) -> str:
        """The start of the body, printable and without key material, for a refusal's reason."""
        text = _KEY_MATERIAL.sub("[...]", self.body[: limit * 20].decode("utf-8", "replace"))[:limit]
        return "".join(c if c.isprintable() else " " for c in text).strip()


class HttpBackend:
    """One backend's base URL with a connection pool; ``request`` answers any HTTP status and
    raises :class:`BackendUnavailable` only when there is no answer at all."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_bundle: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        pool_size: int = 8,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.base_path = parts.path.rstrip("/")
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # urllib3's read timeout bounds each wait for a byte, not the exchange: a backend that
        # sends a byte a second would hold the caller (a request thread, a job runner) for ever.
        # The exchange runs in a thread of its own (a daemon: a stalled one never holds up the
        # process's exit) and the caller waits this long at most.
        self._deadline = connect_timeout + read_timeout
        options: dict = {"maxsize": pool_size, "retries": False, "timeout": self._timeout}
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=ca_bundle)
            if client_cert:
                context.load_cert_chain(client_cert, client_key)
            options["ssl_context"] = context
        self._pool = urllib3.PoolManager(**options)

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """``path`` is relative to the base URL's path and starts with '/'."""
        outcome: list = []
        done = threading.Event()

        def exchange() -> None:
            try:
                outcome.append(self._exchange(method, self.base_url + path, body, dict(headers or {})))
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                outcome.append(error)
            finally:
                done.set()

        threading.Thread(target=exchange, name="opscm-backend", daemon=True).start()
        if not done.wait(self._deadline):
            # Left to end by itself, at the backend's next stall longer than the read timeout.
            raise BackendUnavailable("the backend did not answer in time")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _exchange(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        try:
            response = self._pool.request(method, url, body=body, headers=headers, redirect=False)
        except urllib3.exceptions.MaxRetryError as error:
            raise BackendUnavailable(_why(error.reason)) from None
        except urllib3.exceptions.HTTPError as error:
            raise BackendUnavailable(_why(error)) from None
        return Reply(response.status, response.data, {k.lower(): v for k, v in response.headers.items()})

    def close(self) -> None:
        self._pool.clear()


def _why(error: BaseException | None) -> str:
    """A short, tenant-safe reason for a failed connection (no exception text)."""
    # NewConnectionError (and NameResolutionError) subclass ConnectTimeoutError in urllib3 2:
    # test it first, or a refused connection reads as a timeout.
    if isinstance(error, urllib3.exceptions.NameResolutionError):
        return "the backend's host name does not resolve"
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return "the backend refused the connection or is not reachable"
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return "the backend did not answer in time"
    if isinstance(error, urllib3.exceptions.SSLError):
        return "the TLS handshake with the backend failed (certificate or CA bundle)"
    if isinstance(error, urllib3.exceptions.ProtocolError):
        return "the backend closed the connection"
    return "the backend is not reachable"


def refusal(what: str, reply: Reply) -> BackendError:
    """The error for an unexpected answer: retryable for 5xx/429, final otherwise."""
    detail = reply.text()
    reason = f"{what}: HTTP {reply.status}" + (f" ({detail})" if detail else "")
    if reply.status in RETRYABLE_STATUSES:
        return BackendUnavailable(reason)
    return BackendRefused(reason, reply.status)
