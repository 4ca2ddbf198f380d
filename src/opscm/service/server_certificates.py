"""Certificates for the services around a built-in Puppet CA (``opscm puppetserver-bundle``):
a puppetserver that runs with its CA service off and trusts opscm's CA instead.

The names such a certificate is issued for are the server's own from then on: no node is
ever given them (a node certificate carries serverAuth and could pose as the puppetserver).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

from opscm.domain.errors import NotFound, ValidationFailed
from opscm.domain.servers import ASSOCIATION_STATES, Server

from .context import Dependencies
from .ports import StaleServer, UnitOfWork
from .server_cache import check_current


@dataclasses.dataclass(frozen=True)
class ServerCertificate:
    serial: int
    cert_pem: str
    ca_cert_pem: str
    crl_pem: str
    crl_url: str


@runtime_checkable
class ServerCertificateIssuer(Protocol):
    """An engine whose CA issues certificates for servers (the built-in Puppet CA)."""

    def sign_server_certificate(
        self, server: Server, *, certname: str, alt_names: list[str], public_key_pem: str
    ) -> tuple[int, str]:
        """Sign outside any transaction; returns the serial and the certificate."""

    def record_server_certificate(self, uow: UnitOfWork, server: Server, serial: int, certname: str, cert_pem: str, names: list[str]) -> None:
        """Keep the certificate with the CA's own and reserve ``names`` for the server."""


def find_server(deps: Dependencies, name: str, account_id: str | None = None, region: str | None = None) -> Server:
    """A server by name across the data dir's accounts and regions (an operator's command)."""
    with deps.uow(read_only=True) as uow:
        found = [
            s
            for s in uow.servers.list_all()
            if s.name == name and account_id in (None, s.account_id) and region in (None, s.region)
        ]
    if not found:
        raise NotFound(f"There is no server named {name}.")
    if len(found) > 1:
        places = ", ".join(f"{s.account_id}/{s.region}" for s in found)
        raise ValidationFailed(f"Several servers are named {name} ({places}): give --account and --region.")
    return found[0]


def issue_server_certificate(
    deps: Dependencies, server: Server, *, certname: str, alt_names: list[str], public_key_pem: str
) -> ServerCertificate:
    engine = deps.engine_for(server)
    if not isinstance(engine, ServerCertificateIssuer):
        raise ValidationFailed(f"Server {server.name} has no built-in Puppet CA to issue a server certificate.")
    # As a node's certificate: not while a backup, a maintenance or a restore works on the CA
    # (a restore would drop a certificate issued after its plan was made).
    server.require_status(*ASSOCIATION_STATES, action="Issuing a server certificate")
    names = [certname, *(entry.split(":", 1)[1].lower() for entry in alt_names if ":" in entry)]
    _check_free(deps, server, names)
    changed = ValidationFailed(f"Server {server.name} changed meanwhile; run the command again.")
    try:
        serial, cert_pem = engine.sign_server_certificate(
            server, certname=certname, alt_names=alt_names, public_key_pem=public_key_pem
        )
    except StaleServer:
        raise changed from None
    with deps.uow() as uow:
        try:
            check_current(uow, server)
        except StaleServer:
            raise changed from None
        _check_free(deps, server, names, uow)
        engine.record_server_certificate(uow, server, serial, certname, cert_pem, names)
        uow.servers.save(server)
        uow.events.add(server.id, deps.clock.now(), f"Server certificate for {certname} issued (serial {serial}).")
        uow.commit()
    attributes = {a["Name"]: a["Value"] for a in engine.describe(server)}
    crl = engine.ca_document(server, "certificate_revocation_list", "ca") or ""
    return ServerCertificate(serial, cert_pem, attributes["PUPPET_API_CA_CERT"], crl, attributes["PUPPET_API_CRL_URL"])


def _check_free(deps: Dependencies, server: Server, names: list[str], uow: UnitOfWork | None = None) -> None:
    def check(uow: UnitOfWork) -> None:
        for name in names:
            if uow.nodes.get(server.id, name) is not None:
                raise ValidationFailed(
                    f"Node {name} is associated with server {server.name}: disassociate it before the name "
                    "becomes the server's own."
                )

    if uow is not None:
        return check(uow)
    with deps.uow(read_only=True) as reading:
        check(reading)
