"""`opscm credentials add|list|remove` on a running server's data dir; least privilege; throttling."""

import configparser
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from opscm.app.credentials import KEY_CACHE_SECONDS

from tests.support.accounts import add_account_key, add_key, credentials_command
from tests.support.requests import create_server_params, make_csr
from tests.support.server import start_server

NODE_ACTIONS = "opsworks-cm:AssociateNode,opsworks-cm:DescribeNodeAssociationStatus,opsworks-cm:DescribeServers"


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return response["Error"]["Code"], response["Error"]["Message"]


def _rows(data_dir):
    listing = credentials_command(data_dir, "list")
    assert listing.returncode == 0, listing.stderr
    return [line.split("\t") for line in listing.stdout.splitlines()]


def _account_of(opscm, key_id):
    return next(row[2] for row in _rows(opscm.data_dir) if row[0] == key_id)


def _associate(client, server, node):
    return client.associate_node(
        ServerName=server, NodeName=node, EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
    )


def test_node_key_associates_but_cannot_manage_servers(opscm, puppet_server):
    key = add_key(opscm.data_dir, "--name", "node-bootstrap", "--actions", NODE_ACTIONS)
    # stdout is exactly one shared-credentials profile section, ready for `>> ~/.aws/credentials`.
    assert key.profile == "node-bootstrap"
    assert key.stdout.startswith("[node-bootstrap]\n")
    assert key.access_key_id.startswith("AKIA") and len(key.access_key_id) == 20
    assert len(key.secret_access_key) == 40
    assert key.region == "us-east-1"
    assert key.secret_access_key not in key.stderr

    node = opscm.client(key=key.pair)
    assert [s["ServerName"] for s in node.describe_servers(ServerName=puppet_server)["Servers"]] == [puppet_server]
    token = _associate(node, puppet_server, "least.example.com")["NodeAssociationStatusToken"]
    status = node.describe_node_association_status(ServerName=puppet_server, NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"
    assert status["EngineAttributes"][0]["Name"] == "PUPPET_NODE_CERT"

    account = _account_of(opscm, key.access_key_id)
    code, message = _error(lambda: node.create_server(**create_server_params("not-allowed")))
    assert code == "AccessDeniedException"
    assert message == (
        f"User: arn:aws:iam::{account}:user/node-bootstrap is not authorized to perform: opsworks-cm:CreateServer"
    )
    assert _error(lambda: node.delete_server(ServerName=puppet_server))[0] == "AccessDeniedException"
    assert _error(lambda: node.disassociate_node(
        ServerName=puppet_server, NodeName="least.example.com", EngineAttributes=[]
    ))[0] == "AccessDeniedException"
    # The admin's key is untouched by the node key's limits.
    assert opscm.client().describe_servers(ServerName=puppet_server)["Servers"]


def test_profile_section_works_from_a_credentials_file(opscm, tmp_path, monkeypatch):
    key = add_key(opscm.data_dir, "--profile", "ops", "--actions", "opsworks-cm:DescribeServers")
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = x\naws_secret_access_key = y\n")
    with path.open("a") as appended:  # what `opscm credentials add ... >> ~/.aws/credentials` does
        appended.write(key.stdout)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    client = boto3.Session(profile_name="ops").client("opsworkscm", endpoint_url=opscm.url)
    assert client.describe_servers()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_describe_glob(opscm, puppet_server):
    key = add_key(opscm.data_dir, "--actions", "opsworks-cm:Describe*")
    reader = opscm.client(key=key.pair)
    assert reader.describe_servers()["Servers"]
    assert "Attributes" in reader.describe_account_attributes()
    assert reader.describe_events(ServerName=puppet_server)["ServerEvents"]
    assert _error(lambda: _associate(reader, puppet_server, "glob.example.com"))[0] == "AccessDeniedException"
    arn = reader.describe_servers(ServerName=puppet_server)["Servers"][0]["ServerArn"]
    assert _error(lambda: reader.list_tags_for_resource(ResourceArn=arn))[0] == "AccessDeniedException"


def test_server_names_limit_what_a_key_touches(opscm, client, puppet_server, chef_server):
    key = add_key(opscm.data_dir, "--name", "one-server", "--servers", puppet_server)
    limited = opscm.client(key=key.pair)
    account = _account_of(opscm, key.access_key_id)

    assert [s["ServerName"] for s in limited.describe_servers()["Servers"]] == [puppet_server]
    assert limited.describe_servers(ServerName=puppet_server)["Servers"]
    _associate(limited, puppet_server, "allowed.example.com")

    code, message = _error(lambda: limited.describe_servers(ServerName=chef_server))
    assert code == "AccessDeniedException"
    assert message == (
        f"User: arn:aws:iam::{account}:user/one-server is not authorized to perform: opsworks-cm:DescribeServers"
        f" on resource: arn:aws:opsworks-cm:us-east-1:{account}:server/{chef_server}/*"
    )
    assert _error(lambda: limited.delete_server(ServerName=chef_server))[0] == "AccessDeniedException"
    assert _error(lambda: limited.describe_events(ServerName=chef_server))[0] == "AccessDeniedException"
    assert _error(lambda: limited.create_server(**create_server_params("other-name")))[0] == "AccessDeniedException"

    # Resource ARNs: the server named in the ARN counts (backups by the server name in their id).
    arns = {s["ServerName"]: s["ServerArn"] for s in client.describe_servers()["Servers"]}
    assert "Tags" in limited.list_tags_for_resource(ResourceArn=arns[puppet_server])
    for call in (
        lambda: limited.list_tags_for_resource(ResourceArn=arns[chef_server]),
        lambda: limited.tag_resource(ResourceArn=arns[chef_server], Tags=[{"Key": "k", "Value": "v"}]),
        lambda: limited.untag_resource(ResourceArn=arns[chef_server], TagKeys=["k"]),
        lambda: limited.list_tags_for_resource(
            ResourceArn=f"arn:aws:opsworks-cm:us-east-1:{account}:backup/{chef_server}-20240101000000000"
        ),
        lambda: limited.list_tags_for_resource(ResourceArn=f"arn:aws:opsworks-cm:us-east-1:{account}:nonsense"),
        lambda: limited.describe_backups(BackupId=f"{chef_server}-20240101000000000"),
        lambda: limited.delete_backup(BackupId=f"{chef_server}-20240101000000000"),
    ):
        assert _error(call)[0] == "AccessDeniedException"
    # A backup of the allowed server is the handler's business (not found), not denied.
    with pytest.raises(ClientError) as caught:
        limited.describe_backups(BackupId=f"{puppet_server}-20240101000000000")
    assert caught.value.response["Error"]["Code"] != "AccessDeniedException"


def test_list_shows_keys_without_secrets(opscm):
    first = add_key(opscm.data_dir, "--name", "listed", "--actions", "opsworks-cm:Describe*", "--servers", "a-1,b-2")
    second = add_key(opscm.data_dir, "--name", "listed-too")
    listing = credentials_command(opscm.data_dir, "list")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split("\t")[0]: line.split("\t") for line in listing.stdout.splitlines()}
    admin_id, admin_secret = opscm.access_key
    admin_account = lines[admin_id][2]
    assert lines[first.access_key_id] == [first.access_key_id, "listed", admin_account, "opsworks-cm:Describe*", "a-1,b-2"]
    assert lines[second.access_key_id] == [second.access_key_id, "listed-too", admin_account, "opsworks-cm:*", "*"]
    for secret in (first.secret_access_key, second.secret_access_key, admin_secret):
        assert secret not in listing.stdout + listing.stderr


