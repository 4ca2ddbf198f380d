"""JSON 1.1 routing, parsing and errors; fuzzing; boto3 end to end (through a before-send hook)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import CONTENT_TYPE, HttpRequest, HttpResponse, JsonProtocol
from opscm.protocol.sigv4 import read_authorization, verify_signature
from opscm.spec import service_model

MODEL = service_model()
PROTOCOL = JsonProtocol(MODEL)
PREFIX = "OpsWorksCM_V2016_11_01"


def request(
    target: str | None = f"{PREFIX}.AssociateNode", method: str = "POST", body: bytes = b"{}", **headers
) -> HttpRequest:
    all_headers = {"Content-Type": CONTENT_TYPE, **headers}
    if target is not None:
        all_headers["X-Amz-Target"] = target
    return HttpRequest(method, "/", "", all_headers, body)


def api_error(call, *args) -> ApiError:
    with pytest.raises(ApiError) as raised:
        call(*args)
    return raised.value


# -- routing ---------------------------------------------------------------------------------


def test_target_prefix_comes_from_the_model():
    assert PROTOCOL.target_prefix == PREFIX


@pytest.mark.parametrize("name", MODEL.operation_names)
def test_every_operation_is_routed(name):
    assert PROTOCOL.operation_for(request(f"{PREFIX}.{name}")).name == name


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "   ",
        "AssociateNode",
        f"{PREFIX}.",
        f"{PREFIX}.Nope",
        f"{PREFIX}.associateNode",
        f"{PREFIX}AssociateNode",
        "OpsWorks_20130218.AssociateNode",
        f"x.{PREFIX}.AssociateNode",
        f"{PREFIX}.AssociateNode.x",
        "é" * 5000,
    ],
)
def test_bad_targets_are_unknown_operations(target):
    error = api_error(PROTOCOL.operation_for, request(target))
    assert error.code == "UnknownOperationException" and error.status_code == 400
    assert len(error.message) < 400


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_are_unknown_operations(method):
    assert api_error(PROTOCOL.operation_for, request(method=method)).code == "UnknownOperationException"


def test_headers_are_lower_cased_and_repeats_joined():
    req = HttpRequest("post", "/", "", {"X-Amz-Target": f"{PREFIX}.DeleteServer", "X-A": "1", "x-a": "2"}, b"")
    assert req.headers["x-amz-target"] == f"{PREFIX}.DeleteServer" and req.headers["x-a"] == "1,2"
    assert PROTOCOL.operation_for(req).name == "DeleteServer"


# -- parsing ---------------------------------------------------------------------------------

ASSOCIATE = MODEL.operation_model("AssociateNode")
DESCRIBE = MODEL.operation_model("DescribeServers")


def test_empty_body_is_an_empty_object_then_validated():
    assert PROTOCOL.parse(DESCRIBE, b"") == {}
    assert PROTOCOL.parse(DESCRIBE, b" \n") == {}
    error = api_error(PROTOCOL.parse, ASSOCIATE, b"")
    assert error.code == "ValidationException"
    assert error.message.startswith("3 validation errors detected: Value null at 'serverName'")


def test_valid_body_is_parsed():
    body = json.dumps(
        {"ServerName": "s", "NodeName": "n", "EngineAttributes": [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]}
    )
    assert PROTOCOL.parse(ASSOCIATE, body.encode())["NodeName"] == "n"
    assert PROTOCOL.parse(DESCRIBE, memoryview(b'{"MaxResults": 5}')) == {"MaxResults": 5}


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe",
        b'{"ServerName": "\xc3"}',
        b"{",
        b"nope",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b"[]",
        b"null",
        b"1",
        b'"x"',
        b"true",
        b"\xef\xbb\xbf{}",
        b"{}{}",
        b"[" * 100000 + b"]" * 100000,
        b'{"a":' * 50000 + b"1" + b"}" * 50000,
    ],
)
def test_bad_bodies_are_serialization_exceptions(body):
    error = api_error(PROTOCOL.parse, DESCRIBE, body)
    assert error.code == "SerializationException" and error.status_code == 400


def test_deeply_nested_value_inside_a_known_member():
    body = b'{"EngineAttributes": ' + b"[" * 50000 + b"]" * 50000 + b"}"
    error = api_error(PROTOCOL.parse, ASSOCIATE, body)
    assert error.code in ("SerializationException", "ValidationException")


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ApiError("ValidationException", "1 validation error detected: Value 'a b' at 'nodeName' failed"),
        ApiError("ResourceNotFoundException", "The requested resource does not exist, or access was denied."),
        ApiError("InternalFailure", "boom", 500, sender_fault=False),
        ApiError("MissingAuthenticationTokenException", "Missing Authentication Token"),
        ApiError("X", "unicode ✓ \udcff lone surrogate"),
    ],
)
def test_error_response_is_read_by_botocore(error):
    response = PROTOCOL.error_response(error, "req-9")
    assert response.status == error.status_code
    headers = dict(response.headers)
    assert headers["Content-Type"] == CONTENT_TYPE and headers["x-amzn-RequestId"] == "req-9"
    assert json.loads(response.body) == {"__type": error.code, "message": error.message}
    raw = {
        "status_code": response.status,
        "headers": {k.lower(): v for k, v in response.headers},
        "body": response.body,
    }
    parsed = create_parser("json").parse(raw, None)
    assert parsed["Error"] == {"Code": error.code, "Message": error.message}
    assert parsed["ResponseMetadata"]["RequestId"] == "req-9"


# -- fuzzing: nothing but ApiError ------------------------------------------------------------------

MEMBER_NAMES = sorted(
    {
        name
        for op_name in MODEL.operation_names
        for shape in [MODEL.operation_model(op_name).input_shape]
        for name in list(shape.members) + ["Name", "Value", "Key"]
    }
)
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(MEMBER_NAMES) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def only_api_errors(operation, body: bytes) -> None:
    try:
        params = PROTOCOL.parse(operation, body)
    except ApiError as error:
        assert error.code in ("SerializationException", "ValidationException")
        assert error.message
        return
    assert isinstance(params, dict)
    # What passed is something a handler can use and the serializer of a reply could echo.
    json.dumps(params, default=str)


@pytest.mark.parametrize("name", MODEL.operation_names)
@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bytes_only_raise_api_errors(name, body):
    only_api_errors(MODEL.operation_model(name), body)


@pytest.mark.parametrize("name", MODEL.operation_names)
@FUZZ
@given(value=JSON_VALUES)
def test_random_json_only_raises_api_errors(name, value):
    only_api_errors(MODEL.operation_model(name), json.dumps(value).encode())


@pytest.mark.parametrize("name", MODEL.operation_names)
@FUZZ
@given(members=st.dictionaries(st.sampled_from(MEMBER_NAMES), JSON_VALUES, max_size=8))
def test_random_members_only_raise_api_errors(name, members):
    only_api_errors(MODEL.operation_model(name), json.dumps(members).encode())


@FUZZ
@given(target=st.text(max_size=60), method=st.sampled_from(["POST", "GET", "post", "", "PATCH"]))
def test_random_targets_only_raise_api_errors(target, method):
    try:
        PROTOCOL.operation_for(HttpRequest(method, "/", "", {"x-amz-target": target}, b""))
    except ApiError as error:
        assert error.code == "UnknownOperationException"


# -- boto3 end to end --------------------------------------------------------------------------------

SECRETS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


def serve(http: HttpRequest, handler) -> HttpResponse:
    """A tiny request pipeline: authenticate, route, parse, handle, serialize."""
    try:
        auth = read_authorization(http)
        verify_signature(http, auth, SECRETS.get(auth.access_key_id, "unknown"), now=datetime.now(UTC))
        operation = PROTOCOL.operation_for(http)
        params = PROTOCOL.parse(operation, http.body)
        return PROTOCOL.response(operation, handler(operation.name, params), "req-e2e")
    except ApiError as error:
        return PROTOCOL.error_response(error, "req-e2e")


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


@pytest.fixture
def client():
    calls = []

    def handler(name, params):
        calls.append((name, params))
        if name == "AssociateNode":
            return {"NodeAssociationStatusToken": "dG9rZW4="}
        if name == "DescribeServers":
            return {
                "Servers": [{"ServerName": "s", "CreatedAt": datetime(2024, 1, 1, tzinfo=UTC), "Status": "HEALTHY"}]
            }
        if name == "DeleteServer":
            raise ApiError("ResourceNotFoundException", "The requested resource does not exist, or access was denied.")
        return {}

    def before_send(request, **_):
        parts = urlsplit(request.url)
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        headers.setdefault("Host", parts.netloc)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        http = HttpRequest(request.method, parts.path or "/", parts.query, headers, body)
        response = serve(http, handler)
        return AWSResponse(request.url, response.status, dict(response.headers), _Raw(response.body))

    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRETS["AKIDEXAMPLE"], region_name="us-east-1"
    )
    client = session.client("opsworkscm", endpoint_url="https://opscm.test")
    client.meta.events.register("before-send.opsworkscm", before_send)
    client.calls = calls
    return client


def test_boto3_call_succeeds(client):
    response = client.associate_node(
        ServerName="s",
        NodeName="node-1.example:x_y",
        EngineAttributes=[{"Name": "CHEF_ORGANIZATION", "Value": "default"}],
    )
    assert response["NodeAssociationStatusToken"] == "dG9rZW4="
    assert response["ResponseMetadata"]["RequestId"] == "req-e2e"
    assert client.calls == [
        (
            "AssociateNode",
            {
                "ServerName": "s",
                "NodeName": "node-1.example:x_y",
                "EngineAttributes": [{"Name": "CHEF_ORGANIZATION", "Value": "default"}],
            },
        )
    ]
    servers = client.describe_servers()["Servers"]
    assert servers[0]["CreatedAt"] == datetime(2024, 1, 1, tzinfo=UTC)


def test_boto3_sees_validation_errors(client):
    with pytest.raises(ClientError) as raised:
        client.associate_node(ServerName="s", NodeName="a b", EngineAttributes=[])
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        "1 validation error detected: Value 'a b' at 'nodeName' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: ^[\-\p{Alnum}_:.]+$"
    )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_boto3_modeled_exception_class(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.delete_server(ServerName="missing")
    assert raised.value.response["Error"]["Message"] == "The requested resource does not exist, or access was denied."


def test_boto3_with_a_wrong_secret_is_rejected():
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wrong", region_name="us-east-1"
    )
    client = session.client("opsworkscm", endpoint_url="https://opscm.test")

    def before_send(request, **_):
        parts = urlsplit(request.url)
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        headers.setdefault("Host", parts.netloc)
        response = serve(HttpRequest(request.method, parts.path, parts.query, headers, request.body), lambda *a: {})
        return AWSResponse(request.url, response.status, dict(response.headers), _Raw(response.body))

    client.meta.events.register("before-send.opsworkscm", before_send)
    with pytest.raises(ClientError) as raised:
        client.describe_account_attributes()
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
