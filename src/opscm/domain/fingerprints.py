"""Certificate fingerprints as user data scripts compute them (``base64 -d | sha256sum`` of each
PEM block) and as ``openssl x509 -noout -fingerprint -sha256`` prints them: ``AB:CD:...``."""

from __future__ import annotations

import base64
import hashlib
import re

_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


def certificate_fingerprints(pem: str) -> str:
    """The SHA-256 fingerprint of each certificate in *pem*, in order, comma-separated."""
    prints = []
    for body in _CERTIFICATE.findall(pem):
        digest = hashlib.sha256(base64.b64decode("".join(body.split()))).hexdigest().upper()
        prints.append(":".join(digest[i : i + 2] for i in range(0, len(digest), 2)))
    return ",".join(prints)
