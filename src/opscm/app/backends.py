"""The operator's backends (configuration file) turned into remote engines: the one place
where their credentials are read."""

from __future__ import annotations

from collections.abc import Mapping

from opscm.engines.chef_api import ChefApi
from opscm.engines.chef_server import ChefServerEngine
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
    raise NotImplementedError(f"backend kind {backend.kind}")
