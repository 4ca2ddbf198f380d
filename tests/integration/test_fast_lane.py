"""The HTTP fast lane (app/http_protocol.py): a boot storm's requests that arrive whole are
answered by the protocol itself; everything else goes uvicorn's way, and the answers are the same.

The served app is wrapped to count the requests it is given: a request the lane answers never
reaches it."""

import contextlib
import json
import threading
import time

import boto3
import pytest

from opscm.app.connection_shares import ConnectionShares
from opscm.app.durable_answers import FEW
from opscm.domain.errors import InvalidState
from opscm.engines.builtin_puppet import BuiltinPuppet
from opscm.mock import OpsWorksCMMock
from tests.support.asgi_server import ThreadServer
from tests.support.http_wire import TARGET, Answers, api_request, connect
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key

MODEL_404 = "/aws-cli/models/opsworks-cm/2016-11-01/nothing.json"


class Counting:
    """ASGI middleware counting the requests uvicorn hands to the app."""

    def __init__(self, app):
        self._app = app
        self.calls = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.calls += 1
        await self._app(scope, receive, send)


@pytest.fixture(scope="module")
def mock():
    with OpsWorksCMMock(ca_key_bits=2048) as mock:
        client = boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        mock.attach(client)
        client.create_server(**create_server_params("chef", "ChefAutomate"))
        client.create_server(**create_server_params("puppet", "Puppet"))
        mock.wait_for_jobs()
        mock.client = client
        yield mock


@pytest.fixture
def served(mock):
    app = Counting(mock.app.asgi)
    with ThreadServer(app, lane=mock.app.asgi) as server:
        server.app = app
        yield server


@pytest.fixture
def first_of_two(mock):
    """Served as the first of two workers, the other holding no connection: from three
    connections on, this one sends clients away."""
    shares = ConnectionShares(2)
    app = Counting(mock.app.asgi)
    with ThreadServer(app, lane=mock.app.asgi, share=shares.of_worker(0)) as server:
        server.app, server.shares = app, shares
        yield server


def _counted(server, counts: list[int]) -> None:
    deadline = time.monotonic() + 5
    while server.shares.counts() != counts:
        assert time.monotonic() < deadline, f"counts {server.shares.counts()}, not {counts}"
        time.sleep(0.01)


def _token(mock, node: str) -> str:
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
    return mock.client.associate_node(ServerName="chef", NodeName=node, EngineAttributes=attributes)["NodeAssociationStatusToken"]


def _status_request(token: str, *extra: bytes) -> bytes:
    return api_request("DescribeNodeAssociationStatus", {"ServerName": "chef", "NodeAssociationStatusToken": token}, *extra)


def test_a_whole_request_is_answered_in_the_lane(mock, served):
    token = _token(mock, "whole")
    with connect(served) as sock:
        answers = Answers(sock)
        for _ in range(3):  # keep-alive: each on the same connection
            sock.sendall(_status_request(token))
            status, headers, body = answers.next()
            assert status == 200
            assert json.loads(body)["NodeAssociationStatus"] == "SUCCESS"
            assert headers["content-type"] == "application/x-amz-json-1.1"
            assert headers["x-amzn-requestid"]
    assert served.app.calls == 0


def test_a_body_still_on_its_way_goes_uvicorns_way_with_the_same_answer(mock, served):
    token = _token(mock, "split")
    request = _status_request(token)
    with connect(served) as sock:
        answers = Answers(sock)
        sock.sendall(request)
        lane = answers.next()
        sock.sendall(request[:-5])
        time.sleep(0.2)
        sock.sendall(request[-5:])
        uvicorn = answers.next()
    assert served.app.calls == 1
    assert lane[0] == uvicorn[0] == 200
    assert lane[2] == uvicorn[2]
    assert sorted(lane[1]) == sorted(uvicorn[1])  # the same headers, values aside (request id, date)
    assert lane[1]["content-type"] == uvicorn[1]["content-type"]


def test_pipelined_requests_are_answered_in_order(mock, served):
    token = _token(mock, "pipelined")
    get_404 = f"GET {MODEL_404} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with connect(served) as sock:
        answers = Answers(sock)
        sock.sendall(_status_request(token) + get_404 + _status_request("unknown-token") + _status_request(token))
        statuses = [answers.next() for _ in range(4)]
    assert [status for status, _, _ in statuses] == [200, 404, 400, 200]
    assert json.loads(statuses[2][2])["__type"] == "ResourceNotFoundException"
    assert json.loads(statuses[3][2])["NodeAssociationStatus"] == "SUCCESS"


def test_a_connection_that_asks_to_close_is_closed_after_its_answer(mock, served):
    token = _token(mock, "closing")
    with connect(served) as sock:
        answers = Answers(sock)
        sock.sendall(_status_request(token, b"Connection: close"))
        status, headers, _ = answers.next()
        assert status == 200
        assert headers.get("connection") == "close"
        assert answers.closed()
    assert served.app.calls == 1  # uvicorn's way


