"""Errors as the JSON 1.1 protocol carries them: ``{"__type": code, "message": ...}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client; ``code`` is the wire ``__type``."""

    def __init__(self, code: str, message: str, status_code: int = 400, sender_fault: bool = True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code
        self.sender_fault = sender_fault

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r}, {self.status_code})"
