"""Admin password rules of the OpsWorks CM documentation, and generation of compliant ones."""

from __future__ import annotations

import secrets
import string

from .errors import ValidationFailed

SPECIALS = "!/@#$%^&+=_"
_ALPHABET = string.ascii_letters + string.digits + SPECIALS


def check_admin_password(attribute: str, password: str) -> None:
    """8 to 32 characters with a lower case letter, an upper case letter, a digit and one of !/@#$%^&+=_."""
    problems = []
    if not 8 <= len(password) <= 32:
        problems.append("be 8 to 32 characters long")
    if any(c not in _ALPHABET for c in password):
        problems.append(f"use only letters, digits and {SPECIALS}")
    for label, chars in (
        ("a lower case letter", string.ascii_lowercase),
        ("an upper case letter", string.ascii_uppercase),
        ("a digit", string.digits),
        (f"one of {SPECIALS}", SPECIALS),
    ):
        if not any(c in chars for c in password):
            problems.append(f"contain {label}")
    if problems:
        raise ValidationFailed(f"{attribute} must " + ", ".join(problems) + ".")


def generate_admin_password(length: int = 24) -> str:
    while True:
        candidate = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        try:
            check_admin_password("password", candidate)
        except ValidationFailed:
            continue
        return candidate
