"""Who may hold a node name: the ownership policy of a server, reserved names, node claims.

A name that has a certificate or key in force belongs to its node. By default nobody else
gets it (Puppet's own CA refuses a second certificate for a signed name); a server may allow
replacement for fleets that rebuild nodes under the same name. The names a server itself
answers to are never given to a node, whatever the policy: a node certificate carries
serverAuth and could pose as the server.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from datetime import datetime

from .associations import AssociationAction
from .errors import InvalidState, ValidationFailed

NODE_NAME_POLICY = "OPSCM_NODE_NAME_POLICY"
BACKEND = "OPSCM_BACKEND"
# opscm's own attributes, accepted by CreateServer for every engine.
OPSCM_CREATE_ATTRIBUTES = (NODE_NAME_POLICY, BACKEND)
# Names no node of any server may take.
ALWAYS_RESERVED = ("ca", "localhost")


class NodeNamePolicy(enum.StrEnum):
    UNIQUE = "UNIQUE"  # a name in force is refused until it is disassociated
    REPLACE = "REPLACE"  # a new association revokes the old certificate / key and takes the name


def parse_policy(value: str | None) -> NodeNamePolicy:
    try:
        return NodeNamePolicy((value or "").strip().upper())
    except ValueError:
        raise ValidationFailed(
            f"{NODE_NAME_POLICY} must be {' or '.join(NodeNamePolicy)}, not '{(value or '')[:40]}'."
        ) from None


class NodeState(enum.StrEnum):
    ASSOCIATED = "ASSOCIATED"  # in force
    ASSOCIATING = "ASSOCIATING"  # a remote engine is being asked
    DISASSOCIATING = "DISASSOCIATING"


@dataclasses.dataclass(frozen=True)
class NodeClaim:
    """One node name of a server in force (or being changed), and the association holding it."""

    server_id: str
    name: str
    state: NodeState
    token_hash: str
    ref: str | None  # the engine's handle: a certificate serial, a key fingerprint
    changed_at: datetime


def check_not_reserved(server_name: str, node_name: str, reserved: Iterable[str]) -> None:
    """Refuse a node name the server answers to (its endpoint, custom domain, server
    certificates, admin clients); compared without case, as host names are."""
    wanted = node_name.lower()
    if wanted in ALWAYS_RESERVED or wanted in {name.lower() for name in reserved if name}:
        raise ValidationFailed(
            f"Node name {node_name} is reserved on server {server_name}: the server itself answers to it."
        )


def check_claim(
    server_name: str, node_name: str, action: AssociationAction, holder: NodeClaim | None, policy: NodeNamePolicy
) -> None:
    """May this change go ahead, given who holds the name now? Raises the refusal."""
    if holder is not None and holder.state is not NodeState.ASSOCIATED:
        raise InvalidState(
            f"Node {node_name} is being {'associated' if holder.state is NodeState.ASSOCIATING else 'disassociated'} "
            f"with server {server_name}; try again when that has finished."
        )
    if action is AssociationAction.ASSOCIATE and holder is not None and policy is NodeNamePolicy.UNIQUE:
        raise ValidationFailed(
            f"Node {node_name} is already associated with server {server_name} and its certificate or key is in "
            f"force. Disassociate it first, or set {NODE_NAME_POLICY}={NodeNamePolicy.REPLACE} on the server to let "
            "a new association replace it."
        )
