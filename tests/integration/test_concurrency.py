"""Concurrent changes of one node name, on SQLite and on PostgreSQL, through served opscm
instances: exactly one certificate or key ends in force (or the documented refusal), never a
500; serials unique, CRL numbers increasing."""

import base64
import concurrent.futures
import os
import uuid

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from sqlalchemy import create_engine, text

from tests.support.postgres import fresh_database
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key
from tests.support.server import start_server, wait_for_status

ROUNDS = 6
WORKERS = 8


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """A served opscm and a way to read its database."""
    data_dir = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    if request.param == "sqlite":
        server = start_server(data_dir, "--ca-key-bits", "2048", "--schedule-interval", "0", "--health-interval", "0")
        url = f"sqlite:///{data_dir / 'opscm.db'}"
        yield server, create_engine(url)
        server.stop()
        return
    with fresh_database() as url:
        os.environ["OPSCM_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
        try:
            server = start_server(
                data_dir, "--database-url", url, "--ca-key-bits", "2048", "--schedule-interval", "0", "--health-interval", "0"
            )
        finally:
            del os.environ["OPSCM_MASTER_KEY"]
        engine = create_engine(url)
        yield server, engine
        engine.dispose()
        server.stop()


def _server(client, engine, policy):
    name = f"race-{uuid.uuid4().hex[:8]}"
    client.create_server(**create_server_params(
        name, engine, EngineAttributes=[{"Name": "OPSCM_NODE_NAME_POLICY", "Value": policy}]
    ))
    server = wait_for_status(client, name)
    return name, server["ServerArn"].rsplit("/", 1)[1]


def _race(change) -> list[str]:
    """WORKERS changes of one name at once; their outcomes (a 500 fails the test)."""
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(change, range(WORKERS)))
    assert set(outcomes) <= {"ok", "ValidationException", "InvalidStateException", "ResourceNotFoundException"}
    return outcomes


def _attempt(call):
    """The outcome of one request: its error code, or 'ok'. A 500 fails the test."""
    try:
        call()
        return "ok"
    except ClientError as error:
        code = error.response["Error"]["Code"]
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400, error.response
        return code


@pytest.mark.parametrize("policy", ["UNIQUE", "REPLACE"])
def test_concurrent_puppet_changes_leave_one_certificate_in_force(store, policy):
    opscm, db = store
    client = opscm.client()
    name, server_id = _server(client, "Puppet", policy)
    crl_url = next(
        a["Value"] for a in client.describe_servers(ServerName=name)["Servers"][0]["EngineAttributes"]
        if a["Name"] == "PUPPET_API_CRL_URL"
    )
    csrs = [make_csr("web") for _ in range(WORKERS)]
    crl_numbers = []
    for round_ in range(ROUNDS):
        def change(i):
            if i % 4 == 3:
                return _attempt(lambda: client.disassociate_node(ServerName=name, NodeName="web"))
            return _attempt(lambda: client.associate_node(
                ServerName=name, NodeName="web", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": csrs[i]}]
            ))

        outcomes = _race(change)
        with db.connect() as connection:
            active = connection.execute(text(
                "select serial from puppet_certificates where server_id = :s and certname = 'web' and revoked_at is null"
            ), {"s": server_id}).scalars().all()
            claims = connection.execute(text(
                "select ref from nodes where server_id = :s and name = 'web'"
            ), {"s": server_id}).scalars().all()
            serials = connection.execute(text(
                "select serial from puppet_certificates where server_id = :s"
            ), {"s": server_id}).scalars().all()
        assert len(active) <= 1, f"round {round_}: {len(active)} certificates in force ({outcomes})"
        assert [str(s) for s in active] == claims, "the node claim names the certificate in force"
        assert len(serials) == len(set(serials)), "every serial once"
        crl = x509.load_pem_x509_crl(httpx.get(crl_url).content)
        revoked = {r.serial_number for r in crl}
        assert not revoked & set(active), "the certificate in force is not in the CRL"
        assert set(serials) - set(active) <= revoked, "every other certificate of the name is revoked"
        crl_numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    assert crl_numbers == sorted(crl_numbers), "CRL numbers never go back"
    if policy == "UNIQUE":
        assert "ValidationException" in outcomes or "ResourceNotFoundException" in outcomes or outcomes.count("ok") <= 2


@pytest.mark.parametrize("policy", ["UNIQUE", "REPLACE"])
def test_concurrent_chef_changes_leave_one_key_in_force(store, policy):
    opscm, db = store
    client = opscm.client()
    name, server_id = _server(client, "ChefAutomate", policy)
    keys = [public_pem(rsa_key()) for _ in range(WORKERS)]
    org = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
    for _ in range(ROUNDS):
        def change(i):
            if i % 4 == 3:
                return _attempt(lambda: client.disassociate_node(ServerName=name, NodeName="box", EngineAttributes=org))
            return _attempt(lambda: client.associate_node(
                ServerName=name, NodeName="box", EngineAttributes=[*org, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": keys[i]}]
            ))

        outcomes = _race(change)
        with db.connect() as connection:
            clients = connection.execute(text(
                "select public_key_pem from chef_clients where server_id = :s and name = 'box'"
            ), {"s": server_id}).scalars().all()
            claims = connection.execute(text(
                "select count(*) from nodes where server_id = :s and name = 'box'"
            ), {"s": server_id}).scalar()
        assert len(clients) <= 1 and claims == len(clients), outcomes
