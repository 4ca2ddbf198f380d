"""Reading request bodies within bounds: a size cap per request, a deadline for the whole
body, and a budget of body bytes held by the process across all its connections.

Without the deadline a client that sends less than its Content-Length holds a connection and
its bytes forever; without the budget 48 such clients of 4 MiB each hold ~200 MB.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from opscm.protocol.errors import ApiError

log = logging.getLogger("opscm.http")

# CustomCertificate alone may be 2 MiB; nothing in the model needs more than twice that.
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_BODY_BUFFER_BYTES = 32 * 1024 * 1024


class ClientGone(Exception):
    """The client closed its connection before its body arrived: nobody to answer."""


class BodyBudget:
    """Body bytes held by this process, all connections together (one event loop: no lock)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used -= size


@dataclasses.dataclass
class BodyLimits:
    timeout: float = DEFAULT_BODY_TIMEOUT  # seconds the whole body may take to arrive
    budget: BodyBudget = dataclasses.field(default_factory=lambda: BodyBudget(DEFAULT_BODY_BUFFER_BYTES))
    max_bytes: int = MAX_BODY_BYTES

    async def receive(self, declared: str, receive: Callable[[], Awaitable[dict]]) -> tuple[bytes, int]:
        """The body of an ASGI request (``declared``: its Content-Length header, or ""), and the
        bytes of the budget it holds: give them back with :meth:`release` once the request is
        answered. When this raises, it holds nothing."""
        held = 0
        try:
            # A declared length is taken whole up front: a client announcing 4 MiB and sending
            # it slowly is refused at once when the budget cannot hold it.
            if declared.isdigit():
                if int(declared) > self.max_bytes:
                    raise _too_large(self.max_bytes)
                held = self.hold(int(declared))
            chunks, size = [], 0
            try:
                async with asyncio.timeout(self.timeout):
                    more = True
                    while more:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            raise ClientGone()
                        chunk, more = message.get("body", b""), message.get("more_body", False)
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise _too_large(self.max_bytes)
                        if size > held:  # chunked: no length was declared
                            held += self.hold(size - held)
                        chunks.append(chunk)
            except TimeoutError:
                raise ApiError(
                    "RequestTimeoutException",
                    f"The request body did not arrive within {self.timeout:g} seconds.",
                    408,
                ) from None
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), held
        except BaseException:
            self.budget.give_back(held)
            raise

    def release(self, held: int) -> None:
        self.budget.give_back(held)

    def hold(self, size: int) -> int:
        """Take *size* bytes of the budget (give them back with :meth:`release`), or refuse 503."""
        if not self.budget.take(size):
            log.warning("request refused: %d bytes of request bodies are already held", self.budget.used)
            raise ApiError("ServiceUnavailable", "The server is busy receiving other requests; try again.", 503)
        return size


def _too_large(limit: int) -> ApiError:
    return ApiError("SerializationException", f"The request body is larger than {limit} bytes.", 413)
