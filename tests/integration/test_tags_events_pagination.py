"""Tags, events, account attributes and pagination, through boto3 against `opscm serve`."""

import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.requests import create_server_params, make_csr
from tests.support.server import wait_for_status, wait_until_gone


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


@pytest.fixture
def tagged(client):
    name = f"tagged-{uuid.uuid4().hex[:6]}"
    tags = [{"Key": "team", "Value": "ops"}, {"Key": "env", "Value": "prod"}]
    arn = client.create_server(**create_server_params(name, "ChefAutomate", Tags=tags))["Server"]["ServerArn"]
    yield name, arn
    client.delete_server(ServerName=name)


def test_tags_on_create_tag_untag_list(client, tagged):
    _, arn = tagged
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "ops"},
        {"Key": "env", "Value": "prod"},
    ]
    client.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "staging"}, {"Key": "owner", "Value": "ana@example.com"}])
    client.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "env", "Value": "staging"},
        {"Key": "owner", "Value": "ana@example.com"},
    ]


def test_tag_rules(client, tagged):
    _, arn = tagged
    code, message = _error(lambda: client.tag_resource(ResourceArn=arn, Tags=[{"Key": "aws:x", "Value": "1"}]))
    assert code == "ValidationException" and "aws:" in message
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(49)]
    code, message = _error(lambda: client.tag_resource(ResourceArn=arn, Tags=many))
    assert code == "ValidationException" and "50" in message
    assert len(client.list_tags_for_resource(ResourceArn=arn)["Tags"]) == 2, "a refused request changes nothing"
    code, message = _error(lambda: client.tag_resource(ResourceArn=arn, Tags=[{"Key": "bad*key", "Value": "v"}]))
    assert code == "ValidationException" and "tags" in message
    other_region = arn.replace(":us-east-1:", ":eu-west-1:")
    assert _error(lambda: client.list_tags_for_resource(ResourceArn=other_region))[0] == "ResourceNotFoundException"
    missing = arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    assert _error(lambda: client.untag_resource(ResourceArn=missing, TagKeys=["env"]))[0] == "ResourceNotFoundException"