def test_remove_takes_effect_within_the_key_cache_time(opscm):
    key = add_key(opscm.data_dir, "--name", "short-lived")
    client = opscm.client(key=key.pair)
    assert client.describe_servers()["ResponseMetadata"]["HTTPStatusCode"] == 200
    removed = credentials_command(opscm.data_dir, "remove", key.access_key_id)
    assert removed.returncode == 0, removed.stderr
    # Keys are kept KEY_CACHE_SECONDS (2 s) in each process; poll well beyond that.
    deadline = time.monotonic() + KEY_CACHE_SECONDS + 10
    while True:
        try:
            client.describe_servers()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "UnrecognizedClientException"
            break
        assert time.monotonic() < deadline, "a removed key keeps working"
        time.sleep(0.2)
    assert key.access_key_id not in credentials_command(opscm.data_dir, "list").stdout
    again = credentials_command(opscm.data_dir, "remove", key.access_key_id)
    assert again.returncode == 1 and key.access_key_id in again.stderr


def test_another_account_is_a_tenant_of_its_own(opscm, puppet_server):
    other = opscm.client(key=add_account_key(opscm.data_dir))
    assert puppet_server not in [s["ServerName"] for s in other.describe_servers()["Servers"]]
    assert _error(lambda: other.describe_servers(ServerName=puppet_server))[0] == "ResourceNotFoundException"


def test_secrets_are_encrypted_at_rest_and_never_logged(opscm, puppet_server):
    key = add_key(opscm.data_dir, "--name", "secretive", "--actions", NODE_ACTIONS)
    node = opscm.client(key=key.pair)
    node.describe_servers()
    _error(lambda: node.delete_server(ServerName=puppet_server))
    secret = key.secret_access_key.encode()
    files = [p for p in opscm.data_dir.iterdir() if p.is_file() and p.name != "credentials"]
    assert any(p.name == "opscm.db" for p in files)
    for path in files:  # opscm.db, its WAL, master.key
        assert secret not in path.read_bytes(), path
    assert key.secret_access_key not in "".join(opscm.output)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--actions", "opsworks-cm:Nope"), "matches no operation"),
        (("--actions", "opsworks-cm:Describe*,ec2:RunInstances"), "is not an action of the form opsworks-cm:"),
        (("--actions", "AssociateNode"), "is not an action of the form opsworks-cm:"),
        (("--actions", "opsworks-cm:"), "is not an action of the form"),
        (("--actions", "opsworks-cm:AssociateNode,"), "empty item"),
        (("--servers", "bad name"), "is not a server name"),
        (("--account", "12345"), "is not an account id"),
        (("--name", "no spaces"), "is not a valid name"),
    ],
)
def test_add_refuses_bad_arguments(tmp_path, args, fragment):
    done = credentials_command(tmp_path / "data", "add", *args)
    assert done.returncode == 2
    assert fragment in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "data").exists()  # checked before anything is made


