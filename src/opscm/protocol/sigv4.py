"""AWS Signature Version 4, server side: read the Authorization header, check the signature.

The algorithm (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)::

    canonical request = METHOD \\n canonical URI \\n canonical query \\n
                        canonical headers \\n signed headers \\n payload hash
    string to sign    = AWS4-HMAC-SHA256 \\n X-Amz-Date \\n scope \\n hex(sha256(canonical request))
    signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
    signature         = hex(HMAC(signing key, string to sign))

Looking up the secret for ``access_key_id`` (and checking a session token or the
region) is the caller's business; this module only does the cryptography and the
AWS-worded errors.  Only the Authorization header form is supported (no presigned
query-string authentication: botocore never presigns this API).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from .errors import ApiError
from .json11 import HttpRequest

__all__ = [
    "ALGORITHM",
    "SigV4Authorization",
    "canonical_request",
    "check_region",
    "read_authorization",
    "verify_signature",
]

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_MAX_ECHO = 512
# Besides Host: the headers that choose the operation and how the body is read. botocore signs
# every header it sends; an unsigned one could be swapped in transit (another operation, same body).
REQUIRED_SIGNED_HEADERS = {"x-amz-target": "X-Amz-Target", "content-type": "Content-Type"}


@dataclass(frozen=True)
class SigV4Authorization:
    access_key_id: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


def _incomplete(message: str) -> ApiError:
    return ApiError("IncompleteSignatureException", message)


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidSignatureException", message)


_FIELD_SEPARATOR = re.compile(r"[,\s]+")
_SCOPE_DATE = re.compile(r"\d{8}")


def read_authorization(request: HttpRequest) -> SigV4Authorization:
    """Parse ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
    echo = f"Authorization={header[:_MAX_ECHO]}"
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm[:64]}' (only {ALGORITHM} for now). ")
    fields: dict[str, str] = {}
    for part in _FIELD_SEPARATOR.split(rest.strip()):
        name, eq, value = part.partition("=")
        if eq and name not in fields:
            fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise _incomplete(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing) + f" {echo}"
        )
    credential = fields["Credential"]
    parts = credential.split("/")
    if len(parts) != 5:
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{credential[:_MAX_ECHO]}'"
        )
    access_key_id, date, region, service, terminator = parts
    if not access_key_id:
        raise _incomplete(f"Credential should contain an access key id, not ''. {echo}")
    if not _SCOPE_DATE.fullmatch(date):
        raise _incomplete(f"Credential should be scoped to a valid date (YYYYMMDD), not '{date[:64]}'. ")
    if not region:
        raise _incomplete("Credential should be scoped to a valid region, not ''. ")
    if not service:
        raise _incomplete("Credential should be scoped to a valid service, not ''. ")
    if terminator != TERMINATOR:
        raise _incomplete(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator[:64]}'. "
        )
    signed_headers = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";"))
    if not all(signed_headers):
        raise _incomplete(f"Authorization header has an empty name in 'SignedHeaders'. {echo}")
    return SigV4Authorization(access_key_id, date, region, service, signed_headers, fields["Signature"])


def check_region(region: str, regions: Collection[str]) -> None:
    """Refuse a credential scope outside the served regions, as an AWS endpoint does."""
    if region not in regions:
        raise _invalid(f"Credential should be scoped to a valid region, not '{region[:64]}'. ")


_BASIC_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


def _basic_time(text: str) -> datetime:
    """``YYYYMMDDTHHMMSSZ`` (what strptime does with _AMZ_DATE, at a tenth of its cost)."""
    match = _BASIC_TIME.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return datetime(*map(int, match.groups()), tzinfo=UTC)


def _request_time(request: HttpRequest) -> tuple[str, datetime]:
    """The ISO 8601 basic request time that was signed, and its value."""
    amz_date = request.headers.get("x-amz-date", "").strip()
    if amz_date:
        try:
            moment = _basic_time(amz_date)
        except ValueError:
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date[:64]}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ) from None
        return amz_date, moment
    http_date = request.headers.get("date", "").strip()
    if http_date:
        try:
            moment = parsedate_to_datetime(http_date)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            # An offset can carry a date past year 9999 (OverflowError).
            moment = moment.astimezone(UTC)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise _incomplete(f"Date must be an HTTP date (RFC 7231). Got '{http_date[:64]}'.") from None
        return moment.strftime(_AMZ_DATE), moment
    raise _incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization={request.headers.get('authorization', '')[:_MAX_ECHO]}"
    )


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


@functools.lru_cache(maxsize=256)  # nearly always "/"
def canonical_uri(path: str) -> str:
    """The wire path with dot segments and empty segments removed, percent-encoded again."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(query: str) -> str:
    """Pairs decoded, re-encoded the RFC 3986 way, sorted by key then value (the spec)."""
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        pairs.append((_uri_encode(unquote(key)), _uri_encode(unquote(value))))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _canonical_queries(query: str) -> list[str]:
    """The spec's canonical query, then the wire pairs sorted as sent (what botocore signs).

    The two differ only for queries not encoded the strict RFC 3986 way (a raw ``+``,
    lower-case escapes); either is a deterministic function of the request.
    """
    if not query:
        return [""]
    as_sent = "&".join(f"{key}={value}" for key, value in sorted(pair.partition("=")[::2] for pair in query.split("&")))
    strict = canonical_query(query)
    return [strict] if as_sent == strict else [strict, as_sent]


def _header_value(value: str) -> str:
    return " ".join(value.split())


def canonical_request(
    request: HttpRequest, signed_headers: tuple[str, ...], payload_hash: str, query: str | None = None
) -> str:
    """The canonical request; *query* overrides the canonical query string."""
    headers = "".join(f"{name}:{_header_value(request.headers.get(name, ''))}\n" for name in signed_headers)
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.path),
            canonical_query(request.query) if query is None else query,
            headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signature(secret_access_key: str, auth: SigV4Authorization, amz_date: str, canonical: str) -> str:
    string_to_sign = "\n".join([ALGORITHM, amz_date, auth.scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _signing_key(secret_access_key, auth.date, auth.region, auth.service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=1024)
def _signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The day's signing key of a secret (the same for every request of that day and scope)."""
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def verify_signature(
    request: HttpRequest,
    auth: SigV4Authorization,
    secret_access_key: str,
    *,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
    service: str = "opsworks-cm",
) -> None:
    """Raise the AWS error a real endpoint would answer, or return if the request is authentic."""
    amz_date, moment = _request_time(request)
    if auth.date != amz_date[:8]:
        raise _invalid(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if auth.service != service:
        raise _invalid(f"Credential should be scoped to correct service: '{service}'. ")
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    minutes = f"{max_skew.total_seconds() / 60:g} min."
    if moment < now - max_skew:
        raise _invalid(
            f"Signature expired: {amz_date} is now earlier than {(now - max_skew).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} - {minutes})"
        )
    if moment > now + max_skew:
        raise _invalid(
            f"Signature not yet current: {amz_date} is still later than {(now + max_skew).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} + {minutes})"
        )
    if "host" not in auth.signed_headers:
        raise _invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    for name, shown in REQUIRED_SIGNED_HEADERS.items():
        if name not in auth.signed_headers:
            raise _invalid(f"'{shown}' must be a 'SignedHeader' in the AWS Authorization.")
    body_hash = hashlib.sha256(request.body).hexdigest()
    payload_hash = request.headers.get("x-amz-content-sha256", "").strip() or body_hash
    if payload_hash != body_hash:
        # UNSIGNED-PAYLOAD and wrong digests alike: the body must be covered by the signature.
        raise _invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
    provided = auth.signature.encode("utf-8", "surrogatepass")
    for query in _canonical_queries(request.query):
        canonical = canonical_request(request, auth.signed_headers, payload_hash, query)
        expected = signature(secret_access_key, auth, amz_date, canonical)
        if hmac.compare_digest(expected.encode("ascii"), provided):
            return
    raise _invalid(_MISMATCH)
