"""Every request's SigV4 signature is checked; errors are JSON with __type and message."""

import datetime
import json

import botocore.auth
import httpx
import pytest
from botocore.exceptions import ClientError


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


def test_admin_credentials_work(client):
    response = client.describe_servers()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(response["Servers"], list)


def test_unknown_access_key(opscm):
    response = _error(opscm.client(key=("AKIAUNKNOWNUNKNOWN00", "x" * 40)).describe_servers)
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_wrong_secret(opscm):
    key_id, _ = opscm.access_key
    response = _error(opscm.client(key=(key_id, "wrong" * 8)).describe_servers)
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in response["Error"]["Message"]


def test_missing_signature(opscm):
    response = httpx.post(
        opscm.url,
        content=b"{}",
        headers={"X-Amz-Target": "OpsWorksCM_V2016_11_01.DescribeServers", "Content-Type": "application/x-amz-json-1.1"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["__type"] == "MissingAuthenticationTokenException"
    assert body["message"]


@pytest.mark.parametrize("minutes", [-20, 20])
def test_skewed_timestamp(opscm, monkeypatch, minutes):
    skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed)
    response = _error(opscm.client().describe_servers)
    assert response["Error"]["Code"] == "InvalidSignatureException"
    expected = "Signature expired" if minutes < 0 else "Signature not yet current"
    assert expected in response["Error"]["Message"]


def test_region_comes_from_the_credential_scope(opscm):
    east, west = opscm.client("us-east-1"), opscm.client("eu-west-1")
    params = dict(
        Engine="ChefAutomate",
        InstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p",
        InstanceType="m5.large",
        ServiceRoleArn="arn:aws:iam::123456789012:role/r",
    )
    east.create_server(ServerName="regional", **params)
    try:
        assert _error(lambda: west.describe_servers(ServerName="regional"))["Error"]["Code"] == (
            "ResourceNotFoundException"
        )
        west.create_server(ServerName="regional", **params)  # the same name is free in another region
        arn = west.describe_servers(ServerName="regional")["Servers"][0]["ServerArn"]
        assert arn.startswith("arn:aws:opsworks-cm:eu-west-1:")
        west.delete_server(ServerName="regional")
    finally:
        east.delete_server(ServerName="regional")


def test_unknown_operation_and_bad_body(opscm):
    # Signed raw requests: a valid signature, then a bad target or a body that is not a JSON object.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def send(target, body):
        request = AWSRequest(
            method="POST",
            url=opscm.url + "/",
            data=body,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        SigV4Auth(Credentials(*opscm.access_key), "opsworks-cm", "us-east-1").add_auth(request)
        prepared = request.prepare()
        return httpx.post(prepared.url, content=prepared.body, headers=dict(prepared.headers))

    for target in ("OpsWorksCM_V2016_11_01.Nope", "Nope.DescribeServers", "garbage", ""):
        response = send(target, b"{}")
        assert response.status_code == 400, target
        assert response.json()["__type"] == "UnknownOperationException", target
    for body in (b"[]", b"not json", b'"x"', b"\xff\xfe", b"{"):
        response = send("OpsWorksCM_V2016_11_01.DescribeServers", body)
        assert response.status_code == 400, body
        assert response.json()["__type"] == "SerializationException", body
    response = send("OpsWorksCM_V2016_11_01.DescribeServers", json.dumps({"MaxResults": "x"}).encode())
    assert response.json()["__type"] == "ValidationException"


def test_unimplemented_operation_answers_clearly(monkeypatch):
    # Every operation of the model has a handler by now: take one away in-process.
    from opscm.mock import OpsWorksCMMock
    from tests.support.mock_client import mock_client

    with OpsWorksCMMock(run_jobs=False) as mock:
        pipeline = mock.app.pipeline
        monkeypatch.setattr(pipeline, "_operations", {k: v for k, v in pipeline._operations.items() if k != "CreateBackup"})
        response = _error(lambda: mock_client(mock).create_backup(ServerName="x"))
    assert response["Error"]["Code"] == "NotImplementedException"
    assert "CreateBackup" in response["Error"]["Message"]
