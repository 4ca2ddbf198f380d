"""The Puppet CA documents wait for the disk too (app/asgi.py, app/durable_answers.py): with
SQLite's group commit, a node's new certificate or a new CRL is served only once a sync of the
WAL made after its read is done, the commits of another worker on the same data dir included;
a disk that failed to sync answers 503, not the document."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3

import pytest
from cryptography import x509

from opscm import spec
from opscm.app.composition import Application, Settings
from opscm.app.durable_answers import DurableAnswers
from tests.integration.test_group_commit import Disk, _busy, _nothing_arrives
from tests.support.asgi_server import ThreadServer
from tests.support.http_wire import Answers, api_request, connect
from tests.support.in_process import call, wait_until_healthy
from tests.support.requests import create_server_params, make_csr


def _worker(data_dir) -> Application:
    """An opscm on *data_dir* whose WAL syncs go through a ``Disk`` of its own (``.disk``)."""
    application = Application(
        Settings(
            data_dir=data_dir, verify_signatures=False, ca_key_bits=2048, schedule_interval=0, health_interval=0,
            checkpoint_apart=True, group_commit=True,
        )
    )  # fmt: skip
    application.disk = Disk()
    application.deps.uow.wal._sync_data = application.deps.uow.wal._sync_dir = application.disk.fsync
    return application


@pytest.fixture
def app(tmp_path):
    application = _worker(tmp_path)
    application.start()
    status, answer = call(application, "CreateServer", json.dumps(create_server_params("pup", "Puppet")).encode())
    assert status == 200, answer
    wait_until_healthy(application, "pup")
    yield application
    application.close()


@pytest.fixture
def served(app):
    with ThreadServer(app.asgi, lane=app.asgi) as server:
        yield server


def _associate(node: str) -> bytes:
    attributes = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
    return api_request("AssociateNode", {"ServerName": "pup", "NodeName": node, "EngineAttributes": attributes})


def _disassociate(node: str) -> bytes:
    return api_request("DisassociateNode", {"ServerName": "pup", "NodeName": node, "EngineAttributes": []})


def _ca_path(app, document: str, name: str) -> str:
    with sqlite3.connect(app.settings.data_dir / "opscm.db") as db:
        server_id = db.execute("SELECT id FROM servers WHERE name='pup'").fetchone()[0]
    return f"/servers/{server_id}/puppet-ca/v1/{document}/{name}"


def _get(sock, path: str) -> Answers:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: opscm.local\r\n\r\n".encode())
    return Answers(sock)


def _crl(body: bytes) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(body)


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _wal_syncs(app) -> int:
    """How many syncs of the WAL itself (not of its directory) the worker *app* made."""
    return app.disk.synced.count(os.stat(app.settings.data_dir / "opscm.db-wal").st_ino)


def _held(app) -> None:
    app.disk.hold.clear()
    app.disk.waiting.clear()


def test_a_new_certificate_is_served_once_its_commit_is_on_disk(app, served):
    path = _ca_path(app, "certificate", "held.example.com")
    with connect(served) as sock, connect(served) as ca, _busy(served):
        answers = Answers(sock)
        sock.sendall(_associate("warm.example.com"))  # the server's row cached: the next change runs on the loop
        assert answers.next()[0] == 200
        syncs = _wal_syncs(app)

        _held(app)
        sock.sendall(_associate("held.example.com"))
        assert app.disk.waiting.wait(10), "the commit was never synced"
        assert _nothing_arrives(sock)  # committed, not on disk: AssociateNode's answer is held
        certificate = _get(ca, path)
        assert _nothing_arrives(ca)  # and so is the certificate it made

        app.disk.hold.set()
        assert answers.next()[0] == 200
        status, _, body = certificate.next()
    assert status == 200, body
    assert x509.load_pem_x509_certificate(body).subject.rfc4514_string() == "CN=held.example.com"
    # AssociateNode's sync (held), then one begun after the certificate was read.
    assert _wal_syncs(app) == syncs + 2


def test_a_new_crl_is_served_once_its_commit_is_on_disk(app, served):
    path = _ca_path(app, "certificate_revocation_list", "ca")
    with connect(served) as sock, connect(served) as ca, _busy(served):
        answers = Answers(sock)
        sock.sendall(_associate("victim.example.com"))
        assert answers.next()[0] == 200
        before = _crl_number(_crl(_get(ca, path).next()[2]))

        _held(app)
        sock.sendall(_disassociate("victim.example.com"))
        assert app.disk.waiting.wait(10), "the commit was never synced"
        assert _nothing_arrives(sock)
        crl = _get(ca, path)
        assert _nothing_arrives(ca)  # a power cut now would bring this CRL's number again

        app.disk.hold.set()
        assert answers.next()[0] == 200
        status, _, body = crl.next()
    assert status == 200, body
    assert _crl_number(_crl(body)) == before + 1 and len(list(_crl(body))) == 1  # the victim's certificate


def test_a_certificate_another_worker_committed_waits_for_a_sync_of_this_one(app, served):
    # The other worker's commit is not counted here (nothing of this process is pending), but
    # a sync of the WAL by this process makes it durable: fdatasync is per file.
    other = _worker(app.settings.data_dir)
    path = _ca_path(app, "certificate", "theirs.example.com")
    try:
        with ThreadServer(other.asgi, lane=other.asgi) as elsewhere, connect(elsewhere) as sock, _busy(elsewhere):
            answers = Answers(sock)
            sock.sendall(_associate("warm.example.com"))
            assert answers.next()[0] == 200

            _held(other)
            sock.sendall(_associate("theirs.example.com"))
            assert other.disk.waiting.wait(10), "the other worker's commit was never synced"
            assert _nothing_arrives(sock)  # held there: not on disk
            assert not app.deps.uow.wal.pending()
            syncs = _wal_syncs(app)

            _held(app)
            with connect(served) as ca, _busy(served):
                certificate = _get(ca, path)
                assert app.disk.waiting.wait(10), "this worker never synced the WAL"
                assert _nothing_arrives(ca)
                app.disk.hold.set()  # this worker's sync only: the other one's is still held
                status, _, body = certificate.next()
            assert status == 200, body
            assert x509.load_pem_x509_certificate(body).subject.rfc4514_string() == "CN=theirs.example.com"
            assert _wal_syncs(app) == syncs + 1

            other.disk.hold.set()
            assert answers.next()[0] == 200
    finally:
        other.disk.hold.set()
        other.close()


def test_a_disk_that_fails_to_sync_gets_the_ca_documents_503(app, served):
    with connect(served) as sock, connect(served) as ca:
        answers = Answers(sock)
        sock.sendall(_associate("node.example.com"))
        assert answers.next()[0] == 200
        assert _get(ca, _ca_path(app, "certificate", "node.example.com")).next()[0] == 200

        app.disk.fail = True
        for path in (_ca_path(app, "certificate", "node.example.com"), _ca_path(app, "certificate_revocation_list", "ca")):
            status, _, body = _get(ca, path).next()
            assert status == 503 and b"sync" in body and b"-----BEGIN" not in body, body


def test_the_aws_cli_model_does_not_wait_for_the_disk(app, served):
    # A packaged file: no commit behind it.
    _held(app)
    try:
        with connect(served) as sock:
            status, _, body = _get(sock, f"/aws-cli/models/opsworks-cm/{spec.API_VERSION}/service-2.json").next()
        assert status == 200 and json.loads(body)["metadata"]["apiVersion"] == spec.API_VERSION
        assert not app.disk.waiting.is_set()
    finally:
        app.disk.hold.set()


def test_without_group_commit_a_read_waits_for_nothing():
    durable = DurableAnswers(None)
    assert asyncio.run(durable.read_on_disk()) is True
    durable.close()