def test_expect_100_continue_goes_uvicorns_way(mock, served):
    token = _token(mock, "expecting")
    request = _status_request(token, b"Expect: 100-continue")
    head, body = request.split(b"\r\n\r\n", 1)
    with connect(served) as sock:
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        status, _, answer = Answers(sock).next()
    assert status == 200 and json.loads(answer)["NodeAssociationStatus"] == "SUCCESS"
    assert served.app.calls == 1


def _cached_puppet_server(mock) -> None:
    # A node change is light (the lane's, on the loop) only while its server is cached (2 s).
    assert mock.app.deps.server_cache.get("123456789012", "us-east-1", "puppet") is not None


def _sent_alone(mock, served, request: bytes) -> tuple[int, bytes]:
    """The status and body of the answer to one request, sent alone on a connection of its own."""
    with connect(served) as sock:
        _cached_puppet_server(mock)
        sock.sendall(request)
        status, _, body = Answers(sock).next()
    return status, body


def _puppet_association(node: str) -> bytes:
    params = {"ServerName": "puppet", "NodeName": node, "EngineAttributes": [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]}
    return api_request("AssociateNode", params)


def _signed_in(monkeypatch, before=lambda: None) -> list[threading.Thread]:
    """The threads the built-in Puppet engine's signing step runs in, as it runs."""
    threads = []
    signs = BuiltinPuppet.prepare_change

    def recorded(engine, *args, **kwargs):
        threads.append(threading.current_thread())
        before()
        return signs(engine, *args, **kwargs)

    monkeypatch.setattr(BuiltinPuppet, "prepare_change", recorded)
    return threads


def _assert_signed(mock, body: bytes) -> None:
    token = json.loads(body)["NodeAssociationStatusToken"]
    described = mock.client.describe_node_association_status(ServerName="puppet", NodeAssociationStatusToken=token)
    assert described["NodeAssociationStatus"] == "SUCCESS"
    attributes = {a["Name"]: a["Value"] for a in described["EngineAttributes"]}
    assert list(attributes) == ["PUPPET_NODE_CERT"] and attributes["PUPPET_NODE_CERT"].startswith("-----BEGIN CERTIFICATE-----")


def test_a_lone_puppet_association_is_signed_on_the_loop(mock, served, monkeypatch):
    # Nobody to stall: the hand-off to a thread and back would cost more than it saves.
    threads = _signed_in(monkeypatch)
    status, body = _sent_alone(mock, served, _puppet_association("alone-node"))
    assert status == 200, body
    _assert_signed(mock, body)
    assert threads == [served.thread]


def test_a_removal_makes_its_crl_in_a_thread_even_alone(mock, served, monkeypatch):
    # A CRL grows with the revocations (10,000 of them: ~120 ms): never on the loop.
    assert _sent_alone(mock, served, _puppet_association("removed-node"))[0] == 200
    threads = _signed_in(monkeypatch)
    removal = api_request("DisassociateNode", {"ServerName": "puppet", "NodeName": "removed-node", "EngineAttributes": []})
    status, body = _sent_alone(mock, served, removal)
    assert status == 200, body
    assert len(threads) == 1 and threads[0].name.startswith("opscm-request")


