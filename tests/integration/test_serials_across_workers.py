"""Certificate serials and cached server rows across worker processes of one data dir (two
Applications on one SQLite file stand in for two workers): a restore never lowers the serial
counter below a block another worker reserved meanwhile, no certificate is issued while a
restore works on the CA, the event loop never waits on another thread's reservation, a cached
row in a refusing state is read again before a refusal, and a server deleted by another worker
is answered as not found."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from cryptography import x509

from opscm.app.composition import Application, Settings
from opscm.domain.errors import DomainError, InvalidState
from opscm.domain.servers import ServerStatus
from opscm.service import backups, nodes, restores, servers
from opscm.service.context import Caller
from opscm.service.ports import WouldWait
from opscm.service.server_certificates import issue_server_certificate
from opscm.store.sql import SqlPuppetCas
from tests.support.console import associate_puppet, healthy_server
from tests.support.in_process import call
from tests.support.requests import make_csr, public_pem, rsa_key

ACCOUNT, REGION = "123456789012", "us-east-1"
CALLER = Caller(ACCOUNT, REGION)


def _worker(tmp_path, *, runs_jobs: bool) -> Application:
    app = Application(
        Settings(
            data_dir=tmp_path, ca_key_bits=2048, schedule_interval=0, health_interval=0, job_workers=1,
            regions=(REGION,), verify_signatures=False, mock_account_id=ACCOUNT, mock_region=REGION,
        )
    )
    if runs_jobs:
        app.start()
    return app


@pytest.fixture
def workers(tmp_path):
    a, b = _worker(tmp_path, runs_jobs=True), _worker(tmp_path, runs_jobs=False)
    healthy_server(a, CALLER, "p")
    yield a, b
    a.close()
    b.close()


def _server_id(app: Application) -> str:
    with app.deps.uow(read_only=True) as uow:
        return uow.servers.get(ACCOUNT, REGION, "p").id


def _status(app: Application) -> str:
    return servers.describe_servers(app.deps, CALLER, {"ServerName": "p"})["Servers"][0]["Status"]


def _wait(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _set_status(app: Application, status: ServerStatus) -> None:
    with app.deps.uow() as uow:
        server = uow.servers.get(ACCOUNT, REGION, "p")
        server.status = status
        uow.servers.save(server)
        uow.commit()


def _serial(app: Application, node: str) -> int:
    csr = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
    token = nodes.associate_node(app.deps, CALLER, {"ServerName": "p", "NodeName": node, "EngineAttributes": csr})
    status = nodes.describe_node_association_status(app.deps, CALLER, {"ServerName": "p", **token})
    return x509.load_pem_x509_certificate(status["EngineAttributes"][0]["Value"].encode()).serial_number


def _backup(app: Application) -> str:
    backup_id = backups.create_backup(app.deps, CALLER, {"ServerName": "p"})["Backup"]["BackupId"]
    _wait(lambda: _status(app) == "HEALTHY" and backups.describe_backups(
        app.deps, CALLER, {"BackupId": backup_id})["Backups"][0]["Status"] == "OK")
    return backup_id


def test_a_restore_never_lowers_the_serial_counter_below_a_block_reserved_meanwhile(workers):
    a, b = workers
    associate_puppet(a, CALLER, "p", "before.example.com")
    backup_id = _backup(a)
    server_id = _server_id(a)
    b.deps.server_cache.get(ACCOUNT, REGION, "p")  # B holds the HEALTHY row (for up to 2 s)
    engine = a.deps.engines["Puppet"]
    plan_restore = engine.plan_restore

    def plan_then_b_signs(server, snapshot, *, new_server):
        plan = plan_restore(server, snapshot, new_server=new_server)
        # Between the plan and its transaction, B signs on its cached row: it reserves a block,
        # and only its claim is refused.
        with pytest.raises(DomainError):
            associate_puppet(b, CALLER, "p", "during.example.com")
        return plan

    engine.plan_restore = plan_then_b_signs
    restores.restore_server(a.deps, CALLER, {"ServerName": "p", "BackupId": backup_id})
    _wait(lambda: _status(a) == "HEALTHY")
    _, b_block_end = b.deps.engines["Puppet"]._serials._ranges[server_id]
    with a.deps.uow(read_only=True) as uow:
        assert uow.bind(SqlPuppetCas).export_state(server_id).next_serial >= b_block_end

    # Both workers go on signing, each from its own block: no serial twice, no failure.
    b.deps.server_cache.clear()
    serials = [_serial(app, f"{tag}{i}.example.com") for i in range(4) for app, tag in ((a, "x"), (b, "y"))]
    assert len(set(serials)) == len(serials)


def test_no_server_certificate_is_issued_while_a_restore_works_on_the_ca(workers):
    a, _ = workers
    _set_status(a, ServerStatus.RESTORING)
    with a.deps.uow(read_only=True) as uow:
        server = uow.servers.get(ACCOUNT, REGION, "p")
    with pytest.raises(InvalidState, match="RESTORING"):
        issue_server_certificate(a.deps, server, certname="puppet.example.com", alt_names=[], public_key_pem=public_pem(rsa_key()))


def test_the_event_loop_never_waits_on_another_threads_serial_reservation(workers, tmp_path):
    a, _ = workers
    serials = a.deps.engines["Puppet"]._serials
    server_id = _server_id(a)
    serials.forget(server_id)  # the next signature needs a new block
    other_writer = sqlite3.connect(tmp_path / "opscm.db", isolation_level=None, check_same_thread=False)
    other_writer.execute("BEGIN IMMEDIATE")  # a backup's, a restore's, `opscm credentials`
    try:
        thread = threading.Thread(target=serials.next, args=(server_id,))  # a request thread's reservation waits
        thread.start()
        time.sleep(0.3)
        with a.deps.uow.without_waiting():  # as the event loop signs: a write that would wait raises
            with pytest.raises(WouldWait):
                serials.next(server_id)
        assert thread.is_alive()  # still waiting for the writer: the loop did not wait for it
    finally:
        other_writer.execute("ROLLBACK")
        thread.join(30)
        other_writer.close()


def test_a_cached_row_in_a_refusing_state_is_read_again_before_a_refusal(workers):
    a, b = workers
    _set_status(a, ServerStatus.BACKING_UP)
    with pytest.raises(InvalidState):
        associate_puppet(b, CALLER, "p", "during.example.com")  # right; B now caches BACKING_UP
    _set_status(a, ServerStatus.HEALTHY)  # the backup ended, in worker A
    associate_puppet(b, CALLER, "p", "after.example.com")  # not refused on B's cached row


def test_a_server_deleted_by_another_worker_is_not_found_not_a_failure(workers):
    a, b = workers
    server = b.deps.server_cache.get(ACCOUNT, REGION, "p")  # cached in B
    b.deps.engines["Puppet"]._serials.forget(server.id)  # B's next signature needs a block
    with a.deps.uow() as uow:  # A's DeleteServer
        uow.servers.delete(server.id)
        uow.commit()
    body = {"ServerName": "p", "NodeName": "n.example.com",
            "EngineAttributes": [{"Name": "PUPPET_NODE_CSR", "Value": make_csr("n.example.com")}]}
    status, answer = call(b, "AssociateNode", json.dumps(body).encode())
    assert (status, answer["__type"]) == (400, "ResourceNotFoundException"), answer