def test_fresh_data_dir_admin_account_and_last_key(tmp_path):
    data_dir = tmp_path / "data"
    key = add_key(data_dir, "--name", "first", "--actions", "opsworks-cm:Describe*")
    # The first command on an empty data dir makes the admin credential as `opscm serve` would.
    assert "admin credentials written to" in key.stderr
    admin = configparser.ConfigParser()
    admin.read(data_dir / "credentials")
    admin_id = admin["default"]["aws_access_key_id"]
    tenant = add_key(data_dir, "--account", "new", "--name", "tenant")
    chosen = add_key(data_dir, "--account", "210987654321", "--name", "chosen")
    accounts = {row[1]: row[2] for row in _rows(data_dir)}
    assert accounts["first"] == accounts["admin"] != accounts["tenant"]
    assert accounts["chosen"] == "210987654321"
    # With several accounts the default stays the admin's (the account of the oldest key).
    later = add_key(data_dir, "--name", "later")
    assert {row[1]: row[2] for row in _rows(data_dir)}["later"] == accounts["admin"]

    for removable in (key, tenant, chosen, later):
        assert credentials_command(data_dir, "remove", removable.access_key_id).returncode == 0
    refused = credentials_command(data_dir, "remove", admin_id)
    assert refused.returncode == 1
    assert "last key of the admin account" in refused.stderr and "--force" in refused.stderr
    assert credentials_command(data_dir, "remove", "--force", admin_id).returncode == 0
    assert _rows(data_dir) == []


def test_list_and_remove_need_a_data_dir(tmp_path):
    for command in (("list",), ("remove", "AKIAX")):
        done = credentials_command(tmp_path / "missing", *command)
        assert done.returncode == 1 and "no data dir" in done.stderr
    assert not (tmp_path / "missing").exists()


def test_no_throttling_by_default(opscm):
    client = opscm.client(retries=0)
    for _ in range(30):
        client.describe_servers()


@pytest.fixture(scope="module")
def throttled(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("throttled"), "--ca-key-bits", "2048", "--throttle")
    yield server
    server.stop()


def test_throttling_per_account(throttled):
    client = throttled.client(retries=0)
    codes = []
    while codes.count("ThrottlingException") < 3 and len(codes) < 200:
        try:
            client.describe_servers()
            codes.append("ok")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
            assert error.response["Error"]["Message"] == "Rate exceeded"
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert codes[:10] == ["ok"] * 10  # the burst
    assert "ThrottlingException" in codes
    assert set(codes) == {"ok", "ThrottlingException"}
    # Another account has a bucket of its own.
    other = throttled.client(key=add_account_key(throttled.data_dir), retries=0)
    for _ in range(5):
        other.describe_servers()


@pytest.fixture(scope="module")
def quick_refill(tmp_path_factory):
    # boto3's standard mode retries a throttled call after U(0, 1) s, then U(0, 2) s more. At
    # AWS's 5 tokens/s both waits fall short of the next token about once in 100 runs (a flaky
    # test); at 20/s a token is 50 ms away, and both fall short about once in 1,600.
    server = start_server(tmp_path_factory.mktemp("quick-refill"), "--ca-key-bits", "2048", "--throttle-rate", "20")
    yield server
    server.stop()


def test_boto3_default_retries_get_through(quick_refill):
    key_id, secret = quick_refill.access_key
    throttled_before = "".join(quick_refill.output).count("ThrottlingException")
    client = boto3.client(  # boto3's default retry configuration
        "opsworkscm",
        region_name="us-east-1",
        endpoint_url=quick_refill.url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    retried = 0
    # Until the first throttled-and-retried request, no further: boto3's backoff is random, and
    # a throttled request has only two more tries in its default (standard) mode.
    for _ in range(200):
        metadata = client.describe_servers()["ResponseMetadata"]
        assert metadata["HTTPStatusCode"] == 200
        retried += metadata["RetryAttempts"]
        if retried:
            break
    assert retried > 0
    deadline = time.monotonic() + 5
    while "".join(quick_refill.output).count("ThrottlingException") == throttled_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "".join(quick_refill.output).count("ThrottlingException") > throttled_before
