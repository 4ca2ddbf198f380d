"""The Puppet CA documents published without credentials: CA certificate, CRL, node certificates."""

from __future__ import annotations

from .context import Dependencies


def ca_document(deps: Dependencies, server_id: str, document: str, name: str) -> str | None:
    """``document`` is ``certificate`` or ``certificate_revocation_list`` as in Puppet's CA API."""
    with deps.uow(read_only=True) as uow:
        ca = uow.puppet.get(server_id)
        if ca is None:
            return None
        if document == "certificate_revocation_list":
            return ca.crl_pem if name == "ca" else None
        if name == "ca":
            return ca.cert_pem
        return uow.puppet.certificate_pem(server_id, name)
