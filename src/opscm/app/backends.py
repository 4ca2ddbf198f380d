"""The operator's backends (configuration file) turned into remote engines: the one place
where their credentials are read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from opscm.engines.chef_api import ChefApi
from opscm.engines.chef_server import ChefServerEngine
from opscm.engines.puppet_ca_api import PuppetCaApi
from opscm.engines.puppetserver_ca import PuppetServerCaEngine
from opscm.service.ports import Clock, Engine

from .config import Backend, ChefServerBackend, endpoint_of


def remote_engines(backends: Mapping[str, Backend], clock: Clock) -> dict[str, Engine]:
    return {name: _engine(backend, clock) for name, backend in backends.items()}


def _engine(backend: Backend, clock: Clock) -> Engine:
    ca_bundle = str(backend.ca_bundle) if backend.ca_bundle else None
    if isinstance(backend, ChefServerBackend):
        api = ChefApi(
            backend.url,
            backend.client_name,
            backend.client_key.read_bytes(),
            organization=backend.organization,
            ca_bundle=ca_bundle,
            timeout=backend.timeout,
            clock=clock,
        )
        return ChefServerEngine(backend.name, endpoint=endpoint_of(backend), api=api, url=backend.url)
    api = PuppetCaApi(backend.url, str(backend.client_cert), str(backend.client_key), ca_bundle, backend.timeout)
    return PuppetServerCaEngine(
        backend.name, endpoint=endpoint_of(backend), api=api, url=backend.url, admin_certname=_common_name(backend.client_cert)
    )


def _common_name(cert_path: Path) -> str | None:
    """The certname of the admin client certificate: never a node's."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
