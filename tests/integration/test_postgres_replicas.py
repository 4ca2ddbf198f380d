"""Two `opscm serve` replicas on one PostgreSQL database: either answers any token, serials stay unique."""

import base64
import concurrent.futures
import os
import threading

import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from tests.support.postgres import fresh_database
from tests.support.requests import create_server_params, make_csr
from tests.support.server import start_server, wait_for_status


@pytest.fixture(scope="module")
def database():
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def replicas(database, tmp_path_factory):
    # Replicas share the database and the master key (secrets sealed by one open in the other).
    os.environ["OPSCM_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    try:
        first = start_server(tmp_path_factory.mktemp("a"), "--database-url", database, "--ca-key-bits", "2048")
        second = start_server(tmp_path_factory.mktemp("b"), "--database-url", database, "--ca-key-bits", "2048")
    finally:
        del os.environ["OPSCM_MASTER_KEY"]
    yield first, second
    first.stop()
    second.stop()


def test_replicas_share_state(replicas):
    first, second = replicas
    key = first.access_key  # made once, by the first replica; the second found it in the database
    assert not second.credentials_file.exists()
    a, b = first.client(), second.client(key=key)
    a.create_server(**create_server_params("shared", "Puppet"))
    wait_for_status(b, "shared")
    token = a.associate_node(
        ServerName="shared", NodeName="n0", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("n0")}]
    )["NodeAssociationStatusToken"]
    assert b.describe_node_association_status(ServerName="shared", NodeAssociationStatusToken=token)[
        "NodeAssociationStatus"
    ] == "SUCCESS"

    def associate(i):
        client = a if i % 2 else b
        token = client.associate_node(
            ServerName="shared", NodeName=f"n{i}", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr(f"n{i}")}]
        )["NodeAssociationStatusToken"]
        status = client.describe_node_association_status(ServerName="shared", NodeAssociationStatusToken=token)
        return x509.load_pem_x509_certificate(status["EngineAttributes"][0]["Value"].encode()).serial_number

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        serials = list(pool.map(associate, range(1, 25)))
    assert len(set(serials)) == 24, "serials are allocated in the database, once each"
    a.delete_server(ServerName="shared")


def test_concurrent_changes_of_one_server_go_one_after_the_other(replicas):
    """Eight CreateBackup calls at once over both replicas, three times: one wins each time, the
    others find the server BACKING_UP (as under SQLite's write lock). Before, each read the
    server unlocked and saved it whole: several won, backups shared an id (500s), and the
    manual-backup limit was passed."""
    first, second = replicas
    clients = [first.client(), second.client(key=first.access_key)]
    clients[0].create_server(**create_server_params("contended", "ChefAutomate"))
    wait_for_status(clients[0], "contended")
    try:
        for _ in range(3):
            barrier = threading.Barrier(8)

            def backup(i):
                barrier.wait()
                try:
                    clients[i % 2].create_backup(ServerName="contended")
                    return "ok"
                except ClientError as error:
                    return error.response["Error"]["Code"]

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                outcomes = sorted(pool.map(backup, range(8)))
            assert outcomes == ["InvalidStateException"] * 7 + ["ok"], outcomes
            wait_for_status(clients[0], "contended")
        assert len(clients[0].describe_backups(ServerName="contended")["Backups"]) == 3
    finally:
        clients[0].delete_server(ServerName="contended")
