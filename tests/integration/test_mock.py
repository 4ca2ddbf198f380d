"""The in-process mock answers botocore with the same pipeline, without a socket or global patching."""

import boto3
import pytest
from botocore.exceptions import ClientError

from opscm.mock import OpsWorksCMMock
from tests.support.requests import create_server_params, make_csr


@pytest.fixture
def mock():
    with OpsWorksCMMock() as mock:
        yield mock


def _client(**kwargs):
    return boto3.client(
        "opsworkscm",
        region_name="eu-central-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **kwargs,
    )


def test_mock_serves_association_end_to_end(mock):
    client = _client()
    mock.attach(client)
    client.create_server(**create_server_params("mocked", "Puppet"))
    mock.wait_for_jobs()
    server = client.describe_servers(ServerName="mocked")["Servers"][0]
    assert server["Status"] == "HEALTHY"
    assert server["ServerArn"].startswith("arn:aws:opsworks-cm:eu-central-1:123456789012:server/mocked/")
    token = client.associate_node(
        ServerName="mocked", NodeName="web1", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("web1")}]
    )["NodeAssociationStatusToken"]
    client.get_waiter("node_associated").wait(ServerName="mocked", NodeAssociationStatusToken=token)
    status = client.describe_node_association_status(ServerName="mocked", NodeAssociationStatusToken=token)
    assert status["EngineAttributes"][0]["Value"].startswith("-----BEGIN CERTIFICATE-----")


def test_mock_only_touches_the_clients_it_is_given(mock):
    mine, other = _client(), _client(endpoint_url="http://127.0.0.1:9")
    mock.attach(mine)
    assert mine.describe_servers()["Servers"] == []
    with pytest.raises(Exception) as caught:
        other.describe_servers()
    assert not isinstance(caught.value, ClientError), "an unattached client must not reach the mock"


def test_association_needs_a_healthy_server():
    # Jobs are not run: the server stays CREATING, exactly what a caller sees before it is ready.
    with OpsWorksCMMock(run_jobs=False) as mock:
        client = _client()
        mock.attach(client)
        client.create_server(**create_server_params("early", "Puppet"))
        with pytest.raises(ClientError) as caught:
            client.associate_node(
                ServerName="early", NodeName="n", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("n")}]
            )
        assert caught.value.response["Error"]["Code"] == "InvalidStateException"
        assert "CREATING" in caught.value.response["Error"]["Message"]
        client.delete_server(ServerName="early")
        with pytest.raises(ClientError) as caught:
            client.delete_server(ServerName="early")
        assert caught.value.response["Error"]["Code"] == "InvalidStateException"
        assert client.describe_servers(ServerName="early")["Servers"][0]["Status"] == "DELETING"
