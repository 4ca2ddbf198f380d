"""What every Puppet engine checks of a node change before anything is signed or sent."""

from __future__ import annotations

from opscm.domain.associations import AssociationAction, puppet_csr, puppet_disassociation
from opscm.domain.errors import ValidationFailed
from opscm.pki import CsrPolicy, PkiError, check_csr
from opscm.service.ports import NodeChange


def vet_puppet_change(
    action: AssociationAction, node_name: str, attributes, policy: CsrPolicy = CsrPolicy()
) -> NodeChange:
    """A disassociation takes no attribute; an association's CSR passes Puppet's CA rules."""
    if action is AssociationAction.DISASSOCIATE:
        puppet_disassociation(attributes)
        return NodeChange(action, node_name, {})
    pem = puppet_csr(attributes)
    try:
        csr = check_csr(pem, node_name, policy)
    except PkiError as error:
        raise ValidationFailed(str(error)) from None
    return NodeChange(action, node_name, {"csr": pem}, vetted=csr)
