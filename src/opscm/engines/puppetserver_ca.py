"""The ``puppetserver-ca`` backend: a server's nodes get their certificates from the operator's
Puppet Server CA (puppetserver is the CA; opscm fronts it with the OpsWorks CM API).

opscm's own CSR checks run before anything is sent; then the CSR is submitted and signed there
and the certificate returned as ``PUPPET_NODE_CERT``. DisassociateNode revokes and cleans the
certificate there. Every call converges when repeated: a certificate already signed for the
CSR's key is the answer; a cleaned name is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opscm.domain.associations import PUPPET_NODE_CERT, AssociationAction
from opscm.domain.engine_attributes import attribute_map
from opscm.domain.servers import Server
from opscm.service.ports import Applied, NodeChange, Provisioned, UnitOfWork

from .credentials import BackendCertificates
from .http import BackendError, BackendRefused
from .puppet_ca_api import API, PuppetCaApi
from .puppet_nodes import vet_puppet_change
from .remote import RemoteEngine

CA_CERT = "ca_cert_pem"


class PuppetServerCaEngine(BackendCertificates, RemoteEngine):
    engine = "Puppet"

    def __init__(self, name: str, *, endpoint: str, api: PuppetCaApi, url: str, admin_certname: str | None):
        """``api``: the CA API reached with the admin client certificate (``admin_certname``)."""
        self.name = name
        self.endpoint = endpoint
        self._api = api
        self._ca_api_url = url.rstrip("/") + API
        self._admin_certname = admin_certname

    # -- servers -----------------------------------------------------------------------------

    def prepare(self, server: Server, attributes) -> Provisioned:
        attribute_map(attributes, allowed=())  # passwords and keys are puppetserver's own
        try:
            # Best effort, outside any transaction: the starter kit carries the CA when it answers.
            data = {CA_CERT: self._api.ca_certificate()}
        except BackendError:
            data = {}
        return Provisioned(once=[], engine_data=data)

    def provision(self, server: Server) -> Callable[[UnitOfWork, Server], None]:
        ca_cert = self._api.ca_certificate()
        self._api.check()
        return lambda uow, created: created.engine_data.update({CA_CERT: ca_cert})

    def refresh(self, server: Server) -> dict | None:
        return {CA_CERT: self._api.ca_certificate()}

    def describe(self, server: Server) -> list[dict[str, str]]:
        attributes = []
        if server.engine_data.get(CA_CERT):
            attributes.append({"Name": "PUPPET_API_CA_CERT", "Value": server.engine_data[CA_CERT]})
        attributes.append({"Name": "PUPPET_API_CA_URL", "Value": f"{self._ca_api_url}/certificate/ca"})
        attributes.append({"Name": "PUPPET_API_CRL_URL", "Value": f"{self._ca_api_url}/certificate_revocation_list/ca"})
        return attributes

    def reserved_names(self, server: Server) -> Iterable[str]:
        return (self._admin_certname,) if self._admin_certname else ()

    # -- nodes -------------------------------------------------------------------------------

    def vet(self, server: Server, action: AssociationAction, node_name: str, attributes) -> NodeChange:
        return vet_puppet_change(action, node_name, attributes)

    def apply_change(self, server: Server, change: NodeChange, replacing: bool) -> Applied:
        name = change.node_name
        if change.action is AssociationAction.DISASSOCIATE:
            self._api.clean(name)  # revoked (in puppetserver's CRL) and deleted; absent is fine
            return Applied()
        csr_pem = change.request["csr"]
        wanted = _public_key_of(x509.load_pem_x509_csr(csr_pem.encode()))
        signed = self._api.certificate(name)
        if signed is not None:
            if _public_key_of(x509.load_pem_x509_certificate(signed.encode())) == wanted:
                return _applied(signed)  # signed already for this very key: a repeated call
            if not replacing:
                raise BackendRefused(f"Puppet Server already has a signed certificate for {name}", 409)
            self._api.clean(name)
        pending = self._api.requested_csr(name)
        if pending is None:
            self._api.submit_csr(name, csr_pem)
        elif _public_key_of(x509.load_pem_x509_csr(pending.encode())) != wanted:
            # puppetserver refuses a second CSR for a name while one waits (and clean leaves it).
            raise BackendRefused(f"Puppet Server holds a pending certificate request for {name} with another key", 409)
        # else: submitted by an earlier attempt whose answer was lost (a timeout, a 5xx): signed now.
        self._api.sign(name)
        signed = self._api.certificate(name)
        if signed is None or _public_key_of(x509.load_pem_x509_certificate(signed.encode())) != wanted:
            raise BackendRefused(f"Puppet Server did not return the certificate it signed for {name}", 502)
        return _applied(signed)

    # -- upkeep ------------------------------------------------------------------------------

    def maintain(self, server: Server) -> list[str]:
        self._api.check()
        self._api.crl()
        return ["Checked the Puppet Server CA, its CRL and opscm's client certificate on it."]

    def check_health(self, server: Server) -> str | None:
        self._api.check()
        return None


def _public_key_of(item) -> bytes:
    return item.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _applied(cert_pem: str) -> Applied:
    serial = x509.load_pem_x509_certificate(cert_pem.encode()).serial_number
    return Applied([{"Name": PUPPET_NODE_CERT, "Value": cert_pem}], ref=str(serial))
