"""Console sessions: a stateless cookie, sealed (AES-GCM: secret and tamper-proof) with a key
derived from the master key, so that every worker process and replica reads it.

It holds the access key id, a digest of the key's secret, the session's CSRF token and its
deadlines: IDLE_TIMEOUT after the last request (each request moves it), and at most LIFETIME
after sign-in. Nothing is kept on the server: the key is looked up again at every request, so
a removed key ends its sessions at once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag

from opscm.app.secret_box import AesGcmBox, derive_key
from opscm.service.ports import AccessKey, Clock

IDLE_TIMEOUT = timedelta(minutes=15)
LIFETIME = timedelta(hours=12)
# The sign-in form's token lives in a cookie of its own until the form is sent.
SIGN_IN_FORM_TIMEOUT = timedelta(minutes=30)


@dataclasses.dataclass(frozen=True)
class Session:
    key_id: str
    key_digest: str  # of the secret: a key made again under the same id is another key
    csrf_token: str
    signed_in_at: float  # POSIX seconds
    expires_at: float


class SessionCodec:
    def __init__(self, console_key: bytes, clock: Clock):
        self._box = AesGcmBox(derive_key(console_key, "session-box"))
        self._digest_key = derive_key(console_key, "key-digest")
        self._clock = clock

    # -- sessions ------------------------------------------------------------------------------

    def start(self, key: AccessKey) -> Session:
        now = self._now()
        return self.refreshed(Session(key.access_key_id, self._key_digest(key), secrets.token_urlsafe(32), now, now))

    def refreshed(self, session: Session) -> Session:
        """The session with its idle deadline moved to now + IDLE_TIMEOUT (within LIFETIME)."""
        deadline = min(self._now() + IDLE_TIMEOUT.total_seconds(), session.signed_in_at + LIFETIME.total_seconds())
        return dataclasses.replace(session, expires_at=deadline)

    def belongs_to(self, session: Session, key: AccessKey) -> bool:
        return hmac.compare_digest(session.key_digest, self._key_digest(key))

    def seal(self, session: Session) -> str:
        return self._seal(dataclasses.asdict(session))

    def open(self, cookie: str | None) -> Session | None:
        """The session, or None when the cookie is missing, forged or past a deadline."""
        fields = self._open(cookie)
        try:
            session = Session(**fields) if fields else None
            if session is None or self._now() >= min(session.expires_at, session.signed_in_at + LIFETIME.total_seconds()):
                return None
        except TypeError:  # fields of another shape
            return None
        return session

    # -- the sign-in form's token ----------------------------------------------------------------

    def sign_in_token(self) -> tuple[str, str]:
        """A token for the form and the cookie that must come back with it."""
        token = secrets.token_urlsafe(32)
        return token, self._seal({"t": token, "e": self._now() + SIGN_IN_FORM_TIMEOUT.total_seconds()})

    def sign_in_token_matches(self, cookie: str | None, token: str) -> bool:
        fields = self._open(cookie)
        if not fields or not isinstance(fields.get("t"), str) or self._now() >= fields.get("e", 0):
            return False
        return hmac.compare_digest(fields["t"].encode(), token.encode())

    # -----------------------------------------------------------------------------------------

    def _key_digest(self, key: AccessKey) -> str:
        message = f"{key.access_key_id}\0{key.secret_access_key}".encode()
        return hmac.new(self._digest_key, message, hashlib.sha256).hexdigest()

    def _seal(self, fields: dict) -> str:
        sealed = self._box.seal(json.dumps(fields, separators=(",", ":")).encode())
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def _open(self, cookie: str | None) -> dict | None:
        if not cookie or len(cookie) > 4096:
            return None
        try:
            plain = self._box.open(base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4)))
            fields = json.loads(plain)
        except (InvalidTag, ValueError, binascii.Error):
            return None
        return fields if isinstance(fields, dict) else None

    def _now(self) -> float:
        return self._clock.now().timestamp()


def expires_in(session: Session, now: datetime) -> int:
    """Seconds until the session's idle deadline: the cookie's Max-Age."""
    return max(0, round(session.expires_at - now.timestamp()))
