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

# The operations of a boot storm, each with its test (no I/O): whether a request needs nothing
# but the store (no network call but the database's, no wait but for its locks). On SQLite, or a
# PostgreSQL near enough (store.lean_connections) while few other requests are in progress, such
# a request is answered on the event loop (app.pipeline.Pipeline.light_on_loop); otherwise,
# since its round trips would hold the loop, in threads of its own, as many as the store's
# connections. Any other request runs in the request threads (it may call a network).
LIGHT = {
    # One read of a token.
    "DescribeNodeAssociationStatus": lambda deps, caller, params: True,
    "AssociateNode": nodes.change_is_light,
    "DisassociateNode": nodes.change_is_light,
}

# Handlers written as steps (see steps.py): on the event loop, what blocks in them (a
# signature) runs in a thread while the loop goes on.
STEPS = {
    "AssociateNode": nodes.associate_node_steps,
    "DisassociateNode": nodes.disassociate_node_steps,
}
