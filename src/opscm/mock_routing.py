"""Which in-process mock answers an opsworkscm request: botocore hooks for that one service.

Two routes, and one answer per request whichever hooks hear it:

- ``OpsWorksCMMock.attach``: a hook on the client or session given, registered first so that an
  explicit attachment wins;
- ``mock_opsworkscm``: while one is active, every botocore session created gets the routing hook
  (through botocore's public ``register_initializer``, which runs for every new session), and so
  does boto3's default session if it exists. The routing hook sends a request to the innermost
  active mock at the time of the call and does nothing when none is active, so the hooks it leaves
  on clients made inside are inert afterwards.

Only the event ``before-send.opsworkscm`` is ever registered: clients of other services never see
opscm. Nothing is registered while no mock is active.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol

import botocore

EVENT = "before-send.opsworkscm"
# One routing hook per event emitter however often a session is seen (botocore skips a unique_id
# already registered), so a request is never routed twice.
_ROUTE_ID = "opscm.mock.route"
# Marks a request some opscm hook has answered: botocore calls every before-send hook and keeps
# the first answer, and a mock must not act (associate a node, create a server) on a discarded one.
_ANSWERED = "_opscm_answered"


class Responder(Protocol):
    def respond(self, request): ...


_active: list[Responder] = []  # innermost last
_lock = threading.Lock()


def events_of(client_or_session):
    """The event emitter of a botocore/boto3 client, a boto3 session or a botocore session."""
    if hasattr(client_or_session, "meta"):
        return client_or_session.meta.events
    if hasattr(client_or_session, "get_component"):
        return client_or_session.get_component("event_emitter")
    return client_or_session.events


def claim(request) -> bool:
    """True for the first opscm hook that sees this request (botocore makes one per attempt)."""
    if getattr(request, _ANSWERED, False):
        return False
    setattr(request, _ANSWERED, True)
    return True


def innermost() -> Responder | None:
    try:
        return _active[-1]
    except IndexError:
        return None


def activate(mock: Responder) -> None:
    with _lock:
        _active.append(mock)
        if len(_active) == 1:
            botocore.register_initializer(_hook)
            _hook(_boto3_default_session())


def deactivate(mock: Responder) -> None:
    with _lock:
        _active.remove(mock)  # by identity of the mock, so scopes may end out of order
        if not _active:
            botocore.unregister_initializer(_hook)
            # The default session of now: the one hooked at activation or one made since (a default
            # session replaced meanwhile keeps an inert hook, as do other sessions made inside).
            _unhook(_boto3_default_session())


def _route(request, **_kwargs):
    mock = innermost()
    if mock is None or not claim(request):
        return None
    return mock.respond(request)


def _hook(session) -> None:
    if session is not None:
        events_of(session).register(EVENT, _route, unique_id=_ROUTE_ID)


def _unhook(session) -> None:
    if session is not None:
        events_of(session).unregister(EVENT, unique_id=_ROUTE_ID)


def _boto3_default_session():
    # Only if the program uses boto3: opscm does not import it (botocore is its dependency).
    boto3 = sys.modules.get("boto3")
    return getattr(boto3, "DEFAULT_SESSION", None)
