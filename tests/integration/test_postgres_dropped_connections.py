"""PostgreSQL drops opscm's connections (a restart, a failover; here pg_terminate_backend): the
requests in flight may fail once, answered 503 in the API's format, and then opscm recovers on
new connections. Before, a dropped reader went back to the idle pool and was taken again at
once: reads every 0.25 s (the job runner's poll) kept it from the idle check, so every request
failed and no job ran again."""

from __future__ import annotations

import base64
import os
import time

import pytest
from botocore.exceptions import ClientError

from tests.support.postgres import ADMIN_URL, fresh_database, psycopg
from tests.support.requests import create_server_params
from tests.support.server import start_server, wait_for_status


def _drop_connections(database: str) -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]


@pytest.fixture
def served(tmp_path, monkeypatch):
    with fresh_database() as url:
        monkeypatch.setenv("OPSCM_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
        server = start_server(tmp_path, "--database-url", url, "--schedule-interval", "0")
        server.database = url.rsplit("/", 1)[1]
        try:
            yield server
        finally:
            server.stop()


def _outcome(call) -> str:
    try:
        call()
        return "ok"
    except ClientError as error:
        return f"{error.response['ResponseMetadata']['HTTPStatusCode']} {error.response['Error']['Code']}"


def test_requests_and_jobs_recover_after_postgresql_drops_the_connections(served):
    client = served.client()
    for _ in range(10):
        client.describe_servers()
    assert _drop_connections(served.database) > 0
    time.sleep(1)  # the job runner's polls meet the dropped connections
    outcomes = [_outcome(client.describe_servers) for _ in range(30)]
    assert outcomes[-10:] == ["ok"] * 10, outcomes
    assert set(outcomes) <= {"ok", "503 ServiceUnavailable"}, outcomes
    # The leader's job runner works again: a server made now becomes HEALTHY.
    client.create_server(**create_server_params("after-drop", "ChefAutomate"))
    wait_for_status(client, "after-drop", timeout=60)
