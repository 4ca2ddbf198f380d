"""The operator's backends (configuration file) turned into remote engines."""

from __future__ import annotations

from collections.abc import Mapping

from opscm.service.ports import Engine

from .config import Backend


def remote_engines(backends: Mapping[str, Backend]) -> dict[str, Engine]:
    engines: dict[str, Engine] = {}
    for name, backend in backends.items():
        raise NotImplementedError(f"backend kind {backend.kind} of {name}")
    return engines
