"""The in-process mock answers botocore with the same pipeline, without a socket, for opsworkscm only."""

import asyncio
import unittest
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.session
import pytest
import sqlalchemy
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError, EndpointConnectionError

from opscm.mock import OpsWorksCMMock, active_mock, mock_opsworkscm
from opscm.mock_routing import innermost
from tests.support.http_files import DocumentServer
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key

CLIENT_OPTIONS = {"region_name": "eu-central-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def mock():
    with OpsWorksCMMock() as mock:
        yield mock


def _client(**kwargs):
    return boto3.client("opsworkscm", **CLIENT_OPTIONS, **kwargs)


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


def test_attach_takes_a_botocore_session_and_reaches_its_new_clients():
    with OpsWorksCMMock(run_jobs=False) as mock:
        session = botocore.session.get_session()
        mock.attach(session)
        client = session.create_client("opsworkscm", **CLIENT_OPTIONS)
        client.create_server(**create_server_params("via-session", "Puppet"))
        assert [s["ServerName"] for s in client.describe_servers()["Servers"]] == ["via-session"]


# mock_opsworkscm: every opsworkscm client created inside, and nothing else


def _server_names(client) -> list[str]:
    return [server["ServerName"] for server in client.describe_servers()["Servers"]]


def test_every_way_of_making_a_client_inside_is_answered_by_one_mock():
    with mock_opsworkscm(run_jobs=False):
        boto3.client("opsworkscm", **CLIENT_OPTIONS).create_server(**create_server_params("shared", "Puppet"))
        clients = [
            boto3.client("opsworkscm", **CLIENT_OPTIONS),
            boto3.Session(**CLIENT_OPTIONS).client("opsworkscm"),
            botocore.session.get_session().create_client("opsworkscm", **CLIENT_OPTIONS),
            botocore.session.Session(include_builtin_handlers=False).create_client("opsworkscm", **CLIENT_OPTIONS),
        ]
        assert [_server_names(client) for client in clients] == [["shared"]] * 4


def test_the_default_session_made_before_is_hooked_while_active_only(monkeypatch):
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", boto3.Session(**CLIENT_OPTIONS))
    with mock_opsworkscm(run_jobs=False):
        assert _server_names(boto3.client("opsworkscm")) == []
    assert _opscm_hooks(boto3.DEFAULT_SESSION.client("opsworkscm"), "before-send.opsworkscm.DescribeServers") == []


def _opscm_hooks(client, event: str) -> list:
    """The opscm handlers this client's emitter calls for the event (``emit`` returns each handler)."""
    request = AWSPreparedRequest("POST", "http://opscm.invalid/", {}, b"{}", False)
    return [handler for handler, _ in client.meta.events.emit(event, request=request) if _is_opscm(handler)]


def _is_opscm(handler) -> bool:
    return getattr(handler, "__module__", "").startswith("opscm.")


S3_BUCKETS = b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Buckets><Bucket><Name>real-bucket</Name></Bucket></Buckets></ListAllMyBucketsResult>'
EC2_REGIONS = b'<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><regionInfo><item><regionName>real-region</regionName></item></regionInfo></DescribeRegionsResponse>'


def test_clients_of_other_services_are_untouched():
    with DocumentServer() as endpoint, mock_opsworkscm(run_jobs=False):
        endpoint.serve("/", S3_BUCKETS)
        s3 = boto3.client("s3", endpoint_url=endpoint.url(""), **CLIENT_OPTIONS)
        ec2 = boto3.client("ec2", endpoint_url=endpoint.url(""), **CLIENT_OPTIONS)
        opsworkscm = boto3.client("opsworkscm", **CLIENT_OPTIONS)
        # Their requests go over HTTP to their endpoint and its answers come back.
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["real-bucket"]
        endpoint.serve("/", EC2_REGIONS)
        assert [r["RegionName"] for r in ec2.describe_regions()["Regions"]] == ["real-region"]
        assert len(endpoint.requests) == 2
        # No opscm handler is even called for them, while the opsworkscm client has its one.
        assert _opscm_hooks(s3, "before-send.s3.ListBuckets") == []
        assert _opscm_hooks(ec2, "before-send.ec2.DescribeRegions") == []
        assert len(_opscm_hooks(opsworkscm, "before-send.opsworkscm.DescribeServers")) == 1


def test_after_the_block_nothing_is_hooked_and_its_data_is_gone():
    with mock_opsworkscm(run_jobs=False) as mock:
        made_inside = boto3.client("opsworkscm", endpoint_url="http://127.0.0.1:9", **CLIENT_OPTIONS)
        assert _server_names(made_inside) == []
        data_dir = mock.app.settings.data_dir
        assert data_dir.is_dir()
    assert not data_dir.exists()
    made_after = botocore.session.get_session().create_client("opsworkscm", **CLIENT_OPTIONS)
    assert _opscm_hooks(made_after, "before-send.opsworkscm.DescribeServers") == []
    # A client made inside keeps an inert hook: its request now goes to its endpoint.
    with pytest.raises(EndpointConnectionError):
        made_inside.describe_servers()


def test_its_database_is_in_memory_and_goes_with_it():
    with mock_opsworkscm(run_jobs=False) as mock:
        _client().create_server(**create_server_params("kept", "ChefAutomate"))
        url = mock.app.database.url
        assert not (mock.app.settings.data_dir / "opscm.db").exists()
    # A new engine on the same name finds an empty database: the last connection took it.
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar() == 0
    engine.dispose()


def test_a_change_waits_for_a_read_in_progress_and_then_succeeds(mock):
    # No WAL in memory: a commit cannot happen while another connection reads; it must wait.
    client = _client()
    mock.attach(client)
    client.create_server(**create_server_params("busy", "ChefAutomate"))
    mock.wait_for_jobs()
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
    reader = mock.app.database.raw_connection()
    with ThreadPoolExecutor(1) as pool:
        reader.driver_connection.execute("BEGIN DEFERRED")
        assert reader.driver_connection.execute("SELECT count(*) FROM servers").fetchone() == (1,)  # the read lock
        change = pool.submit(client.associate_node, ServerName="busy", NodeName="waits", EngineAttributes=attributes)
        with pytest.raises(TimeoutError):
            change.result(timeout=0.5)  # it cannot have committed: the read is still open
        reader.driver_connection.execute("COMMIT")
        token = change.result(timeout=30)["NodeAssociationStatusToken"]
    reader.close()
    status = client.describe_node_association_status(ServerName="busy", NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"


def test_nested_blocks_are_isolated_and_the_innermost_answers():
    with mock_opsworkscm(run_jobs=False):
        outer_client = boto3.client("opsworkscm", **CLIENT_OPTIONS)
        outer_client.create_server(**create_server_params("outer", "Puppet"))
        with mock_opsworkscm(run_jobs=False):
            inner_client = boto3.client("opsworkscm", **CLIENT_OPTIONS)
            assert _server_names(inner_client) == []
            assert _server_names(outer_client) == []  # the innermost active mock answers every client
        assert _server_names(inner_client) == ["outer"]
        assert _server_names(outer_client) == ["outer"]


def test_clients_of_other_threads_are_answered_too():
    # The active mocks are the process's, not a context variable's: worker threads see them.
    with mock_opsworkscm(run_jobs=False), ThreadPoolExecutor(2) as pool:
        lists = pool.map(lambda _: _server_names(boto3.Session(**CLIENT_OPTIONS).client("opsworkscm")), range(2))
        assert list(lists) == [[], []]


def test_an_attached_mock_answers_alone_inside_a_block():
    with mock_opsworkscm(run_jobs=False) as scoped, OpsWorksCMMock(run_jobs=False) as attached:
        client = _client()
        attached.attach(client)
        client.create_server(**create_server_params("pinned", "Puppet"))
        assert _server_names(client) == ["pinned"]
        scoped.attach(other := _client())
        assert _server_names(other) == []  # the block's mock did not act on it too


@mock_opsworkscm
def _create_and_list(name: str) -> list[str]:
    client = boto3.client("opsworkscm", **CLIENT_OPTIONS)
    client.create_server(**create_server_params(name, "Puppet"))
    active_mock().wait_for_jobs()
    return _server_names(client)


@mock_opsworkscm(run_jobs=False, account_id="210987654321", server_limit=1)
def _decorated_with_options() -> tuple[str, str]:
    client = boto3.client("opsworkscm", **CLIENT_OPTIONS)
    arn = client.create_server(**create_server_params("first", "Puppet"))["Server"]["ServerArn"]
    with pytest.raises(ClientError) as caught:
        client.create_server(**create_server_params("second", "Puppet"))
    return arn, caught.value.response["Error"]["Code"]


def test_a_decorated_function_gets_a_fresh_mock_per_call():
    assert _create_and_list("one") == ["one"]
    assert _create_and_list("two") == ["two"]


def test_decorator_options_reach_the_mock():
    arn, refused = _decorated_with_options()
    assert ":210987654321:server/first/" in arn
    assert refused == "LimitExceededException"


def test_a_misspelt_option_fails_where_it_is_written():
    with pytest.raises(TypeError):
        mock_opsworkscm(ca_key_bit=2048)


def test_a_decorated_coroutine_runs_inside_its_mock():
    @mock_opsworkscm(run_jobs=False)
    async def list_names():
        return _server_names(boto3.client("opsworkscm", **CLIENT_OPTIONS))

    assert asyncio.run(list_names()) == []


def test_a_decorated_test_case_shares_one_mock_between_set_up_and_test():
    @mock_opsworkscm(run_jobs=False)
    class Servers(unittest.TestCase):
        def setUp(self):
            self.client = boto3.client("opsworkscm", **CLIENT_OPTIONS)
            self.client.create_server(**create_server_params("from-setup", "Puppet"))

        def test_sees_the_server_of_set_up(self):
            self.assertEqual(_server_names(self.client), ["from-setup"])

        def test_another_test_gets_a_fresh_mock(self):  # or set-up's server would exist already
            self.assertEqual(_server_names(self.client), ["from-setup"])

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(Servers).run(result)
    assert result.testsRun == 2 and result.wasSuccessful(), result.errors + result.failures


def test_a_decorated_plain_class_wraps_its_tests():
    @mock_opsworkscm(run_jobs=False)
    class Plain:
        def test_listing(self):
            return _server_names(boto3.client("opsworkscm", **CLIENT_OPTIONS))

        def helper(self):
            return innermost()

    assert Plain().test_listing() == []
    assert Plain().helper() is None
