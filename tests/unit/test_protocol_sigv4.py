"""SigV4 verification, tested against botocore's signer."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import HttpRequest
from opscm.protocol.sigv4 import SigV4Authorization, check_region, read_authorization, verify_signature

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2024, 1, 1, 0, 10, 0, tzinfo=UTC)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


def sign(
    url="https://opscm.example.com/",
    body=b"{}",
    headers=None,
    *,
    at=NOW,
    region="us-east-1",
    service="opsworks-cm",
    secret=SECRET,
    token=None,
    method="POST",
) -> HttpRequest:
    """Sign with botocore, then present the request as a server receives it."""
    request = AWSRequest(
        method,
        url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "OpsWorksCM_V2016_11_01.DescribeServers",
            **(headers or {}),
        },
    )
    signer = SigV4Auth(Credentials(ACCESS_KEY, secret, token), service, region)
    # botocore reads the clock through botocore.auth.get_current_datetime: pin it.
    with mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: at.replace(tzinfo=None)):
        signer.add_auth(request)
    parts = urlsplit(request.url)
    wire_headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    wire_headers.setdefault("Host", parts.netloc)
    return HttpRequest(method, parts.path or "/", parts.query, wire_headers, request.body or b"")


def verify(request: HttpRequest, *, now=NOW, secret=SECRET, **kwargs) -> None:
    verify_signature(request, read_authorization(request), secret, now=now, **kwargs)


def error_of(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as raised:
        call(*args, **kwargs)
    return raised.value


def tampered(request: HttpRequest, **changes) -> HttpRequest:
    return replace(request, **changes)


def with_header(request: HttpRequest, name: str, value: str | None) -> HttpRequest:
    headers = dict(request.headers)
    if value is None:
        headers.pop(name, None)
    else:
        headers[name] = value
    return replace(request, headers=headers)


# -- accepted requests ----------------------------------------------------------------------------


def test_the_clock_is_pinned_in_these_tests():
    assert sign().headers["x-amz-date"] == "20240101T001000Z"


@pytest.mark.parametrize(
    "url",
    [
        "https://opscm.example.com/",
        "https://opscm.example.com",
        "http://localhost:8080/",
        "https://opscm.example.com/some/path",
        "https://opscm.example.com/a%20b/%E2%82%AC/c",
        "https://opscm.example.com/a/./b/../c//d/",
        "https://opscm.example.com/?b=2&a=1&a=0",
        "https://opscm.example.com/?key=va%20lue&empty=&flag",
        "https://opscm.example.com/?x=%2B%3D%26&%C3%A9=%E2%9C%93",
        "https://opscm.example.com/?plus=a+b&tilde=~&Upper=Z",
        "https://opscm.example.com/?trailing=1&",
    ],
)
def test_botocore_signed_paths_and_queries_verify(url):
    verify(sign(url))


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b'{"ServerName": "s"}', '{"NodeName": "日本 ✓ \U0001f600"}'.encode(), bytes(range(256)) * 40],
)
def test_botocore_signed_bodies_verify(body):
    verify(sign(body=body))


def test_header_whitespace_and_case_are_canonicalized():
    request = sign(headers={"X-Custom": "  a   b \t c  ", "x-MiXeD": "Value"})
    auth = read_authorization(request)
    assert "x-custom" in auth.signed_headers and "x-mixed" in auth.signed_headers
    verify(request)
    # Extra spaces in transit do not matter either (intermediaries may refold).
    verify(with_header(request, "x-custom", "a b c"))


def test_session_token_and_content_sha256_header():
    verify(sign(token="session-token"))
    body = b'{"a": 1}'
    verify(sign(body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}))


def test_other_regions_and_skew_inside_the_window():
    verify(sign(region="eu-central-1"))
    verify(sign(at=NOW - timedelta(minutes=15)))
    verify(sign(at=NOW + timedelta(minutes=15)))
    verify(sign(at=NOW - timedelta(minutes=4)), max_skew=timedelta(minutes=5))


def test_naive_now_is_utc():
    verify(sign(), now=NOW.replace(tzinfo=None))


def test_date_header_instead_of_x_amz_date():
    """Signed by botocore's building blocks with only a Date header (no X-Amz-Date)."""
    request = AWSRequest(
        "POST",
        "https://opscm.example.com/",
        data=b"{}",
        headers={
            "Date": "Mon, 01 Jan 2024 00:10:00 GMT",
            "Host": "opscm.example.com",
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "OpsWorksCM_V2016_11_01.DescribeServers",
        },
    )
    request.context["timestamp"] = "20240101T001000Z"
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "opsworks-cm", "us-east-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    headers = dict(request.headers.items())
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20240101/us-east-1/opsworks-cm/aws4_request, "
        f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, Signature={signature}"
    )
    http = HttpRequest("POST", "/", "", headers, b"{}")
    verify(http)
    assert error_of(verify, with_header(http, "date", "Mon, 01 Jan 2024 00:10:01 GMT")).message == MISMATCH


