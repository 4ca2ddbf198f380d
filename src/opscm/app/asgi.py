"""The ASGI application: the JSON API on ``POST /`` and the public Puppet CA documents."""

from __future__ import annotations

import functools
import gzip
import logging

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
from .request_body import BodyLimits, ClientGone

log = logging.getLogger("opscm.http")
# Each Puppet server's CA documents, in the form of Puppet's CA API v1, under its own prefix.
CA_PATH = "/servers/{server_id}/puppet-ca/v1/{document}/{name}"
# The aws CLI's opsworks-cm model (AWS removed the command): user data scripts install it from here.
CLI_MODEL_PATH = "/aws-cli/models/opsworks-cm/{version}/{file}"


def ca_api_prefix(base_url: str, server_id: str) -> str:
    return f"{base_url.rstrip('/')}/servers/{server_id}/puppet-ca/v1"


def create_asgi_app(pipeline: Pipeline, deps: Dependencies, body_limits: BodyLimits | None = None) -> Starlette:
    limits = body_limits or BodyLimits()

    async def api(request: Request) -> Response:
        try:
            async with limits.read(request) as body:
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
        except ApiError as error:
            # The rest of the body may still be on its way: end the connection after the answer.
            response = _to_starlette(pipeline.protocol.error_response(error, "-"))
            response.headers["connection"] = "close"
            return response
        except ClientGone:
            log.info("client %s went away before its request body arrived", _peer(request))
            return Response(status_code=400)  # nobody reads it

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


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "-"


def _to_starlette(response: HttpResponse) -> Response:
    return Response(content=response.body, status_code=response.status, headers=dict(response.headers))
