"""The AWS JSON 1.1 wire protocol, server side, driven by the service model.

One small pipeline: :meth:`JsonProtocol.operation_for` (``X-Amz-Target``) ->
:meth:`JsonProtocol.parse` (decode + validate every constraint) -> the handler ->
:meth:`JsonProtocol.response` / :meth:`JsonProtocol.error_response`.  No I/O here: the
ASGI server, the in-process mock and the tests all feed it :class:`HttpRequest`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from botocore.model import OperationModel, ServiceModel

from .errors import ApiError
from .serializer import serialize_output
from .validation import validated_input

__all__ = [
    "CONTENT_TYPE",
    "MAX_JSON_VALUES",
    "HttpRequest",
    "HttpResponse",
    "JsonProtocol",
    "joined_headers",
    "json_value_count",
]

CONTENT_TYPE = "application/x-amz-json-1.1"

MAX_JSON_VALUES = 10_000
"""Most JSON values (objects, arrays, members, items) a request body may hold.

The largest real request (CreateServer with 200 tags) has under 1,000; a 4 MiB body of
``{}`` has a million, which ``json.loads`` would build (about 190 MB) before validation
could refuse them, so they are counted first, without parsing."""

# A JSON string, also an unterminated one (it runs to the end): each byte is scanned once.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def json_value_count(body: bytes) -> int:
    """An upper bound on the values of a JSON text, read without parsing it.

    Outside strings, every value but the first follows a ``,`` or opens a container, so
    ``{``, ``[`` and ``,`` plus one bound it (an empty container counts twice).
    """
    structure = _JSON_STRING.sub(b"", body)
    return structure.count(b"{") + structure.count(b"[") + structure.count(b",") + 1


def joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; a repeated header's values joined with ',' in arrival order
    (RFC 9110 5.3, and what SigV4 signs)."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        key = key.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as received.

    ``path`` and ``query`` are as on the wire (still percent-encoded: ASGI's
    ``raw_path`` and ``query_string``), which is what SigV4 signs.  ``headers`` keys
    are lower-cased on construction; a repeated header is one comma-joined value.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    def __post_init__(self) -> None:
        if any(key != key.lower() for key in self.headers):
            object.__setattr__(self, "headers", joined_headers(self.headers.items()))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


# Made once: json.dumps and json.loads with options build an encoder or decoder per call.
# ensure_ascii (the default): lone surrogates a client sent stay representable.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _dumps(data: object) -> bytes:
    return _ENCODER.encode(data).encode("ascii")


class JsonProtocol:
    """Target routing, parsing, validation and serialization for one service model."""

    def __init__(self, service_model: ServiceModel):
        self.service_model = service_model
        self.target_prefix: str = service_model.metadata["targetPrefix"]
        self._operations = {name: service_model.operation_model(name) for name in service_model.operation_names}

    def operation_for(self, request: HttpRequest) -> OperationModel:
        """The operation named by ``X-Amz-Target``, or ``UnknownOperationException``."""
        if request.method.upper() != "POST":
            raise ApiError(
                "UnknownOperationException",
                f"{request.method} is not supported: JSON 1.1 operations are POST requests with an X-Amz-Target header",
            )
        target = request.headers.get("x-amz-target", "").strip()
        if not target:
            raise ApiError("UnknownOperationException", "Missing X-Amz-Target header")
        prefix, dot, name = target.rpartition(".")
        if not dot or prefix != self.target_prefix or name not in self._operations:
            raise ApiError("UnknownOperationException", f"Unknown operation {target[:200]!r}")
        return self._operations[name]

    def parse(self, operation_model: OperationModel, body: bytes) -> dict:
        """The validated parameters of a request body.

        Returns only members of the input shape, keyed by member name, with nulls
        dropped (see :func:`opscm.protocol.validation.validated_input`).  Raises
        ``SerializationException`` for a body that is not a UTF-8 JSON object and
        ``ValidationException`` for one that breaks the model.
        """
        body = bytes(body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(
                "SerializationException", f"Request body is not valid UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
        if not text.strip():
            params: object = {}
        elif len(body) >= MAX_JSON_VALUES and json_value_count(body) > MAX_JSON_VALUES:  # the count is at most len + 1
            raise ApiError("SerializationException", f"Request body holds more than {MAX_JSON_VALUES} JSON values")
        else:
            try:
                params = _DECODER.decode(text)
            except RecursionError:
                raise ApiError("SerializationException", "Request body is nested too deeply") from None
            except ValueError as exc:
                raise ApiError("SerializationException", f"Request body is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise ApiError("SerializationException", "Request body must be a JSON object")
        try:
            return validated_input(operation_model, params)
        except RecursionError:
            raise ApiError("SerializationException", "Request body is nested too deeply") from None

    def _headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", request_id)]

    def response(self, operation_model: OperationModel, result: dict, request_id: str) -> HttpResponse:
        shape = operation_model.output_shape
        if shape is None:
            if result:
                raise ValueError(f"{operation_model.name} has no output; got {sorted(result)}")
            data: dict = {}
        else:
            data = serialize_output(shape, result or {})
        return HttpResponse(200, self._headers(request_id), _dumps(data))

    def error_response(self, error: ApiError, request_id: str) -> HttpResponse:
        headers = self._headers(request_id) + [("x-amzn-ErrorType", error.code)]
        return HttpResponse(error.status_code, headers, _dumps({"__type": error.code, "message": error.message}))