def test_list_tags_paginates(client, tagged):
    _, arn = tagged
    client.tag_resource(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": str(i)} for i in range(7)])
    pages = list(client.get_paginator("list_tags_for_resource").paginate(ResourceArn=arn, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 5
    keys = [t["Key"] for page in pages for t in page["Tags"]]
    assert keys == ["team", "env"] + [f"k{i}" for i in range(7)]
    code, _ = _error(lambda: client.list_tags_for_resource(ResourceArn=arn, MaxResults=2, NextToken="forged.token"))
    assert code == "InvalidNextTokenException"


def test_describe_servers_paginates_and_refuses_foreign_tokens(opscm):
    client = opscm.client("sa-east-1")
    names = [f"page-{i}" for i in range(5)]
    for name in names:
        client.create_server(**create_server_params(name, "ChefAutomate"))
    try:
        pages = list(client.get_paginator("describe_servers").paginate(PaginationConfig={"PageSize": 2}))
        assert [len(p["Servers"]) for p in pages] == [2, 2, 1]
        assert sorted(s["ServerName"] for p in pages for s in p["Servers"]) == names
        token = client.describe_servers(MaxResults=2)["NextToken"]
        # A token is bound to its listing: another region's or operation's listing refuses it.
        assert _error(lambda: opscm.client("us-east-1").describe_servers(NextToken=token))[0] == "InvalidNextTokenException"
        assert _error(lambda: client.describe_events(ServerName="page-0", NextToken=token))[0] == (
            "InvalidNextTokenException"
        )
        tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        assert _error(lambda: client.describe_servers(NextToken=tampered))[0] == "InvalidNextTokenException"
    finally:
        for name in names:
            client.delete_server(ServerName=name)


def test_events_newest_first_with_failures_and_paginated(client):
    name = f"events-{uuid.uuid4().hex[:6]}"
    client.create_server(**create_server_params(name, "Puppet"))
    wait_for_status(client, name)
    try:
        with pytest.raises(ClientError):
            client.associate_node(
                ServerName=name, NodeName="Upper", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("Upper")}]
            )
        events = client.describe_events(ServerName=name)["ServerEvents"]
        messages = [e["Message"] for e in events]
        assert "AssociateNode for node Upper failed" in messages[0] and "lower case" in messages[0]
        assert "HEALTHY" in messages[1] and "creation started" in messages[2]
        times = [e["CreatedAt"] for e in events]
        assert times == sorted(times, reverse=True)
        assert all(e["ServerName"] == name for e in events)
        pages = list(client.get_paginator("describe_events").paginate(ServerName=name, PaginationConfig={"PageSize": 1}))
        assert [p["ServerEvents"][0]["Message"] for p in pages] == messages
    finally:
        client.delete_server(ServerName=name)
    wait_until_gone(client, name)  # deletion is a job: the events go with the server
    assert _error(lambda: client.describe_events(ServerName=name))[0] == "ResourceNotFoundException"


def test_an_event_that_quotes_a_long_node_name_stays_within_the_models_limit(client):
    name = f"events-{uuid.uuid4().hex[:6]}"
    client.create_server(**create_server_params(name, "Puppet"))
    wait_for_status(client, name)
    try:
        node = "n" * 10_000  # the longest NodeName; its refusal's message quotes it twice
        assert _error(lambda: client.disassociate_node(ServerName=name, NodeName=node, EngineAttributes=[]))[0] == (
            "ResourceNotFoundException"
        )
        message = client.describe_events(ServerName=name)["ServerEvents"][0]["Message"]
        assert message.startswith("DisassociateNode for node nnn") and message.endswith("n\u2026")
        assert len(message) == 10_000
    finally:
        client.delete_server(ServerName=name)


def test_account_attributes(opscm):
    client = opscm.client("af-south-1")
    client.create_server(**create_server_params("counted", "ChefAutomate"))
    try:
        attributes = {a["Name"]: a for a in client.describe_account_attributes()["Attributes"]}
        assert attributes["ServerLimit"]["Maximum"] == 10 and attributes["ServerLimit"]["Used"] == 1
        assert attributes["ManualBackupLimit"]["Maximum"] == 50 and attributes["ManualBackupLimit"]["Used"] == 0
    finally:
        client.delete_server(ServerName="counted")


def test_maintenance_and_updates_on_the_served_instance(client):
    name = f"maint-{uuid.uuid4().hex[:6]}"
    client.create_server(**create_server_params(name, "ChefAutomate"))
    wait_for_status(client, name)
    try:
        assert client.start_maintenance(ServerName=name)["Server"]["Status"] == "UNDER_MAINTENANCE"
        server = wait_for_status(client, name)
        assert server["MaintenanceStatus"] == "SUCCESS"
        server = client.update_server(ServerName=name, PreferredMaintenanceWindow="Sun:23:30", BackupRetentionCount=3)["Server"]
        assert (server["PreferredMaintenanceWindow"], server["BackupRetentionCount"]) == ("Sun:23:30", 3)
        reset = client.update_server_engine_attributes(ServerName=name, AttributeName="CHEF_PIVOTAL_KEY")["Server"]
        new_key = {a["Name"]: a["Value"] for a in reset["EngineAttributes"]}["CHEF_PIVOTAL_KEY"]
        assert "PRIVATE KEY" in new_key and reset["Status"] == "HEALTHY"
        messages = [e["Message"] for e in client.describe_events(ServerName=name)["ServerEvents"]]
        assert messages[0] == "Engine attribute CHEF_PIVOTAL_KEY updated."
        assert any("Maintenance completed" in m for m in messages)
    finally:
        client.delete_server(ServerName=name)
