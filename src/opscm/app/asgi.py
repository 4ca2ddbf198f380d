"""The ASGI application: the JSON API on ``POST /`` (a lean path of its own: it is every
request of a boot storm), and everything else through Starlette routes (the public Puppet CA
documents, the aws CLI model, and the routes other parts of opscm add)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gzip
import logging
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from opscm import spec
from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import HttpRequest, HttpResponse, joined_headers
from opscm.service.context import Dependencies
from opscm.service.ports import WouldWait
from opscm.service.steps import Brief
from opscm.service.puppet_ca import ca_document

from .durable_answers import FEW, MANY, DurableAnswers
from .pipeline import Pipeline, Prepared, Underway
from .request_body import BodyLimits, ClientGone

log = logging.getLogger("opscm.http")
# Each Puppet server's CA documents, in the form of Puppet's CA API v1, under its own prefix.
CA_PATH = "/servers/{server_id}/puppet-ca/v1/{document}/{name}"
# The aws CLI's opsworks-cm model (AWS removed the command): user data scripts install it from here.
CLI_MODEL_PATH = "/aws-cli/models/opsworks-cm/{version}/{file}"
# How many other requests of this process are in progress, counted up to a few (see
# OpscmAsgi._step and durable_answers).
Others = Callable[[], int]
# What finishes an answer that could not be made at once (see OpscmAsgi.answer_now).
Later = Callable[[Others], Awaitable[HttpResponse]]
# Threads that run requests (signing and SQL block); SQLite serialises writers anyway.
REQUEST_THREADS = 32
# The answer held back when the disk would not keep what it reports (see durable_answers.py).
NOT_ON_DISK = ApiError("ServiceUnavailable", "opscm could not sync its database to disk; try again later.", 503)


def _many() -> int:
    """``Others`` where they are not counted (uvicorn's own path): more than a few."""
    return MANY


def ca_api_prefix(base_url: str, server_id: str) -> str:
    return f"{base_url.rstrip('/')}/servers/{server_id}/puppet-ca/v1"


class OpscmAsgi:
    """``POST /`` answered by the pipeline; any other request by the Starlette routes. No
    answer leaves before the commits this process made before it are on disk (``durable``),
    nor a CA document before those its read saw (see ``create_asgi_app``). The console's
    pages, the probes and the metrics do not wait: views for people and monitors, they hand
    out nothing that a client keeps and acts on (a certificate, a CRL's number)."""

    def __init__(
        self,
        pipeline: Pipeline,
        routes: Starlette,
        limits: BodyLimits,
        durable: DurableAnswers | None = None,
        store_threads: int = REQUEST_THREADS,
    ):
        self._pipeline = pipeline
        self._routes = routes
        self._limits = limits
        self._durable = durable or DurableAnswers(None)
        self._threads = concurrent.futures.ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="opscm-request")
        # Light requests on a networked store (see Pipeline.is_light), as many at once as the
        # store has connections: more threads only queue on them and fight for the GIL (64 Chef
        # clients on PostgreSQL: p99 3.0-4.4x the median among 32 threads, 2.3-2.7x in 8).
        self._store_threads = concurrent.futures.ThreadPoolExecutor(store_threads, thread_name_prefix="opscm-store")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/":
            await self._routes(scope, receive, send)
            return
        headers = joined_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        close = False
        held = 0
        try:
            body, held = await self._limits.receive(headers.get("content-length", ""), receive)
            request = HttpRequest(
                method=scope["method"],
                # SigV4 signs the path and query as sent, still percent-encoded.
                path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,  # every value of a repeated header, joined
                body=body,
            )
            response = await self._answer(request)
        except ApiError as error:
            # The rest of the body may still be on its way: end the connection after the answer.
            response, close = self._pipeline.protocol.error_response(error, "-"), True
        except ClientGone:
            client = scope.get("client")
            log.info("client %s went away before its request body arrived", f"{client[0]}:{client[1]}" if client else "-")
            return
        finally:
            self._limits.release(held)  # the body's bytes count until the request is answered
        await _send(send, response, close)

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        answer = self.answer_now(request)
        return await self._on_disk(answer if isinstance(answer, HttpResponse) else await answer(_many))

    async def _on_disk(self, response: HttpResponse, others: Others = _many) -> HttpResponse:
        # Counted only when there is a sync to wait for (a read commits nothing).
        if not self._durable.pending() or await self._durable.synced(others()):
            return response
        return self._not_on_disk()

    def deliver_on_disk(self, response: HttpResponse, deliver: Callable[[HttpResponse], None], others: Others = _many) -> None:
        """``deliver(response)`` at once, or once the commits made before it are on disk (on
        the event loop: the fast lane's answers); ``others`` tells how many other requests are
        in progress (asked only when there is a sync to wait for)."""
        if not self._durable.pending():
            deliver(response)
        else:
            self._durable.then(lambda ok: deliver(response if ok else self._not_on_disk()), others())

    def _not_on_disk(self) -> HttpResponse:
        return self._pipeline.protocol.error_response(NOT_ON_DISK, "-")

    def may_answer_now(self, target: str, body_size: int) -> bool:
        """Whether :meth:`answer_now` may answer a request of this target and body size at once."""
        return self._pipeline.may_be_light(target, body_size)

    def answer_now(self, request: HttpRequest, others: Others = _many) -> HttpResponse | Later:
        """The answer to a ``POST /`` request if it can be made now, on the event loop (a boot
        storm's light requests: see ``Pipeline.is_light``), else a coroutine function that makes
        it: the rest of a light request (its signature) or the whole of any other in a thread.
        ``others`` tells how many other requests are in progress (asked on PostgreSQL only)."""
        pipeline = self._pipeline
        if not pipeline.may_be_light(request.headers.get("x-amz-target", ""), len(request.body)):
            return functools.partial(self._later_in_thread, pipeline.handle, request)
        prepared = pipeline.prepare(request)
        if not isinstance(prepared, Prepared):
            return prepared
        if pipeline.is_light(prepared):
            if not pipeline.light_on_loop(others):
                return functools.partial(self._later_in_thread, pipeline.run, prepared, threads=self._store_threads)
            try:
                started = pipeline.start_light(prepared)
            except WouldWait:
                pass
            else:
                return started if isinstance(started, HttpResponse) else functools.partial(self._finish, started)
        return functools.partial(self._later_in_thread, pipeline.run, prepared)

    async def answer_later(self, later: Later, body_size: int, others: Others = _many) -> HttpResponse:
        """What *later* answers (see :meth:`answer_now`) once it is on disk, the body's bytes
        held meanwhile; ``others`` tells, once it is made, how many other requests are in progress."""
        try:
            held = self._limits.hold(body_size)
        except ApiError as error:
            return self._pipeline.protocol.error_response(error, "-")
        try:
            return await self._on_disk(await later(others), others)
        finally:
            self._limits.release(held)

    async def _finish(self, underway: Underway, others: Others) -> HttpResponse:
        try:
            return await self._pipeline.finish_light(underway, functools.partial(self._step, others=others))
        except WouldWait:  # nothing was written: the whole request again, where it may wait
            return await self._in_thread(self._pipeline.run, underway.prepared)

    async def _step(self, step, others: Others):
        """A light request's blocking step (a signature), in a thread while more than a few
        (``FEW``) other requests are in progress. A brief one among a few is made on the loop:
        they wait for it (~3 ms with a 4096-bit CA), and the hand-off to a thread and back, with
        the GIL the two then share, costs more (Puppet, 8 clients on 2 workers, 7 interleaved
        pairs: 386 against 327 associations/s, 4.4 against 5.1 ms of CPU each, medians)."""
        if isinstance(step, Brief) and others() <= FEW:
            return self._pipeline.step_here(step)
        return await self._in_thread(step)

    async def _later_in_thread(self, function, argument, others: Others, threads: concurrent.futures.Executor | None = None):
        return await self._in_thread(function, argument, threads=threads)

    async def _in_thread(self, function, *args, threads: concurrent.futures.Executor | None = None):
        return await asyncio.get_running_loop().run_in_executor(threads or self._threads, function, *args)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._store_threads.shutdown(wait=False, cancel_futures=True)
        self._durable.close()


