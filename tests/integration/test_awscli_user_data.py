"""AWS's published node user data, run unchanged with the newest aws CLI against `opscm serve`."""

import subprocess

import pytest

from tests.support.awscli import cli_home, node_env, shell

pytestmark = [pytest.mark.awscli, pytest.mark.openssl]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return cli_home(tmp_path_factory.mktemp("cli"))


def test_setup_installs_the_three_model_files(home):
    folder = home / ".aws" / "models" / "opsworks-cm" / "2016-11-01"
    assert sorted(p.name for p in folder.iterdir()) == ["paginators-1.json", "service-2.json", "waiters-2.json"]


def test_describe_servers_with_just_the_credentials_file(opscm, home, tmp_path):
    # No region anywhere but in the credentials file opscm wrote.
    result = shell("aws opsworks-cm describe-servers", node_env(home, opscm), tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"Servers"' in result.stdout


CHEF_USER_DATA = r"""
openssl genrsa -out client.pem 2048 2>/dev/null
CHEF_CLIENT_PUB_KEY="$(openssl rsa -in client.pem -pubout 2>/dev/null)"
node_association_status_token="$(aws opsworks-cm --output text associate-node --server-name "$SERVER" --node-name "$NODE" \
  --engine-attributes "Name=CHEF_ORGANIZATION,Value=default" "Name=CHEF_NODE_PUBLIC_KEY,Value='${CHEF_CLIENT_PUB_KEY}'")"
aws opsworks-cm wait node-associated --node-association-status-token "$node_association_status_token" --server-name "$SERVER"
"""


def test_chef_user_data(opscm, home, chef_server, tmp_path):
    env = {**node_env(home, opscm), "SERVER": chef_server, "NODE": "chef-node-1"}
    since = len(opscm.output)
    result = shell(CHEF_USER_DATA, env, tmp_path)
    assert result.returncode == 0, result.stderr
    # The waiter's first call succeeds (a second would come 15 s later): one call in all.
    assert opscm.operations_since(since)["DescribeNodeAssociationStatus"] == 1


PUPPET_USER_DATA = r"""
mkdir -p ssl/certs ssl/private_keys
aws opsworks-cm describe-servers --region "$REGION" --server-name "$SERVER" --query "Servers[0].EngineAttributes[?Name=='PUPPET_API_CA_CERT'].Value" --output text > ssl/certs/ca.pem
PUPPET_SERVER="$(aws opsworks-cm describe-servers --region "$REGION" --query "Servers[?ServerName=='$SERVER'].Endpoint" --output text)"
echo "server=$PUPPET_SERVER"
openssl req -new -newkey rsa:2048 -nodes -keyout "ssl/private_keys/$CERTNAME.pem" -subj "/CN=$CERTNAME" -out csr.pem 2>/dev/null
ASSOCIATE_TOKEN=$(aws opsworks-cm associate-node --region "$REGION" --server-name "$SERVER" --node-name "$CERTNAME" \
  --engine-attributes Name=PUPPET_NODE_CSR,Value="$(cat csr.pem)" --query "NodeAssociationStatusToken" --output text)
aws opsworks-cm wait node-associated --region "$REGION" --node-association-status-token "$ASSOCIATE_TOKEN" --server-name "$SERVER"
aws opsworks-cm describe-node-association-status --region "$REGION" --node-association-status-token "$ASSOCIATE_TOKEN" --server-name "$SERVER" \
  --query 'EngineAttributes[0].Value' --output text > "ssl/certs/$CERTNAME.pem"
"""


def test_puppet_user_data(opscm, home, puppet_server, tmp_path):
    env = {**node_env(home, opscm), "SERVER": puppet_server, "CERTNAME": "ud-node.example.com", "REGION": "us-east-1"}
    since = len(opscm.output)
    result = shell(PUPPET_USER_DATA, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "server=127.0.0.1" in result.stdout
    # The waiter's one call (its first succeeds), then the script's own to read the certificate.
    assert opscm.operations_since(since)["DescribeNodeAssociationStatus"] == 2
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", "ssl/certs/ca.pem", "ssl/certs/ud-node.example.com.pem"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    cert = (tmp_path / "ssl/certs/ud-node.example.com.pem").read_text()
    assert cert.startswith("-----BEGIN CERTIFICATE-----")


def test_cli_reports_api_errors(opscm, home, tmp_path):
    result = shell(
        "aws opsworks-cm associate-node --server-name nope --node-name n --engine-attributes Name=PUPPET_NODE_CSR,Value=x",
        node_env(home, opscm), tmp_path,
    )
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr
