"""Subject alternative names given by an operator (``DNS:puppet.example.com``, ``IP:10.0.0.5``).

Strict on purpose: these go into a server certificate that agents trust, so a typo must be
an error, never a silently different name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cryptography import x509

from .certname import quote
from .errors import PkiError

MAX_DNS_LENGTH = 253  # RFC 1035, without the trailing dot
MAX_ALT_NAMES = 100  # far above any real server; bounds the certificate's size

# One DNS label: lower-case letters, digits, '-' and '_' (Puppet certnames allow it), not
# starting or ending with '-'. Upper case is refused rather than folded: names are compared
# as written elsewhere in Puppet (certnames, auth.conf).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class InvalidAltName(PkiError):
    """An alternative name is malformed; the message says which and why."""


def parse_alt_names(entries: Iterable[str]) -> list[x509.GeneralName]:
    """``["DNS:x", "IP:1.2.3.4", "IP:::1"]`` -> GeneralNames, in order, duplicates dropped.

    Only ``DNS:`` (a host name, no wildcard) and ``IP:`` (an IPv4 or IPv6 address, no zone,
    no brackets) are accepted, with exactly these prefixes.
    """
    if isinstance(entries, (str, bytes)):
        raise InvalidAltName("Alternative names must be a list of strings such as 'DNS:x', not one string")
    names: list[x509.GeneralName] = []
    for entry in entries:
        name = parse_alt_name(entry)
        if name not in names:
            names.append(name)
    if len(names) > MAX_ALT_NAMES:
        raise InvalidAltName(f"{len(names)} alternative names given; at most {MAX_ALT_NAMES} are allowed")
    return names


def parse_alt_name(entry: str) -> x509.GeneralName:
    """One ``DNS:<host>`` or ``IP:<address>``."""
    if not isinstance(entry, str):
        raise InvalidAltName("An alternative name must be a string such as 'DNS:x' or 'IP:1.2.3.4'")
    kind, sep, value = entry.partition(":")
    if not sep or kind not in ("DNS", "IP"):
        raise InvalidAltName(
            f"Alternative name {quote(entry)} must start with 'DNS:' or 'IP:' (upper case)"
        )
    if kind == "DNS":
        return x509.DNSName(_dns_name(value, entry))
    return x509.IPAddress(_ip_address(value, entry))


def _dns_name(value: str, entry: str) -> str:
    q = quote(entry)
    if not value:
        raise InvalidAltName(f"Alternative name {q} has an empty DNS name")
    if "*" in value:
        raise InvalidAltName(f"Alternative name {q} must not contain a wildcard ('*')")
    if len(value) > MAX_DNS_LENGTH:
        raise InvalidAltName(f"Alternative name {q} is longer than {MAX_DNS_LENGTH} characters")
    if value != value.lower():
        raise InvalidAltName(f"Alternative name {q} must be lower case")
    if _is_ip(value):
        # A client reaching the server by address needs an IP entry; a DNS one never matches.
        raise InvalidAltName(f"Alternative name {q} is an IP address: write it as 'IP:{value}'")
    for label in value.split("."):
        if not _LABEL.fullmatch(label):
            raise InvalidAltName(
                f"Alternative name {q} is not a host name: each dot-separated label must be 1-63 "
                "letters, digits, '-' or '_', not starting or ending with '-'"
            )
    return value


def _ip_address(value: str, entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # ipaddress accepts IPv6 zone ids ('fe80::1%eth0'), which have no meaning in a
    # certificate; refuse them, and brackets, before parsing.
    if "%" in value or "[" in value or value != value.strip():
        raise InvalidAltName(f"Alternative name {quote(entry)} is not an IP address (no brackets or zone)")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidAltName(f"Alternative name {quote(entry)} is not an IPv4 or IPv6 address") from None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
