"""Operation name -> handler. Operations missing here answer NotImplementedException."""

from . import account, backups, events, exports, maintenance, nodes, restores, servers, tags, updates

OPERATIONS = {
    "AssociateNode": nodes.associate_node,
    "CreateServer": servers.create_server,
    "DeleteServer": servers.delete_server,
    "DescribeNodeAssociationStatus": nodes.describe_node_association_status,
    "DescribeServers": servers.describe_servers,
    "DisassociateNode": nodes.disassociate_node,
    "DescribeAccountAttributes": account.describe_account_attributes,
    "DescribeEvents": events.describe_events,
    "ExportServerEngineAttribute": exports.export_server_engine_attribute,
    "ListTagsForResource": tags.list_tags_for_resource,
    "StartMaintenance": maintenance.start_maintenance_operation,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "UpdateServer": updates.update_server,
    "UpdateServerEngineAttributes": updates.update_server_engine_attributes,
    "CreateBackup": backups.create_backup,
    "DeleteBackup": backups.delete_backup,
    "DescribeBackups": backups.describe_backups,
    "RestoreServer": restores.restore_server,
}
