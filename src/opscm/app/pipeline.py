"""The request pipeline: authenticate -> throttle -> target -> authorize the action -> parse and
validate -> authorize the servers touched -> dispatch -> serialize."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from botocore.model import OperationModel

from opscm.domain.backups import backup_arn, server_name_of_backup
from opscm.domain.errors import DomainError
from opscm.domain.tags import parse_resource_arn
from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import HttpRequest, HttpResponse, JsonProtocol
from opscm.protocol.sigv4 import check_region, read_authorization, verify_signature
from opscm.service.context import Caller, Dependencies
from opscm.service.ports import AccessKey, Clock, WouldWait
from opscm.service.steps import Steps, resume

from .credentials import KeyRing, allows, user_arn
from .durable_answers import FEW
from .storage_errors import storage_failure
from .throttle import TokenBuckets

log = logging.getLogger("opscm.requests")

Handler = Callable[[Dependencies, Caller, dict], dict]
# The caller, and the key it signed with (None: anything is allowed, as in the mock).
Authenticate = Callable[[HttpRequest], tuple[Caller, AccessKey | None]]
# Told of each answered request: operation ("-" if not known), outcome ("success" or the error code), seconds.
ObserveRequest = Callable[[str, str, float], None]


def _request_id() -> str:
    """A version-4 UUID, as AWS's request ids (uuid.uuid4 costs five times as much)."""
    h = bytearray(os.urandom(16))
    h[6], h[8] = (h[6] & 0x0F) | 0x40, (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def servers_touched(caller: Caller, params: Mapping[str, object]) -> list[tuple[str | None, str]]:
    """The servers a request names (``ServerName``, ``BackupId``, ``ResourceArn``), each with the
    resource AccessDeniedException names; the name is None when it cannot be told."""
    touched: list[tuple[str | None, str]] = []
    if isinstance(name := params.get("ServerName"), str):
        touched.append((name, f"arn:aws:opsworks-cm:{caller.region}:{caller.account_id}:server/{name}/*"))
    if isinstance(backup_id := params.get("BackupId"), str):
        touched.append((server_name_of_backup(backup_id), backup_arn(caller.region, caller.account_id, backup_id)))
    if isinstance(arn := params.get("ResourceArn"), str):
        resource = parse_resource_arn(arn)
        if resource is None:
            touched.append((None, arn))
        else:
            server = resource.name if resource.kind == "server" else server_name_of_backup(resource.name)
            touched.append((server, arn))
    return touched


def access_denied(key: AccessKey, operation: str, resource: str | None = None) -> ApiError:
    on = f" on resource: {resource}" if resource else ""
    message = f"User: {user_arn(key)} is not authorized to perform: opsworks-cm:{operation}{on}"
    return ApiError("AccessDeniedException", message)


class Authenticator:
    """Verifies SigV4 against the stored keys; the caller's region is the credential scope's,
    one of the served regions."""

    def __init__(self, keyring: KeyRing, clock: Clock, regions: Collection[str]):
        self._keyring = keyring
        self._clock = clock
        self._regions = regions

    def __call__(self, request: HttpRequest) -> tuple[Caller, AccessKey | None]:
        auth = read_authorization(request)
        check_region(auth.region, self._regions)
        key = self._keyring.find(auth.access_key_id)
        if key is None:
            raise ApiError("UnrecognizedClientException", "The security token included in the request is invalid.")
        verify_signature(request, auth, key.secret_access_key, now=self._clock.now())
        return Caller(key.account_id, auth.region, key.server_names), key


# The region of a SigV4 credential scope (Credential=KEY/YYYYMMDD/REGION/SERVICE/aws4_request).
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]*/\d{8}/([^/,\s]+)/")


class TrustingAuthenticator:
    """For the in-process mock: any credentials, one account, region from the signature if any
    (one of the served regions, as for the server)."""

    def __init__(self, account_id: str, default_region: str, regions: Collection[str]):
        check_region(default_region, regions)
        self._account_id = account_id
        self._default_region = default_region
        self._regions = regions

    def __call__(self, request: HttpRequest) -> tuple[Caller, AccessKey | None]:
        scope = _CREDENTIAL_SCOPE.search(request.headers.get("authorization", ""))
        region = scope.group(1) if scope else self._default_region
        check_region(region, self._regions)
        return Caller(self._account_id, region), None