async def _send(send, response: HttpResponse, close: bool) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def create_asgi_app(
    pipeline: Pipeline,
    deps: Dependencies,
    body_limits: BodyLimits | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    durable: DurableAnswers | None = None,
    store_threads: int = REQUEST_THREADS,
) -> OpscmAsgi:
    durable = durable or DurableAnswers(None)

    async def puppet_ca(request: Request) -> Response:
        params = request.path_params
        if params["document"] not in ("certificate", "certificate_revocation_list"):
            return PlainTextResponse("Not Found", status_code=404)
        pem = await run_in_threadpool(ca_document, deps, params["server_id"], params["document"], params["name"])
        # The read may have seen commits not on disk yet, another worker's too: a power cut
        # would take back a certificate handed out, or bring a CRL's number again with other
        # contents (crl_sync.py keeps the CRL it has then).
        if not await durable.read_on_disk():
            return PlainTextResponse(NOT_ON_DISK.message, NOT_ON_DISK.status_code)
        if pem is None:
            return PlainTextResponse(f"Not Found: Could not find {params['document']} {params['name']}", 404)
        return PlainTextResponse(pem, media_type="text/plain")

    async def cli_model(request: Request) -> Response:
        name = request.path_params["file"].removesuffix(".json")
        if request.path_params["version"] != spec.API_VERSION or name not in spec.CLI_MODEL_FILES:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(await run_in_threadpool(_cli_model_file, name), media_type="application/json")

    routes = Starlette(
        routes=[
            Route(CA_PATH, puppet_ca, methods=["GET"]),
            Route(CLI_MODEL_PATH, cli_model, methods=["GET"]),
            *extra_routes,
        ]
    )
    return OpscmAsgi(pipeline, routes, body_limits or BodyLimits(), durable, store_threads)


@functools.cache
def _cli_model_file(name: str) -> bytes:
    path = spec.model_file(name)
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data
