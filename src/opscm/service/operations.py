"""Operation name -> handler. Operations missing here answer NotImplementedException."""

from . import nodes, servers

OPERATIONS = {
    "AssociateNode": nodes.associate_node,
    "CreateServer": servers.create_server,
    "DeleteServer": servers.delete_server,
    "DescribeNodeAssociationStatus": nodes.describe_node_association_status,
    "DescribeServers": servers.describe_servers,
    "DisassociateNode": nodes.disassociate_node,
}