# -- tampering -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda r: tampered(r, body=r.body + b" "),
        lambda r: tampered(r, body=b'{"ServerName": "other"}'),
        lambda r: tampered(r, method="PUT"),
        lambda r: tampered(r, path="/other"),
        lambda r: tampered(r, query="a=2"),
        lambda r: tampered(r, query=r.query + "&extra=1"),
        lambda r: with_header(r, "x-amz-target", "OpsWorksCM_V2016_11_01.DeleteServer"),
        lambda r: with_header(r, "content-type", "application/json"),
        lambda r: with_header(r, "host", "evil.example.com"),
        lambda r: with_header(r, "x-amz-date", "20240101T001001Z"),
        lambda r: with_header(r, "x-amz-target", None),
        lambda r: with_header(r, "authorization", r.headers["authorization"].replace("us-east-1", "us-west-2")),
        lambda r: with_header(
            r,
            "authorization",
            r.headers["authorization"][:-1] + ("0" if r.headers["authorization"][-1] != "0" else "1"),
        ),
        lambda r: with_header(r, "authorization", r.headers["authorization"].replace("x-amz-date", "x-amz-dat")),
    ],
)
def test_tampering_with_any_signed_part_fails(change):
    original = sign("https://opscm.example.com/p?a=1")
    verify(original)
    error = error_of(verify, change(original))
    assert error.code == "InvalidSignatureException" and error.message == MISMATCH


def test_only_lower_case_hex_signatures():
    request = sign()
    header = request.headers["authorization"]
    signature = header.rsplit("=", 1)[1]
    if signature.upper() != signature:
        upper = with_header(request, "authorization", header[: -len(signature)] + signature.upper())
        assert error_of(verify, upper).message == MISMATCH


def test_wrong_secret_fails():
    assert error_of(verify, sign(), secret="not-the-secret").message == MISMATCH


def test_unsigned_headers_may_change():
    request = sign()
    verify(with_header(request, "user-agent", "something else"))
    verify(with_header(request, "x-forwarded-for", "10.0.0.1"))


def test_payload_hash_header_must_match_the_body():
    body = b'{"a": 1}'
    request = sign(body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    error = error_of(verify, tampered(request, body=b'{"a": 2}'))
    assert error.code == "InvalidSignatureException"
    unsigned = sign(body=body, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert error_of(verify, unsigned).code == "InvalidSignatureException"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=64),
    path=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=5), max_size=3),
    query=st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3),
    header=st.text(st.characters(codec="ascii", min_codepoint=32, max_codepoint=126), max_size=20),
)
def test_random_requests_signed_by_botocore_verify(body, path, query, header):
    from urllib.parse import quote

    url = "https://opscm.example.com/" + "/".join(quote(segment, safe="") for segment in path)
    if query:
        url += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    request = sign(url, body=body, headers={"X-Extra": header} if header.strip() else None)
    verify(request)
    assert error_of(verify, tampered(request, body=body + b"x")).code == "InvalidSignatureException"


# -- time ------------------------------------------------------------------------------------------------