def _signed_among(mock, served, count: int, node: str) -> tuple[int, bytes]:
    """The answer to a Puppet association sent while ``count`` other requests are in progress."""
    with contextlib.ExitStack() as stack:
        others = [stack.enter_context(connect(served)) for _ in range(count)]
        sock = stack.enter_context(connect(served))
        head = f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {TARGET}DescribeServers\r\nContent-Length: 2\r\n\r\n{{"
        for other in others:
            other.sendall(head.encode())  # its body's last byte still on its way: in progress
        deadline = time.monotonic() + 10
        in_progress = lambda: sum(c.cycle is not None and not c.cycle.response_complete for c in served.server.server_state.connections)  # noqa: E731
        while in_progress() < count:
            assert time.monotonic() < deadline, "the other requests never arrived"
            time.sleep(0.01)
        _cached_puppet_server(mock)
        sock.sendall(_puppet_association(node))
        status, _, body = Answers(sock).next()
        for other in others:
            other.sendall(b"}")
            assert Answers(other).next()[0] == 200
    return status, body


def test_a_signature_among_a_few_other_requests_is_made_on_the_loop(mock, served, monkeypatch):
    # They wait for it (a few ms): less than the hand-off to a thread and back costs.
    threads = _signed_in(monkeypatch)
    status, body = _signed_among(mock, served, FEW, "among-few-node")
    assert status == 200, body
    _assert_signed(mock, body)
    assert threads == [served.thread]


def test_a_signature_goes_to_a_thread_while_many_other_requests_are_in_progress(mock, served, monkeypatch):
    threads = _signed_in(monkeypatch)
    status, body = _signed_among(mock, served, FEW + 1, "busy-node")
    assert status == 200, body
    _assert_signed(mock, body)
    assert len(threads) == 1 and threads[0] is not served.thread and threads[0].name.startswith("opscm-request")


def test_a_signing_step_that_would_wait_on_the_loop_is_run_again_in_a_thread(mock, served, monkeypatch):
    def write_first():
        # A write the step needs (a new block of serials) must not wait for SQLite's lock on the loop.
        if threading.current_thread() is served.thread:
            with mock.app.deps.uow():
                pass

    threads = _signed_in(monkeypatch, write_first)
    status, body = _sent_alone(mock, served, _puppet_association("waits-node"))
    assert status == 200, body
    _assert_signed(mock, body)
    assert threads[0] is served.thread and len(threads) == 2 and threads[1].name.startswith("opscm-request")


def test_a_puppet_association_is_answered_from_the_lane(mock, served):
    status, body = _sent_alone(mock, served, _puppet_association("lane-node"))
    assert status == 200, body
    _assert_signed(mock, body)
    assert served.app.calls == 0


def test_bad_input_in_the_lane_is_the_apis_error(served):
    with connect(served) as sock:
        answers = Answers(sock)
        body = b'{"ServerName": '
        head = f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {TARGET}AssociateNode\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        status, _, answer = answers.next()
        assert status == 400
        assert json.loads(answer)["__type"] == "SerializationException"
        sock.sendall(api_request("AssociateNode", {"ServerName": "chef"}))  # the connection goes on
        status, _, answer = answers.next()
        assert status == 400 and json.loads(answer)["__type"] == "ValidationException"
    assert served.app.calls == 0


def test_a_failure_in_the_lane_is_answered_500_and_logged(mock, served, monkeypatch, caplog):
    def broken(request, others):
        raise RuntimeError("a bug")

    monkeypatch.setattr(mock.app.asgi, "answer_now", broken)
    with connect(served) as sock:
        sock.sendall(_status_request("any"))
        status, _, _ = Answers(sock).next()
    assert status == 500
    assert "a bug" in caplog.text


def test_another_port_of_the_same_server_never_takes_the_lane(mock):
    # The metrics port is served by the same uvicorn: a POST / there must reach its own app.
    app = Counting(mock.app.asgi)
    with ThreadServer(app, lane=mock.app.asgi, lane_port=1) as server:
        token = _token(mock, "other-port")
        with connect(server) as sock:
            sock.sendall(_status_request(token))
            assert Answers(sock).next()[0] == 200
    assert app.calls == 1


def test_a_request_behind_a_signature_waits_for_its_answer(mock, served):
    # The association's signature runs in a thread; the status request sent right behind it on
    # the same connection is answered second, whatever finishes first.
    token = _token(mock, "behind")
    params = {"ServerName": "puppet", "NodeName": "signed-first",
              "EngineAttributes": [{"Name": "PUPPET_NODE_CSR", "Value": make_csr("signed-first")}]}
    with connect(served) as sock:
        answers = Answers(sock)
        sock.sendall(api_request("AssociateNode", params) + _status_request(token))
        first, second = answers.next(), answers.next()
    assert first[0] == 200 and "NodeAssociationStatusToken" in json.loads(first[2])
    assert second[0] == 200 and json.loads(second[2])["NodeAssociationStatus"] == "SUCCESS"


def test_a_handler_that_refuses_before_its_steps_is_the_apis_error(mock, served, monkeypatch):
    def refuse(deps, caller, params):
        raise InvalidState("refused before any step")

    monkeypatch.setitem(mock.app.pipeline._steps, "AssociateNode", refuse)
    params = {"ServerName": "chef", "NodeName": "refused",
              "EngineAttributes": [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]}
    with connect(served) as sock:
        sock.sendall(api_request("AssociateNode", params))
        status, _, body = Answers(sock).next()
    assert status == 400
    assert json.loads(body) == {"__type": "InvalidStateException", "message": "refused before any step"}


def test_a_worker_over_its_share_asks_a_client_to_reconnect(mock, first_of_two):
    token = _token(mock, "rebalanced")
    with connect(first_of_two) as first, connect(first_of_two) as second, connect(first_of_two):
        _counted(first_of_two, [3, 0])
        answers = Answers(first)
        first.sendall(_status_request(token))
        status, headers, body = answers.next()
        assert status == 200 and json.loads(body)["NodeAssociationStatus"] == "SUCCESS"  # a whole answer
        assert headers["connection"] == "close"
        assert answers.closed()
        _counted(first_of_two, [2, 0])
        kept = Answers(second)
        for _ in range(3):  # two connections: never sent away (one may be idle)
            second.sendall(_status_request(token))
            status, headers, _ = kept.next()
            assert status == 200 and "connection" not in headers
        assert not first_of_two.app.calls  # all in the lane


def test_a_connection_with_a_request_behind_its_answer_is_not_closed(mock, first_of_two):
    token = _token(mock, "pipelined-at-the-share")
    with connect(first_of_two) as first, connect(first_of_two), connect(first_of_two):
        _counted(first_of_two, [3, 0])
        answers = Answers(first)
        first.sendall(_status_request(token) + _status_request(token))  # pipelined: closing would drop the second
        for _ in range(2):
            status, headers, body = answers.next()
            assert status == 200 and json.loads(body)["NodeAssociationStatus"] == "SUCCESS"
            assert "connection" not in headers
