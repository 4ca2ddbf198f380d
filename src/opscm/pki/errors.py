"""Errors of the PKI layer.

``str(error)`` is a complete, user-facing sentence: the API layer returns it verbatim
as a ValidationException message. It therefore never contains key material.
"""

from __future__ import annotations


class PkiError(ValueError):
    """A certificate, request, key or name was refused; the message says why."""


class InvalidCertname(PkiError):
    """A certname breaks Puppet's certname rules."""


class CsrRefused(PkiError):
    """A certificate signing request breaks the signing policy."""


class InvalidPublicKey(PkiError):
    """A public key supplied by a client is unusable."""
