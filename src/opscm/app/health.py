"""``/healthz`` (the process answers) and ``/readyz`` (its database answers, with the schema this
opscm needs): for load balancers, orchestrators and service managers, without credentials."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

# A probe is answered within this, even when the database hangs (an unreachable host).
READY_TIMEOUT_SECONDS = 5.0


class Readiness:
    """Runs ``check`` (None: ready; else why not) for probes, one at a time: probes that come
    while a check hangs wait for that one, so a hanging database holds one thread, not one each."""

    def __init__(self, check: Callable[[], str | None], timeout: float = READY_TIMEOUT_SECONDS):
        self._check = check
        self._timeout = timeout
        self._running: asyncio.Future | None = None
        self._last: str | None = None

    async def problem(self) -> str | None:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(run_in_threadpool(self._check))
        try:
            problem = await asyncio.wait_for(asyncio.shield(self._running), self._timeout)
        except asyncio.TimeoutError:
            problem = f"the database did not answer within {self._timeout:g} s"
        if problem != self._last:  # a change is worth a line, each probe is not
            if problem:
                log.warning("not ready: %s", problem)
            else:
                log.info("ready again")
            self._last = problem
        return problem


def health_routes(readiness: Readiness) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        problem = await readiness.problem()
        if problem:
            return PlainTextResponse(f"not ready: {problem}\n", status_code=503)
        return PlainTextResponse("ready\n")

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
