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

# Operations a request may be answered with on the event loop, each with its test (no I/O):
# a boot storm is these requests. Any other request runs in a thread (it calls a network, or
# waits for the write lock).
LIGHT = {
    # One read of a token: SQLite readers never wait; a PostgreSQL round trip would hold the loop.
    "DescribeNodeAssociationStatus": lambda deps, caller, params: deps.uow.embedded,
    "AssociateNode": nodes.change_is_light,
    "DisassociateNode": nodes.change_is_light,
}

# Handlers written as steps (see steps.py): on the event loop, what blocks in them (a
# signature) runs in a thread while the loop goes on.
STEPS = {
    "AssociateNode": nodes.associate_node_steps,
    "DisassociateNode": nodes.disassociate_node_steps,
}
