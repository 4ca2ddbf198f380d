"""What every Chef engine checks of a node change before anything is stored or sent."""

from __future__ import annotations

from opscm.domain.associations import CHEF_DEFAULT_ORGANIZATION, AssociationAction, check_chef_client_name, chef_request
from opscm.domain.errors import ValidationFailed
from opscm.pki import PkiError, check_rsa_public_key
from opscm.service.ports import NodeChange


def vet_chef_change(
    action: AssociationAction,
    node_name: str,
    attributes,
    organizations: tuple[str, ...] = (CHEF_DEFAULT_ORGANIZATION,),
) -> NodeChange:
    """The organization (one the server answers to), the client name and the node's public key."""
    associate = action is AssociationAction.ASSOCIATE
    request = chef_request(attributes, need_key=associate, organizations=organizations)
    if not associate:
        return NodeChange(action, node_name, {"organization": request.organization})
    check_chef_client_name(node_name)
    public_key = checked_public_key(request.public_key_pem, "CHEF_NODE_PUBLIC_KEY")
    return NodeChange(action, node_name, {"organization": request.organization, "public_key": public_key})


def checked_public_key(pem: str, attribute: str) -> str:
    try:
        return check_rsa_public_key(pem)
    except PkiError as error:
        raise ValidationFailed(f"{attribute}: {error}") from None


def is_usable_key(pem: str) -> bool:
    try:
        check_rsa_public_key(pem)
    except PkiError:
        return False
    return True
