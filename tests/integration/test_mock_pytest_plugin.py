"""opscm's pytest plugin: fixtures, marker, ini options and clock override, run in inner pytest sessions."""

import tomllib
from pathlib import Path

from tests.support.plugin_runs import PLUGIN, run_with_plugin

SERVER = """
ROLE = "arn:aws:iam::123456789012:role/aws-opsworks-cm-service-role"
PROFILE = "arn:aws:iam::123456789012:instance-profile/aws-opsworks-cm-ec2-role"

def create(client, name="s1"):
    return client.create_server(
        ServerName=name, Engine="Puppet", InstanceProfileArn=PROFILE, InstanceType="m5.large", ServiceRoleArn=ROLE
    )["Server"]
"""


def test_the_entry_point_names_the_plugin():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"opscm": PLUGIN}


def test_each_test_gets_an_active_isolated_mock_and_a_ready_client(pytester):
    pytester.makepyfile(
        SERVER
        + """
import boto3

def test_client_and_mock(opsworkscm_client, opsworkscm_mock):
    assert opsworkscm_client.meta.region_name == "us-east-1"
    create(opsworkscm_client)
    opsworkscm_mock.wait_for_jobs()
    assert opsworkscm_client.describe_servers()["Servers"][0]["Status"] == "HEALTHY"
    # A client the code under test makes itself is answered by the same mock.
    own = boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    assert [s["ServerName"] for s in own.describe_servers()["Servers"]] == ["s1"]

def test_next_test_starts_empty(opsworkscm_client):
    assert opsworkscm_client.describe_servers()["Servers"] == []
"""
    )
    run_with_plugin(pytester).assert_outcomes(passed=2)


def test_marker_options_the_closest_winning_over_ini_options(pytester):
    pytester.makeini("[pytest]\nopsworkscm_ca_key_bits = 3072\nopsworkscm_run_jobs = false\n")
    pytester.makepyfile(
        SERVER
        + """
import pytest

pytestmark = pytest.mark.opsworkscm(account_id="210987654321", ca_key_bits=2048)

def test_ini_and_module_marker(opsworkscm_client, opsworkscm_mock):
    assert opsworkscm_mock.app.settings.ca_key_bits == 2048
    server = create(opsworkscm_client)
    assert ":210987654321:" in server["ServerArn"]
    assert opsworkscm_client.describe_servers()["Servers"][0]["Status"] == "CREATING"  # ini: no jobs

@pytest.mark.opsworkscm(ca_key_bits=4096, server_limit=1)
def test_test_marker_first(opsworkscm_mock):
    assert opsworkscm_mock.app.settings.ca_key_bits == 4096
    assert opsworkscm_mock.app.settings.server_limit == 1
    assert opsworkscm_mock.app.settings.mock_account_id == "210987654321"

@pytest.mark.opsworkscm("positional")
def test_positional_options_are_refused(opsworkscm_mock):
    pass
"""
    )
    result = run_with_plugin(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*TypeError: @pytest.mark.opsworkscm takes keyword options only*"])


def test_ini_defaults_and_a_clock_override(pytester):
    pytester.makeconftest(
        """
from datetime import datetime, timezone
import pytest

class Fixed:
    def now(self):
        return datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

@pytest.fixture
def opsworkscm_clock():
    return Fixed()
"""
    )
    pytester.makepyfile(
        SERVER
        + """
def test_clock(opsworkscm_client, opsworkscm_mock):
    assert opsworkscm_mock.app.settings.ca_key_bits == 2048
    assert create(opsworkscm_client)["CreatedAt"].isoformat() == "2030-01-02T03:04:05+00:00"
"""
    )
    run_with_plugin(pytester).assert_outcomes(passed=1)


def test_the_marker_is_registered(pytester):
    result = run_with_plugin(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.opsworkscm(**options):*"])