# The largest body a request may have to be read on the event loop (parsing is CPU).
LIGHT_BODY_BYTES = 64 * 1024
LightTest = Callable[[Dependencies, Caller, dict], bool]
# A handler written as steps (see service.steps), and what runs its blocking steps.
StepsHandler = Callable[[Dependencies, Caller, dict], Any]
Offload = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclasses.dataclass
class Prepared:
    """A request authenticated, parsed and authorized: what is left is to run its handler."""

    request_id: str
    started: float
    operation: OperationModel
    handler: Handler
    caller: Caller
    params: dict


@dataclasses.dataclass
class Underway:
    """A light request whose handler's steps wait for a blocking step (see ``start_light``)."""

    prepared: Prepared
    steps: Steps
    step: Callable[[], Any]


class Pipeline:
    def __init__(
        self,
        protocol: JsonProtocol,
        operations: Mapping[str, Handler],
        deps: Dependencies,
        authenticate: Authenticate,
        throttle: TokenBuckets | None = None,
        observe: ObserveRequest | None = None,
        light: Mapping[str, LightTest] | None = None,
        steps: Mapping[str, StepsHandler] | None = None,
    ):
        self.protocol = protocol
        self._operations = operations
        self._deps = deps
        self._authenticate = authenticate
        self._throttle = throttle
        self._observe = observe
        self._light = light or {}
        self._steps = steps or {}
        self._light_targets = frozenset(f"{protocol.target_prefix}.{name}" for name in self._light)

    def handle(self, request: HttpRequest) -> HttpResponse:
        prepared = self.prepare(request)
        return prepared if isinstance(prepared, HttpResponse) else self.run(prepared)

    def may_be_light(self, target: str, body_size: int) -> bool:
        """Whether a request may be prepared on the event loop (then :meth:`is_light` tells)."""
        return target in self._light_targets and body_size <= LIGHT_BODY_BYTES

    def is_light(self, prepared: Prepared) -> bool:
        """Whether it needs nothing but the store (see service.operations.LIGHT): on a store near
        enough (:meth:`light_on_loop`) :meth:`start_light` may answer it on the event loop."""
        test = self._light.get(prepared.operation.name)
        return test is not None and test(self._deps, prepared.caller, prepared.params)

    def light_on_loop(self, others: Callable[[], int]) -> bool:
        """Whether a light request runs on the event loop, not in a thread, with ``others()``
        other requests of this process in progress: always on SQLite (no round trip); on a near
        PostgreSQL only among a few (``FEW``). Among many, a round trip made on the loop holds
        them all (64 Chef clients: p99 3.5-4.6x the median, against 3.0-4.1x in threads), and
        threads make their round trips side by side."""
        uow = self._deps.uow
        return uow.embedded or (uow.near and others() <= FEW)

    def start_light(self, prepared: Prepared) -> HttpResponse | Underway:
        """:meth:`run` on the event loop, as far as it goes without blocking: the answer, or the
        handler's steps underway when the next one blocks (a signature: finish them with
        :meth:`finish_light`). Nothing in it waits for a lock: it raises WouldWait, nothing
        written, and the request is then :meth:`run` in a thread."""
        make_steps = self._steps.get(prepared.operation.name)
        if make_steps is None:
            with self._deps.uow.without_waiting():
                return self.run(prepared)
        try:
            steps = make_steps(self._deps, prepared.caller, prepared.params)
        except Exception as failure:  # noqa: BLE001 - a handler may check before it makes its steps
            return self._failed(failure, prepared.request_id, prepared.started, prepared.operation.name)
        outcome = self._advance(prepared, steps)
        return outcome if isinstance(outcome, HttpResponse) else Underway(prepared, steps, outcome)

    async def finish_light(self, underway: Underway, offload: Offload) -> HttpResponse:
        """The rest of :meth:`start_light`: each blocking step awaited through ``offload``
        while the loop goes on, the handler's own code between them on the loop."""
        outcome: HttpResponse | Callable[[], Any] = underway.step
        while not isinstance(outcome, HttpResponse):
            try:
                value, error = await offload(outcome), None
            except Exception as failure:  # noqa: BLE001 - thrown into the steps, which decide
                value, error = None, failure
            outcome = self._advance(underway.prepared, underway.steps, value, error)
        return outcome

    def step_here(self, step: Callable[[], Any]) -> Any:
        """Run a blocking step of :meth:`start_light`'s on this thread (the event loop), as the
        handler's own code runs: a write that would wait for a lock raises WouldWait instead."""
        with self._deps.uow.without_waiting():
            return step()

    def _advance(
        self, prepared: Prepared, steps: Steps, value: Any = None, error: Exception | None = None
    ) -> HttpResponse | Callable[[], Any]:
        """Resume the steps: the answer once they are done, else their next (blocking) step."""
        try:
            with self._deps.uow.without_waiting():  # only while the handler's own code runs
                step, result = resume(steps, value, error)
        except WouldWait:
            raise
        except Exception as failure:  # noqa: BLE001 - answered as run() answers it
            return self._failed(failure, prepared.request_id, prepared.started, prepared.operation.name)
        return self._respond(prepared, result) if step is None else step

    def prepare(self, request: HttpRequest) -> Prepared | HttpResponse:
        """Authenticate, throttle, route, parse and authorize; an error is answered at once."""
        request_id = _request_id()
        started = time.perf_counter()
        operation_name = "-"
        try:
            caller, key = self._authenticate(request)
            if self._throttle is not None and not self._throttle.take(caller.account_id):
                raise ApiError("ThrottlingException", "Rate exceeded")
            operation = self.protocol.operation_for(request)
            operation_name = operation.name
            if key is not None and not allows(key, operation.name):
                raise access_denied(key, operation.name)
            params = self.protocol.parse(operation, request.body)
            if key is not None and caller.server_names is not None:
                for server_name, resource in servers_touched(caller, params):
                    if server_name is None or not caller.may_touch(server_name):
                        raise access_denied(key, operation.name, resource)
            handler = self._operations.get(operation.name)
            if handler is None:
                raise ApiError(
                    "NotImplementedException", f"opscm does not implement {operation.name} yet.", status_code=501
                )
            return Prepared(request_id, started, operation, handler, caller, params)
        except Exception as failure:  # noqa: BLE001 - a bug must answer JSON, not drop the connection
            return self._failed(failure, request_id, started, operation_name)

    def run(self, prepared: Prepared) -> HttpResponse:
        """Run the handler and serialize its result (or the error it raised)."""
        try:
            result = prepared.handler(self._deps, prepared.caller, prepared.params)
        except WouldWait:
            raise
        except Exception as failure:  # noqa: BLE001 - a bug must answer JSON, not drop the connection
            return self._failed(failure, prepared.request_id, prepared.started, prepared.operation.name)
        return self._respond(prepared, result)

    def _respond(self, prepared: Prepared, result: dict) -> HttpResponse:
        try:
            response = self.protocol.response(prepared.operation, result, prepared.request_id)
        except Exception as failure:  # noqa: BLE001 - a result off the model is a bug: answered 500
            return self._failed(failure, prepared.request_id, prepared.started, prepared.operation.name)
        return self._answered(response, prepared.request_id, prepared.started, prepared.operation.name, "success")

    def _failed(self, failure: Exception, request_id: str, started: float, operation_name: str) -> HttpResponse:
        if isinstance(failure, ApiError):
            error = failure
        elif isinstance(failure, DomainError):
            error = ApiError(failure.code, failure.message)
        else:
            error = storage_failure(failure)
            if error is not None:
                log.error("request %s (%s): %s", request_id, operation_name, error.message)
            else:
                log.error("request %s (%s) failed", request_id, operation_name, exc_info=failure)
                error = ApiError("InternalFailure", "The request processing has failed because of an unknown error.", 500)
        response = self.protocol.error_response(error, request_id)
        return self._answered(response, request_id, started, operation_name, error.code)

    def _answered(
        self, response: HttpResponse, request_id: str, started: float, operation_name: str, outcome: str
    ) -> HttpResponse:
        seconds = time.perf_counter() - started
        if self._observe is not None:
            self._observe(operation_name, outcome, seconds)
        if log.isEnabledFor(logging.INFO):
            shown = operation_name if outcome == "success" else f"{operation_name} {outcome}"
            fields = {"request_id": request_id, "operation": operation_name, "outcome": outcome,
                      "status": response.status, "duration_ms": round(seconds * 1000, 1)}  # JSON logs' own fields
            log.info("%s %s %d %.1fms", request_id, shown, response.status, seconds * 1000, extra=fields)
        return response
