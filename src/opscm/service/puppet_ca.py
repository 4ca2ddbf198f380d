"""The Puppet CA documents published without credentials: CA certificate, CRL, node certificates."""

from __future__ import annotations

from .context import Dependencies


def ca_document(deps: Dependencies, server_id: str, document: str, name: str) -> str | None:
    """``document`` is ``certificate`` or ``certificate_revocation_list`` as in Puppet's CA API."""
    with deps.uow(read_only=True) as uow:
        server = uow.servers.get_by_id(server_id)
    if server is None or server.backend is not None:
        return None  # a backend publishes its own documents
    return deps.engine_for(server).ca_document(server, document, name)
