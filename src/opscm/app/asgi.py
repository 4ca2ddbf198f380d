"""The ASGI application: the JSON API on ``POST /`` and the public Puppet CA documents."""

from __future__ import annotations

import functools
import gzip

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opscm import spec
from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import HttpRequest, HttpResponse, joined_headers
from opscm.service.context import Dependencies
from opscm.service.puppet_ca import ca_document

from .pipeline import Pipeline

# CustomCertificate alone may be 2 MiB; nothing in the model needs more than twice that.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Each Puppet server's CA documents, in the form of Puppet's CA API v1, under its own prefix.
CA_PATH = "/servers/{server_id}/puppet-ca/v1/{document}/{name}"
# The aws CLI's opsworks-cm model (AWS removed the command): user data scripts install it from here.
CLI_MODEL_PATH = "/aws-cli/models/opsworks-cm/{version}/{file}"


def ca_api_prefix(base_url: str, server_id: str) -> str:
    return f"{base_url.rstrip('/')}/servers/{server_id}/puppet-ca/v1"


def create_asgi_app(pipeline: Pipeline, deps: Dependencies) -> Starlette:
    async def api(request: Request) -> Response:
        try:
            body = await _read_body(request)
        except ApiError as error:
            return _to_starlette(pipeline.protocol.error_response(error, "-"))
        http_request = HttpRequest(
            method=request.method,
            # SigV4 signs the path and query as sent, still percent-encoded.
            path=(request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1"),
            query=request.scope.get("query_string", b"").decode("latin-1"),
            headers=joined_headers(request.headers.items()),  # every value of a repeated header
            body=body,
        )
        # Signing and SQL are blocking; keep the event loop free.
        return _to_starlette(await run_in_threadpool(pipeline.handle, http_request))

    async def puppet_ca(request: Request) -> Response:
        params = request.path_params
        if params["document"] not in ("certificate", "certificate_revocation_list"):
            return PlainTextResponse("Not Found", status_code=404)
        pem = await run_in_threadpool(ca_document, deps, params["server_id"], params["document"], params["name"])
        if pem is None:
            return PlainTextResponse(f"Not Found: Could not find {params['document']} {params['name']}", 404)
        return PlainTextResponse(pem, media_type="text/plain")

    async def cli_model(request: Request) -> Response:
        name = request.path_params["file"].removesuffix(".json")
        if request.path_params["version"] != spec.API_VERSION or name not in spec.CLI_MODEL_FILES:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(await run_in_threadpool(_cli_model_file, name), media_type="application/json")

    return Starlette(
        routes=[
            Route("/", api, methods=["POST", "GET", "PUT", "DELETE", "PATCH", "HEAD"]),
            Route(CA_PATH, puppet_ca, methods=["GET"]),
            Route(CLI_MODEL_PATH, cli_model, methods=["GET"]),
        ]
    )


@functools.cache
def _cli_model_file(name: str) -> bytes:
    path = spec.model_file(name)
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> ApiError:
    return ApiError("SerializationException", f"The request body is larger than {MAX_BODY_BYTES} bytes.", 413)


def _to_starlette(response: HttpResponse) -> Response:
    return Response(content=response.body, status_code=response.status, headers=dict(response.headers))