def test_expired_signature():
    request = sign(at=datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC))
    error = error_of(verify, request, now=datetime(2024, 1, 1, 0, 25, 0, tzinfo=UTC))
    assert error.code == "InvalidSignatureException" and error.status_code == 400
    assert (
        error.message
        == "Signature expired: 20240101T000000Z is now earlier than 20240101T001000Z (20240101T002500Z - 15 min.)"
    )


def test_signature_not_yet_current():
    request = sign(at=datetime(2024, 1, 1, 1, 0, 0, tzinfo=UTC))
    error = error_of(verify, request, now=datetime(2024, 1, 1, 0, 25, 0, tzinfo=UTC))
    assert error.code == "InvalidSignatureException"
    assert (
        error.message
        == "Signature not yet current: 20240101T010000Z is still later than 20240101T004000Z (20240101T002500Z + 15 min.)"
    )


def test_custom_skew_in_messages():
    request = sign(at=NOW - timedelta(minutes=6))
    error = error_of(verify, request, max_skew=timedelta(minutes=5))
    assert error.message.endswith("(20240101T001000Z - 5 min.)")


def test_missing_date():
    request = with_header(sign(), "x-amz-date", None)
    error = error_of(verify, request)
    assert error.code == "IncompleteSignatureException"
    assert error.message.startswith(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


@pytest.mark.parametrize("value", ["2024-01-01T00:10:00Z", "20240101", "garbage", "20241301T001000Z"])
def test_malformed_x_amz_date(value):
    assert error_of(verify, with_header(sign(), "x-amz-date", value)).code == "IncompleteSignatureException"


@pytest.mark.parametrize("value", ["not a date", "Fri, 31 Dec 9999 23:59:59 -2359"])
def test_malformed_http_date(value):
    # The second is past year 9999 once in UTC (an OverflowError, answered 500 before).
    request = with_header(with_header(sign(), "x-amz-date", None), "date", value)
    assert error_of(verify, request).code == "IncompleteSignatureException"


def test_scope_date_must_match_request_date():
    request = sign(at=datetime(2024, 1, 1, 23, 59, 0, tzinfo=UTC))
    request = with_header(request, "x-amz-date", "20240102T000100Z")
    error = error_of(verify, request, now=datetime(2024, 1, 2, 0, 1, 0, tzinfo=UTC))
    assert error.code == "InvalidSignatureException"
    assert error.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20240101' != '20240102', from '20240102T000100Z'."
    )


def test_scope_service_must_be_ours():
    error = error_of(verify, sign(service="opsworks"))
    assert error.code == "InvalidSignatureException"
    assert error.message == "Credential should be scoped to correct service: 'opsworks-cm'. "
    verify(sign(service="other"), service="other")


@pytest.mark.parametrize(("name", "shown"), [("x-amz-target", "X-Amz-Target"), ("content-type", "Content-Type")])
def test_target_and_content_type_must_be_signed(name, shown):
    request = sign()
    auth = read_authorization(request)
    unsigned = replace(auth, signed_headers=tuple(header for header in auth.signed_headers if header != name))
    error = error_of(verify_signature, request, unsigned, SECRET, now=NOW)
    assert error.code == "InvalidSignatureException"
    assert error.message == f"'{shown}' must be a 'SignedHeader' in the AWS Authorization."


def test_the_scope_must_name_a_served_region():
    check_region("eu-west-1", {"eu-west-1"})
    error = error_of(check_region, "x" * 100, {"eu-west-1"})
    assert error.code == "InvalidSignatureException" and error.status_code == 400
    assert error.message == f"Credential should be scoped to a valid region, not '{'x' * 64}'. "


def test_host_must_be_signed():
    request = sign()
    auth = replace(read_authorization(request), signed_headers=("content-type", "x-amz-date"))
    error = error_of(verify_signature, request, auth, SECRET, now=NOW)
    assert error.code == "InvalidSignatureException"
    assert error.message == "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


# -- reading the Authorization header ---------------------------------------------------------------------


