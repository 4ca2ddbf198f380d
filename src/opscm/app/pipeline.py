"""The request pipeline: authenticate -> target -> parse and validate -> authorize -> dispatch -> serialize."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping

from opscm.domain.errors import DomainError
from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import HttpRequest, HttpResponse, JsonProtocol
from opscm.protocol.sigv4 import read_authorization, verify_signature
from opscm.service.context import Caller, Dependencies
from opscm.service.ports import Clock

from .credentials import KeyRing, allows

log = logging.getLogger("opscm.requests")

Handler = Callable[[Dependencies, Caller, dict], dict]


class Authenticator:
    """Verifies SigV4 against the stored keys; the caller's region is the credential scope's."""

    def __init__(self, keyring: KeyRing, clock: Clock):
        self._keyring = keyring
        self._clock = clock

    def __call__(self, request: HttpRequest) -> tuple[Caller, Callable[[str], bool]]:
        auth = read_authorization(request)
        key = self._keyring.find(auth.access_key_id)
        if key is None:
            raise ApiError("UnrecognizedClientException", "The security token included in the request is invalid.")
        verify_signature(request, auth, key.secret_access_key, now=self._clock.now())
        return Caller(key.account_id, auth.region), lambda operation: allows(key, operation)


class TrustingAuthenticator:
    """For the in-process mock: any credentials, one account, region from the signature if any."""

    def __init__(self, account_id: str, default_region: str):
        self._account_id = account_id
        self._default_region = default_region

    def __call__(self, request: HttpRequest) -> tuple[Caller, Callable[[str], bool]]:
        try:
            region = read_authorization(request).region
        except ApiError:
            region = self._default_region
        return Caller(self._account_id, region), lambda operation: True


class Pipeline:
    def __init__(
        self,
        protocol: JsonProtocol,
        operations: Mapping[str, Handler],
        deps: Dependencies,
        authenticate: Callable[[HttpRequest], tuple[Caller, Callable[[str], bool]]],
    ):
        self.protocol = protocol
        self._operations = operations
        self._deps = deps
        self._authenticate = authenticate

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        operation_name = "-"
        try:
            caller, may = self._authenticate(request)
            operation = self.protocol.operation_for(request)
            operation_name = operation.name
            params = self.protocol.parse(operation, request.body)
            if not may(operation.name):
                raise ApiError(
                    "AccessDeniedException",
                    f"User is not authorized to perform: opsworks-cm:{operation.name}",
                )
            handler = self._operations.get(operation.name)
            if handler is None:
                raise ApiError(
                    "NotImplementedException", f"opscm does not implement {operation.name} yet.", status_code=501
                )
            try:
                result = handler(self._deps, caller, params)
            except DomainError as error:
                raise ApiError(error.code, error.message) from None
            response = self.protocol.response(operation, result, request_id)
        except ApiError as error:
            response = self.protocol.error_response(error, request_id)
            operation_name += f" {error.code}"
        except Exception:  # noqa: BLE001 - a bug must answer JSON, not drop the connection
            log.exception("request %s (%s) failed", request_id, operation_name)
            error = ApiError("InternalFailure", "The request processing has failed because of an unknown error.", 500)
            response = self.protocol.error_response(error, request_id)
        log.info(
            "%s %s %d %.1fms", request_id, operation_name, response.status, (time.perf_counter() - started) * 1000
        )
        return response
