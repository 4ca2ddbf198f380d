"""Signatures and regions through the whole application, over ASGI, signed by botocore."""

import pytest
from botocore.auth import SigV4Auth

from opscm.app.composition import Application, Settings
from opscm.domain.regions import OPSWORKS_CM_REGIONS
from opscm.mock import OpsWorksCMMock
from tests.support.mock_client import mock_client
from tests.support.signed_app import signed_app

MISMATCH = "The request signature we calculated does not match the signature you provided."
REFUSED = "Credential should be scoped to a valid region, not '{}'. "  # AWS's words, trailing space too


@pytest.fixture
def served(tmp_path):
    with signed_app(tmp_path) as app:
        yield app


def _error(response):
    assert response.status_code == 400, response.text
    return response.json()["__type"], response.json()["message"]


# -- repeated headers (RFC 9110: one value, the values joined with ',' in arrival order) --------------


def test_a_repeated_header_signed_by_botocore_verifies(served):
    request = served.signed("DescribeServers", headers=[("X-Opscm-Test", "first"), ("X-Opscm-Test", "second")])
    assert "x-opscm-test" in request.headers["Authorization"]
    response = served.send(request)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("values", "verifies"),
    [
        (["first", "second"], True),
        (["first,second"], True),  # the same value, joined by the sender (RFC 9110)
        (["second", "first"], False),
        (["first"], False),
        (["second"], False),  # what a dict of headers kept
        (["first", "second", "third"], False),
    ],
)
def test_a_tampered_repeated_header_does_not(served, values, verifies):
    request = served.signed("DescribeServers", headers=[("X-Opscm-Test", "first"), ("X-Opscm-Test", "second")])
    others = [(name, value) for name, value in request.headers.items() if name.lower() != "x-opscm-test"]
    response = served.send(request, others + [("X-Opscm-Test", value) for value in values])
    if verifies:
        assert response.status_code == 200, response.text
    else:
        code, message = _error(response)
        assert code == "InvalidSignatureException" and message.startswith(MISMATCH)


# -- what must be signed ------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "shown"), [("X-Amz-Target", "X-Amz-Target"), ("Content-Type", "Content-Type")])
def test_target_and_content_type_added_after_signing_are_refused(served, header, shown):
    request = served.signed("DescribeServers")
    value = request.headers[header]
    del request.headers[header]  # signed again without it
    del request.headers["Authorization"], request.headers["X-Amz-Date"]
    SigV4Auth(served.credentials, "opsworks-cm", "us-east-1").add_auth(request)
    request.headers[header] = value  # then added: it could be swapped in transit
    code, message = _error(served.send(request))
    assert code == "InvalidSignatureException"
    assert message == f"'{shown}' must be a 'SignedHeader' in the AWS Authorization."


# -- regions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", OPSWORKS_CM_REGIONS)
def test_the_regions_of_opsworks_cm_are_served_by_default(served, region):
    assert served.send(served.signed("DescribeServers", region=region)).status_code == 200


@pytest.mark.parametrize("region", ["eu-north-1", "us-east-1a", "local"])
def test_other_regions_are_refused_as_aws_refuses_them(served, region):
    code, message = _error(served.send(served.signed("DescribeServers", region=region)))
    assert (code, message) == ("InvalidSignatureException", REFUSED.format(region))


def test_the_served_regions_are_configurable(tmp_path):
    with signed_app(tmp_path, regions=("local-1", "eu-west-1")) as served:
        assert served.send(served.signed("DescribeServers", region="local-1")).status_code == 200
        code, message = _error(served.send(served.signed("DescribeServers", region="us-east-1")))
        assert (code, message) == ("InvalidSignatureException", REFUSED.format("us-east-1"))


def test_the_admin_profile_names_the_first_served_region(tmp_path):
    app = Application(Settings(data_dir=tmp_path, regions=("local-1", "eu-west-1")))
    try:
        assert "region = local-1\n" in app.ensure_admin_credentials().read_text()
    finally:
        app.close()


def test_the_mock_serves_the_same_regions():
    with OpsWorksCMMock(run_jobs=False) as mock:
        assert mock_client(mock, "eu-west-1").describe_servers()["Servers"] == []
        with pytest.raises(mock_client(mock).exceptions.ClientError) as raised:
            mock_client(mock, "eu-north-1").describe_servers()
        assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    with OpsWorksCMMock(run_jobs=False, regions=["local-1"]) as mock:
        assert mock_client(mock, "local-1").describe_servers()["Servers"] == []