def test_read_authorization_fields():
    auth = read_authorization(sign(region="ap-south-1"))
    assert isinstance(auth, SigV4Authorization)
    assert (auth.access_key_id, auth.date, auth.region, auth.service) == (
        ACCESS_KEY,
        "20240101",
        "ap-south-1",
        "opsworks-cm",
    )
    assert auth.signed_headers == ("content-type", "host", "x-amz-date", "x-amz-target")
    assert len(auth.signature) == 64
    assert auth.scope == "20240101/ap-south-1/opsworks-cm/aws4_request"


def test_separators_may_be_commas_or_spaces():
    request = sign()
    compact = request.headers["authorization"].replace(", ", ",")
    verify(with_header(request, "authorization", compact))
    spaced = request.headers["authorization"].replace(", ", "  ")
    verify(with_header(request, "authorization", spaced))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": ""},
        {"authorization": "   "},
        {"x-amz-security-token": "t"},
        {"x-amz-date": "20240101T001000Z"},
    ],
)
def test_missing_authentication_token(headers):
    request = HttpRequest("POST", "/", "", headers, b"{}")
    error = error_of(read_authorization, request)
    assert (error.code, error.message, error.status_code) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
        400,
    )


GOOD = f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20240101/us-east-1/opsworks-cm/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Basic dXNlcjpwYXNz", "Unsupported AWS 'algorithm': 'Basic'"),
        ("AWS4-HMAC-SHA512 Credential=x", "Unsupported AWS 'algorithm'"),
        ("AWS AKID:signature", "Unsupported AWS 'algorithm': 'AWS'"),
        (
            "AWS4-HMAC-SHA256",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires 'Signature' parameter.",
        ),
        (
            GOOD.replace(", Signature=abc", ""),
            "Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256",
        ),
        (GOOD.replace("SignedHeaders=host;x-amz-date, ", ""), "requires 'SignedHeaders' parameter."),
        (GOOD.replace("Credential=", "Cred="), "requires 'Credential' parameter."),
        (GOOD.replace("Signature=abc", "Signature="), "requires 'Signature' parameter."),
        (GOOD.replace("/aws4_request", ""), "Credential must have exactly 5 slash-delimited elements"),
        (GOOD.replace("/aws4_request", "/aws4_request/x"), "Credential must have exactly 5 slash-delimited elements"),
        (
            GOOD.replace("aws4_request", "aws5_request"),
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'.",
        ),
        (GOOD.replace("/us-east-1/", "//"), "Credential should be scoped to a valid region, not ''."),
        (GOOD.replace("/20240101/", "/2024-01-01/"), "Credential should be scoped to a valid date"),
        (GOOD.replace(f"{ACCESS_KEY}/", "/"), "Credential should contain an access key id"),
        (GOOD.replace("/opsworks-cm/", "//"), "Credential should be scoped to a valid service"),
        (
            GOOD.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=host;;x-amz-date"),
            "empty name in 'SignedHeaders'",
        ),
    ],
)
def test_incomplete_signatures(header, fragment):
    error = error_of(read_authorization, HttpRequest("POST", "/", "", {"authorization": header}, b""))
    assert error.code == "IncompleteSignatureException" and error.status_code == 400
    assert fragment in error.message


def test_signed_header_names_are_lower_cased():
    header = GOOD.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=Host;X-Amz-Date")
    auth = read_authorization(HttpRequest("POST", "/", "", {"Authorization": header}, b""))
    assert auth.signed_headers == ("host", "x-amz-date")


@settings(max_examples=200, deadline=None)
@given(header=st.text(max_size=200), date=st.text(max_size=20))
def test_random_authorization_headers_only_raise_api_errors(header, date):
    request = HttpRequest("POST", "/", "", {"authorization": header, "x-amz-date": date, "host": "h"}, b"")
    try:
        verify(request)
    except ApiError as error:
        assert error.code in (
            "MissingAuthenticationTokenException",
            "IncompleteSignatureException",
            "InvalidSignatureException",
        )
