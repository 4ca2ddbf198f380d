"""A read-only web console at /console on the API's port: servers, nodes, certificates, events,
backups, associations per hour. Signed in with an access key (see ``access`` and ``sessions``)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Route

from opscm.service.context import Dependencies

from ..credentials import KeyRing
from .handlers import Console
from .sessions import SessionCodec
from .web import PREFIX


def console_routes(
    deps: Dependencies, keys: KeyRing, console_key: bytes, regions: Iterable[str], body_timeout: float
) -> list[BaseRoute]:
    """``keys``: looked up at every request (a KeyRing with no cache ends a removed key's sessions
    at once); ``console_key``: derived from the master key, the same in every process;
    ``body_timeout``: how long a form's body may take to arrive (the API's ``--body-timeout``)."""
    console = Console(deps, keys, SessionCodec(console_key, deps.clock), tuple(regions), body_timeout)
    return [
        Route(PREFIX, console.servers, methods=["GET"]),
        Route(PREFIX + "/sign-in", console.sign_in_form, methods=["GET"]),
        Route(PREFIX + "/sign-in", console.sign_in, methods=["POST"]),
        Route(PREFIX + "/sign-out", console.sign_out, methods=["POST"]),
        Route(PREFIX + "/servers/{region}/{name}", console.server, methods=["GET"]),
        Route(PREFIX + "/certificates", console.certificates, methods=["GET"]),
        Route(PREFIX + "/search", console.search, methods=["GET"]),
    ]
