"""Puppet certname rules (what puppetserver's CA accepts as a subject)."""

from __future__ import annotations

import re

from .errors import InvalidCertname

# A certname becomes the certificate's CN, whose X.509 upper bound is 64 characters
# (RFC 5280 ub-common-name); OpenSSL-based agents cannot even build a longer request.
MAX_CERTNAME_LENGTH = 64

_LABEL_CHARS = re.compile(r"[A-Za-z0-9\-_]*")
_LABEL_LAST = re.compile(r"[A-Za-z0-9_]")


def quote(name: str, limit: int = 80) -> str:
    """Quote a client-supplied name for an error message: escaped, and cut if huge."""
    return repr(name if len(name) <= limit else name[:limit] + "...")


def check_certname(name: str) -> None:
    """Raise InvalidCertname, naming the broken rule, unless ``name`` is a valid certname."""
    if not isinstance(name, str):
        raise InvalidCertname("Certname must be a string")
    if name == "":
        raise InvalidCertname("Certname must not be empty")
    q = quote(name)
    if "*" in name:
        raise InvalidCertname(f"Certname {q} must not contain a wildcard ('*')")
    if name != name.lower():
        raise InvalidCertname(f"Certname {q} must be lower case")
    if len(name) > MAX_CERTNAME_LENGTH:
        raise InvalidCertname(
            f"Certname {q} is {len(name)} characters long; at most {MAX_CERTNAME_LENGTH} are allowed"
        )
    # Each label must match ^[A-Za-z0-9\-_]*[A-Za-z0-9_]$; split the regex in two so the
    # message can say which part failed.
    for label in name.split("."):
        if label == "":
            raise InvalidCertname(
                f"Certname {q} has an empty label (leading, trailing or consecutive dots)"
            )
        if not _LABEL_CHARS.fullmatch(label):
            bad = next(c for c in label if not _LABEL_CHARS.fullmatch(c))
            raise InvalidCertname(
                f"Certname {q} contains the character {bad!r}; only letters, digits, '-', '_' "
                f"and '.' are allowed"
            )
        if not _LABEL_LAST.fullmatch(label[-1]):
            raise InvalidCertname(f"Certname {q} has a label ending in '-' ({quote(label)})")
    if not _LABEL_LAST.fullmatch(name[0]):
        raise InvalidCertname(f"Certname {q} must start with a letter, digit or underscore")
