"""Node associations: what each engine needs from AssociateNode / DisassociateNode."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from .engine_attributes import attribute_map, first_of
from .errors import ValidationFailed

CHEF_ORGANIZATION = ("CHEF_ORGANIZATION", "CHEF_AUTOMATE_ORGANIZATION")
CHEF_NODE_PUBLIC_KEY = ("CHEF_NODE_PUBLIC_KEY", "CHEF_AUTOMATE_NODE_PUBLIC_KEY")
PUPPET_NODE_CSR = "PUPPET_NODE_CSR"
PUPPET_NODE_CERT = "PUPPET_NODE_CERT"
# Built-in Chef servers have one organization, as OpsWorks for Chef Automate had.
CHEF_DEFAULT_ORGANIZATION = "default"


class AssociationStatus(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    IN_PROGRESS = "IN_PROGRESS"


class AssociationAction(enum.StrEnum):
    ASSOCIATE = "ASSOCIATE"
    DISASSOCIATE = "DISASSOCIATE"


@dataclasses.dataclass
class Association:
    """One AssociateNode or DisassociateNode request, found again by its token."""

    token_hash: str
    server_id: str
    node_name: str
    action: AssociationAction
    status: AssociationStatus
    created_at: datetime
    engine_attributes: list[dict[str, str]] = dataclasses.field(default_factory=list)
    status_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class ChefNodeRequest:
    organization: str
    public_key_pem: str | None


def chef_request(
    attributes: Iterable[Mapping[str, str]] | None,
    *,
    need_key: bool,
    organizations: tuple[str, ...] = (CHEF_DEFAULT_ORGANIZATION,),
) -> ChefNodeRequest:
    """``organizations``: the names the server answers to (AWS's user data always sends 'default')."""
    values = attribute_map(attributes, allowed=CHEF_ORGANIZATION + CHEF_NODE_PUBLIC_KEY)
    organization = first_of(values, *CHEF_ORGANIZATION)
    if not organization:
        raise ValidationFailed(f"Engine attribute {CHEF_ORGANIZATION[0]} is required for Chef nodes.")
    if organization not in organizations:
        raise ValidationFailed(
            f"Chef organization '{organization[:100]}' does not exist; this server has only "
            f"{' / '.join(repr(o) for o in organizations)}."
        )
    key = first_of(values, *CHEF_NODE_PUBLIC_KEY)
    if need_key and not key:
        raise ValidationFailed(f"Engine attribute {CHEF_NODE_PUBLIC_KEY[0]} is required to associate a Chef node.")
    if not need_key and key is not None:
        raise ValidationFailed(f"{CHEF_NODE_PUBLIC_KEY[0]} has no meaning when disassociating a node.")
    return ChefNodeRequest(organization, key)


def puppet_csr(attributes: Iterable[Mapping[str, str]] | None) -> str:
    values = attribute_map(attributes, allowed=(PUPPET_NODE_CSR,))
    csr = values.get(PUPPET_NODE_CSR)
    if not csr:
        raise ValidationFailed(f"Engine attribute {PUPPET_NODE_CSR} is required to associate a Puppet node.")
    return csr


def puppet_disassociation(attributes: Iterable[Mapping[str, str]] | None) -> None:
    attribute_map(attributes, allowed=())


_CHEF_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
MAX_CHEF_CLIENT_NAME = 255  # Chef Infra Server's limit (and the store's column)


def check_chef_client_name(name: str) -> None:
    """Chef Infra Server accepts client names of 1 to 255 letters, digits, '_', '-' and '.'."""
    if len(name) > MAX_CHEF_CLIENT_NAME:
        raise ValidationFailed(
            f"NodeName is {len(name)} characters long; a Chef client name has at most {MAX_CHEF_CLIENT_NAME}."
        )
    if not _CHEF_CLIENT_NAME.fullmatch(name):
        raise ValidationFailed(
            f"NodeName '{name}' is not a valid Chef client name: use only letters, digits, '_', '-' and '.'."
        )
