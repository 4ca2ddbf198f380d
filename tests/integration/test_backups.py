"""Backups and restore: CreateBackup, DescribeBackups, DeleteBackup, RestoreServer, CreateServer from a
backup, automated backups and retention, through boto3 against a served opscm (or the in-process mock
where timing would make a served check racy)."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import stat
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from opscm.app.secret_box import AesGcmBox, load_master_key
from opscm.mock import OpsWorksCMMock
from opscm.domain.backups import server_name_of_backup
from opscm.service import backups, schedule
from opscm.service.context import Caller
from tests.support import openssl
from tests.support.clock import FakeClock
from tests.support.console import console_app, healthy_server
from tests.support.mock_client import mock_client, set_server_status
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key
from tests.support.server import start_server, wait_for_status, wait_until_gone

REGION = "eu-north-1"  # a region of this module's own: its servers do not count against others' limits


@pytest.fixture(scope="module")
def bclient(opscm):
    return opscm.client(REGION)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def _attrs(server: dict) -> dict:
    return {a["Name"]: a["Value"] for a in server.get("EngineAttributes", [])}


def _server(client, name: str) -> dict:
    return client.describe_servers(ServerName=name)["Servers"][0]


@contextmanager
def _healthy_server(client, engine: str, prefix: str | None = None, **extra):
    name = _name(prefix or engine.lower()[:6])
    client.create_server(**create_server_params(name, engine, **extra))
    try:
        wait_for_status(client, name)
        yield name
    finally:
        try:
            client.delete_server(ServerName=name)
        except ClientError:
            pass


@contextmanager
def _held_jobs(*servers: tuple[str, str], **mock_options):
    """An in-process mock whose jobs run only when the test says so, with these servers HEALTHY."""
    with OpsWorksCMMock(run_jobs=False, **mock_options) as mock:
        client = mock_client(mock)
        for name, engine in servers:
            client.create_server(**create_server_params(name, engine))
        mock.app.jobs.run_pending()
        yield mock, client


def _wait_backup(client, backup_id: str, wanted: str = "OK", timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        backup = client.describe_backups(BackupId=backup_id)["Backups"][0]
        if backup["Status"] == wanted:
            return backup
        assert backup["Status"] == "IN_PROGRESS", backup
        assert time.monotonic() < deadline, f"backup {backup_id} is still {backup['Status']}"
        time.sleep(0.05)


def _backup(client, name: str, **extra) -> dict:
    backup = client.create_backup(ServerName=name, **extra)["Backup"]
    done = _wait_backup(client, backup["BackupId"])
    wait_for_status(client, name)
    return done


def _associate_puppet(client, server: str, node: str) -> str:
    token = client.associate_node(
        ServerName=server, NodeName=node, EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
    )["NodeAssociationStatusToken"]
    status = client.describe_node_association_status(ServerName=server, NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"
    return status["EngineAttributes"][0]["Value"]


def _disassociate_puppet(client, server: str, node: str) -> None:
    client.disassociate_node(ServerName=server, NodeName=node)


def _chef_attributes(pem: str | None = None) -> list[dict]:
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
    if pem:
        attributes.append({"Name": "CHEF_NODE_PUBLIC_KEY", "Value": pem})
    return attributes


def _crl_pem(client, name: str) -> str:
    response = httpx.get(_attrs(_server(client, name))["PUPPET_API_CRL_URL"])
    assert response.status_code == 200
    return response.text


def _crl_number(crl_pem: str) -> int:
    crl = x509.load_pem_x509_crl(crl_pem.encode())
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _serial(cert_pem: str) -> int:
    return x509.load_pem_x509_certificate(cert_pem.encode()).serial_number


def _verify(tmp_path: Path, ca: str, cert: str, crl: str):
    directory = tmp_path / uuid.uuid4().hex
    directory.mkdir()
    return openssl.verify(directory, ca, cert, crl)


def _server_id(server: dict) -> str:
    return server["ServerArn"].rsplit("/", 1)[1]


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "opscm.db")


def _path_of(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file"
    return Path(url2pathname(parts.path))


# --- CreateBackup / DescribeBackups / DeleteBackup ----------------------------------------------


def test_backup_lifecycle_and_the_stored_snapshot(opscm, bclient):
    with _healthy_server(bclient, "Puppet") as name:
        server = _server(bclient, name)
        account = server["ServerArn"].split(":")[4]
        _associate_puppet(bclient, name, "web1.example.com")
        before = datetime.now(timezone.utc)
        created = bclient.create_backup(
            ServerName=name, Description="before the upgrade", Tags=[{"Key": "team", "Value": "ops"}]
        )["Backup"]
        assert created["Status"] == "IN_PROGRESS"
        backup_id = created["BackupId"]
        match = re.fullmatch(rf"{name}-(\d{{17}})", backup_id)
        assert match, backup_id
        stamp = datetime.strptime(match.group(1)[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        assert before - timedelta(seconds=2) <= stamp <= datetime.now(timezone.utc)
        assert created["BackupArn"] == f"arn:aws:opsworks-cm:{REGION}:{account}:backup/{backup_id}"
        assert created["BackupType"] == "MANUAL"
        assert created["Description"] == "before the upgrade"
        assert (created["Engine"], created["EngineModel"], created["EngineVersion"]) == ("Puppet", "Monolithic", "2019")
        assert created["ServerName"] == name
        assert created["InstanceType"] == "m5.large" and created["ServiceRoleArn"] and created["InstanceProfileArn"]
        assert created["PreferredBackupWindow"] == server["PreferredBackupWindow"]
        assert created["UserArn"] == f"arn:aws:iam::{account}:root"

        backup = _wait_backup(bclient, backup_id)
        assert _server(bclient, name)["Status"] == "HEALTHY"
        assert backup["S3DataSize"] > 0
        assert bclient.list_tags_for_resource(ResourceArn=backup["BackupArn"])["Tags"] == [{"Key": "team", "Value": "ops"}]
        assert [b["BackupId"] for b in bclient.describe_backups(ServerName=name)["Backups"]] == [backup_id]
        assert backup_id in [b["BackupId"] for b in bclient.describe_backups()["Backups"]]
        messages = [e["Message"] for e in bclient.describe_events(ServerName=name)["ServerEvents"]]
        assert f"Backup {backup_id} completed." in messages

        # The snapshot: a file of the data dir, mode 0600, sealed: no private key in plain text.
        path = _path_of(backup["S3DataUrl"])
        assert path.parent == (opscm.data_dir / "backups").resolve()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = path.read_bytes()
        assert b"PRIVATE KEY" not in data and b"BEGIN CERTIFICATE" not in data
        box = AesGcmBox(load_master_key(opscm.data_dir))
        with _db(opscm.data_dir) as db:
            (key_enc,) = db.execute("select key_enc from puppet_cas where server_id = ?", (_server_id(server),)).fetchone()
        key_pem = box.open(key_enc)
        key_body = b"".join(key_pem.splitlines()[1:-1])
        assert key_body[100:160] not in data.replace(b"\n", b"")
        snapshot = json.loads(box.open(data))
        assert snapshot["ca"]["cert_pem"] == _attrs(server)["PUPPET_API_CA_CERT"]
        assert [c["certname"] for c in snapshot["certificates"]] == ["web1.example.com"]
        assert "PRIVATE KEY" not in json.dumps(snapshot), "the CA key stays sealed inside the snapshot too"

        bclient.delete_backup(BackupId=backup_id)
        assert not path.exists()
        assert _error(lambda: bclient.describe_backups(BackupId=backup_id))[0] == "ResourceNotFoundException"
        assert _error(lambda: bclient.delete_backup(BackupId=backup_id))[0] == "ResourceNotFoundException"
        assert _error(lambda: bclient.list_tags_for_resource(ResourceArn=backup["BackupArn"]))[0] == (
            "ResourceNotFoundException"
        )


def test_unknown_names(bclient):
    missing = "ResourceNotFoundException"
    assert _error(lambda: bclient.describe_backups(BackupId="nothing-20240101000000000"))[0] == missing
    assert _error(lambda: bclient.describe_backups(ServerName="nothing"))[0] == missing
    assert _error(lambda: bclient.create_backup(ServerName="nothing"))[0] == missing
    assert _error(lambda: bclient.delete_backup(BackupId="nothing-20240101000000000"))[0] == missing
    assert _error(lambda: bclient.restore_server(ServerName="nothing", BackupId="nothing-20240101000000000"))[0] == missing
    code, message = _error(
        lambda: bclient.create_server(**create_server_params("from-nothing", "Puppet", BackupId="nothing-20240101000000000"))
    )
    assert code == missing and message == "The requested resource does not exist, or access was denied."


def test_describe_backups_paginates_newest_first(opscm):
    client = opscm.client("ap-northeast-1")  # a region of its own: the unfiltered listing is this test's
    with _healthy_server(client, "ChefAutomate", "pages") as name:
        made = [_backup(client, name, Description=f"b{i}")["BackupId"] for i in range(5)]
        for filters in ({}, {"ServerName": name}):
            pages = list(client.get_paginator("describe_backups").paginate(**filters, PaginationConfig={"PageSize": 2}))
            assert [len(p["Backups"]) for p in pages] == [2, 2, 1]
            assert [b["BackupId"] for p in pages for b in p["Backups"]] == made[::-1], "newest first"
        token = client.describe_backups(MaxResults=2)["NextToken"]
        assert _error(lambda: client.describe_backups(NextToken="forged.token"))[0] == "InvalidNextTokenException"
        # A token belongs to its listing (filters, region).
        assert _error(lambda: client.describe_backups(ServerName=name, NextToken=token))[0] == "InvalidNextTokenException"
        assert _error(lambda: opscm.client(REGION).describe_backups(NextToken=token))[0] == "InvalidNextTokenException"


def test_fifty_manual_backups_at_most(opscm):
    client = opscm.client("ca-central-1")  # the limit counts per account and region
    with _healthy_server(client, "ChefAutomate", "limit") as name:
        for _ in range(50):
            backup = client.create_backup(ServerName=name)["Backup"]
            _wait_backup(client, backup["BackupId"])
            wait_for_status(client, name)
        code, message = _error(lambda: client.create_backup(ServerName=name))
        assert code == "LimitExceededException" and "50" in message
        assert _server(client, name)["Status"] == "HEALTHY", "a refused backup leaves the server as it was"
        attributes = {a["Name"]: a for a in client.describe_account_attributes()["Attributes"]}
        assert attributes["ManualBackupLimit"]["Used"] == 50
        client.delete_backup(BackupId=backup["BackupId"])
        _wait_backup(client, client.create_backup(ServerName=name)["Backup"]["BackupId"])


def test_backing_up_refuses_a_second_backup():
    # The served job finishes in milliseconds: the in-between state is checked in-process, jobs held back.
    with OpsWorksCMMock(run_jobs=False) as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("bk", "Puppet"))
        code, message = _error(lambda: client.create_backup(ServerName="bk"))
        assert code == "InvalidStateException" and "CREATING" in message
        mock.app.jobs.run_pending()
        backup = client.create_backup(ServerName="bk")["Backup"]
        assert _server(client, "bk")["Status"] == "BACKING_UP"
        code, message = _error(lambda: client.create_backup(ServerName="bk"))
        assert code == "InvalidStateException" and "BACKING_UP" in message
        code, message = _error(
            lambda: client.associate_node(
                ServerName="bk", NodeName="n1", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("n1")}]
            )
        )
        assert code == "InvalidStateException" and "BACKING_UP" in message
        assert _error(lambda: client.delete_backup(BackupId=backup["BackupId"]))[0] == "InvalidStateException"
        assert client.describe_backups(BackupId=backup["BackupId"])["Backups"][0]["Status"] == "IN_PROGRESS"
        mock.app.jobs.run_pending()
        assert client.describe_backups(BackupId=backup["BackupId"])["Backups"][0]["Status"] == "OK"
        assert _server(client, "bk")["Status"] == "HEALTHY"


def test_backup_failure_is_recorded_and_the_server_goes_back_to_work():
    with _held_jobs(("bf", "Puppet")) as (mock, client):
        backup = client.create_backup(ServerName="bf")["Backup"]
        (mock.app.settings.data_dir / "backups").write_text("")  # a file where the directory should be
        mock.app.jobs.run_pending()
        failed = client.describe_backups(BackupId=backup["BackupId"])["Backups"][0]
        assert failed["Status"] == "FAILED" and failed["StatusDescription"] == "the backup storage failed: File exists"
        assert "S3DataUrl" not in failed
        assert _server(client, "bf")["Status"] == "HEALTHY"
        messages = [e["Message"] for e in client.describe_events(ServerName="bf")["ServerEvents"]]
        assert any(m.startswith(f"Backup {backup['BackupId']} failed:") for m in messages)
        assert _error(lambda: client.restore_server(ServerName="bf", BackupId=backup["BackupId"]))[0] == (
            "ValidationException"
        )


# --- RestoreServer -------------------------------------------------------------------------------


def test_puppet_restore_keeps_the_ca_and_revokes_what_came_after(bclient, tmp_path):
    with _healthy_server(bclient, "Puppet", "restore") as name:
        kept = _associate_puppet(bclient, name, "kept.example.com")
        later_revoked = _associate_puppet(bclient, name, "later-revoked.example.com")
        revoked_before = _associate_puppet(bclient, name, "revoked-before.example.com")
        _disassociate_puppet(bclient, name, "revoked-before.example.com")
        token = bclient.associate_node(
            ServerName=name, NodeName="tok", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("tok")}]
        )["NodeAssociationStatusToken"]
        server = _server(bclient, name)
        ca = _attrs(server)["PUPPET_API_CA_CERT"]
        backup = _backup(bclient, name)

        after = _associate_puppet(bclient, name, "after.example.com")  # an association made after the backup
        _disassociate_puppet(bclient, name, "later-revoked.example.com")  # a revocation made after the backup
        crl_before = _crl_pem(bclient, name)
        assert openssl.verify(tmp_path, ca, after, crl_before).returncode == 0

        restoring = bclient.restore_server(ServerName=name, BackupId=backup["BackupId"])["Server"]
        assert restoring["Status"] == "RESTORING"
        restored = wait_for_status(bclient, name)
        assert restored["Endpoint"] == server["Endpoint"] and restored["ServerArn"] == server["ServerArn"]
        assert _attrs(restored)["PUPPET_API_CA_CERT"] == ca, "the same CA"
        crl = _crl_pem(bclient, name)
        assert _crl_number(crl) > _crl_number(crl_before), "CRL numbers never go backwards"

        assert _verify(tmp_path, ca, kept, crl).returncode == 0, "issued before the backup: still valid"
        for revoked in (after, later_revoked, revoked_before):
            result = _verify(tmp_path, ca, revoked, crl)
            assert result.returncode != 0 and "revoked" in result.stdout + result.stderr
        # Serials never go backwards: the next certificate is not a reissue of a later one's serial.
        newest = _associate_puppet(bclient, name, "after-restore.example.com")
        assert _serial(newest) > _serial(after)
        assert _verify(tmp_path, ca, newest, _crl_pem(bclient, name)).returncode == 0
        # Association tokens of the server stay readable.
        status = bclient.describe_node_association_status(ServerName=name, NodeAssociationStatusToken=token)
        assert status["NodeAssociationStatus"] == "SUCCESS"
        messages = [e["Message"] for e in bclient.describe_events(ServerName=name)["ServerEvents"]]
        assert f"Server {name} restored from backup {backup['BackupId']}; it is HEALTHY." in messages
        assert f"Restore of server {name} from backup {backup['BackupId']} started." in messages


def test_chef_restore_brings_the_client_registry_back(opscm, bclient):
    with _healthy_server(bclient, "ChefAutomate", "chefrest") as name:
        bclient.update_server_engine_attributes(ServerName=name, AttributeName="OPSCM_NODE_NAME_POLICY", AttributeValue="REPLACE")
        server_id = _server_id(_server(bclient, name))
        first, second, rekeyed, later = (public_pem(rsa_key()) for _ in range(4))
        bclient.associate_node(ServerName=name, NodeName="first", EngineAttributes=_chef_attributes(first))
        bclient.associate_node(ServerName=name, NodeName="second", EngineAttributes=_chef_attributes(second))
        backup = _backup(bclient, name)
        bclient.associate_node(ServerName=name, NodeName="later", EngineAttributes=_chef_attributes(later))
        bclient.associate_node(ServerName=name, NodeName="first", EngineAttributes=_chef_attributes(rekeyed))
        bclient.disassociate_node(ServerName=name, NodeName="second", EngineAttributes=_chef_attributes())

        bclient.restore_server(ServerName=name, BackupId=backup["BackupId"], InstanceType="m5.xlarge")
        restored = wait_for_status(bclient, name)
        assert restored["InstanceType"] == "m5.xlarge"
        clients = _chef_clients(opscm.data_dir, server_id)
        assert set(clients) == {"first", "second"}, "the client registered after the backup is gone"
        assert clients["first"].split() == first.split(), "a re-keyed client has its old key back"
        assert clients["second"].split() == second.split()

        # A new server from the same backup gets the same registry.
        copy = _name("chefcopy")
        bclient.create_server(**create_server_params(copy, "ChefAutomate", BackupId=backup["BackupId"]))
        try:
            copied = wait_for_status(bclient, copy)
            assert set(_chef_clients(opscm.data_dir, _server_id(copied))) == {"first", "second"}
        finally:
            bclient.delete_server(ServerName=copy)


def _chef_clients(data_dir: Path, server_id: str) -> dict[str, str]:
    with _db(data_dir) as db:
        rows = db.execute("select name, public_key_pem from chef_clients where server_id = ?", (server_id,))
        return dict(rows.fetchall())


def test_restore_rules():
    with _held_jobs(("pup", "Puppet"), ("chef", "ChefAutomate"), ("other", "Puppet")) as (mock, client):
        other_backup = client.create_backup(ServerName="other")["Backup"]["BackupId"]
        mock.app.jobs.run_pending()
        code, message = _error(lambda: client.restore_server(ServerName="pup", BackupId=other_backup))
        assert code == "ValidationException" and "backup of server other" in message
        puppet_backup = client.create_backup(ServerName="pup")["Backup"]["BackupId"]
        code, message = _error(lambda: client.restore_server(ServerName="pup", BackupId=puppet_backup))
        assert code == "InvalidStateException" and "BACKING_UP" in message
        mock.app.jobs.run_pending()
        chef_backup = client.create_backup(ServerName="chef")["Backup"]["BackupId"]
        code, message = _error(lambda: client.restore_server(ServerName="pup", BackupId=chef_backup))
        assert code == "ValidationException" and "IN_PROGRESS" in message
        mock.app.jobs.run_pending()
        code, message = _error(lambda: client.restore_server(ServerName="pup", BackupId=chef_backup))
        assert code == "ValidationException" and "ChefAutomate" in message

        client.restore_server(ServerName="pup", BackupId=puppet_backup)
        code, message = _error(lambda: client.restore_server(ServerName="pup", BackupId=puppet_backup))
        assert code == "InvalidStateException" and "RESTORING" in message
        mock.app.jobs.run_pending()
        assert _server(client, "pup")["Status"] == "HEALTHY"

        for state, allowed in (("TERMINATED", True), ("CONNECTION_LOST", True), ("UNDER_MAINTENANCE", False)):
            set_server_status(mock, "pup", state)
            if allowed:
                assert client.restore_server(ServerName="pup", BackupId=puppet_backup)["Server"]["Status"] == "RESTORING"
                mock.app.jobs.run_pending()
                assert _server(client, "pup")["Status"] == "HEALTHY"
            else:
                code, message = _error(lambda: client.restore_server(ServerName="pup", BackupId=puppet_backup))
                assert code == "InvalidStateException" and state in message


def test_a_restore_that_cannot_read_its_backup_changes_nothing():
    with _held_jobs(("lost", "Puppet")) as (mock, client):
        backup = client.create_backup(ServerName="lost")["Backup"]
        mock.app.jobs.run_pending()
        ca = _attrs(_server(client, "lost"))["PUPPET_API_CA_CERT"]
        client.restore_server(ServerName="lost", BackupId=backup["BackupId"])
        _path_of(client.describe_backups(BackupId=backup["BackupId"])["Backups"][0]["S3DataUrl"]).unlink()
        mock.app.jobs.run_pending()
        server = _server(client, "lost")
        assert server["Status"] == "HEALTHY" and _attrs(server)["PUPPET_API_CA_CERT"] == ca
        messages = [e["Message"] for e in client.describe_events(ServerName="lost")["ServerEvents"]]
        assert messages[0] == (
            f"Restore from backup {backup['BackupId']} failed: The file of backup {backup['BackupId']} is not in this "
            "opscm's data dir."
        )


def test_a_backup_whose_file_is_damaged_or_gone_is_a_clear_refusal():
    """Before, CreateServer from it answered 500, and a restore's event said 'an internal error'."""
    with _held_jobs(("damaged", "Puppet")) as (mock, client):
        backup_id = client.create_backup(ServerName="damaged")["Backup"]["BackupId"]
        mock.app.jobs.run_pending()
        path = _path_of(client.describe_backups(BackupId=backup_id)["Backups"][0]["S3DataUrl"])
        sealed = bytearray(path.read_bytes())
        sealed[-1] ^= 1  # one bit: the seal no longer opens
        path.write_bytes(bytes(sealed))
        damaged = f"The file of backup {backup_id} cannot be opened: it is damaged, or sealed with another master key."
        params = create_server_params("copy", "Puppet", BackupId=backup_id)
        assert _error(lambda: client.create_server(**params)) == ("ValidationException", damaged)
        client.restore_server(ServerName="damaged", BackupId=backup_id)
        mock.app.jobs.run_pending()
        assert _server(client, "damaged")["Status"] == "HEALTHY"
        message = client.describe_events(ServerName="damaged")["ServerEvents"][0]["Message"]
        assert message == f"Restore from backup {backup_id} failed: {damaged}"
        path.unlink()
        code, message = _error(lambda: client.create_server(**params))
        assert (code, message) == ("ValidationException", f"The file of backup {backup_id} is not in this opscm's data dir.")


# --- CreateServer from a backup --------------------------------------------------------------------


def test_create_server_from_a_backup_has_the_same_ca(bclient, tmp_path):
    with _healthy_server(bclient, "Puppet", "source", PreferredBackupWindow="03:00", BackupRetentionCount=4) as name:
        issued = _associate_puppet(bclient, name, "node1.example.com")
        ca = _attrs(_server(bclient, name))["PUPPET_API_CA_CERT"]
        backup = _backup(bclient, name)
        backup_id = backup["BackupId"]

        code, message = _error(
            lambda: bclient.create_server(**create_server_params(_name("x"), "ChefAutomate", BackupId=backup_id))
        )
        assert code == "ValidationException" and "Puppet" in message
        code, message = _error(
            lambda: bclient.create_server(
                **create_server_params(
                    _name("x"),
                    "Puppet",
                    BackupId=backup_id,
                    EngineAttributes=[{"Name": "PUPPET_ADMIN_PASSWORD", "Value": "Sup3r#Secret"}],
                )
            )
        )
        assert code == "ValidationException" and "BackupId" in message

        copy = _name("copy")
        created = bclient.create_server(
            **create_server_params(copy, "Puppet", BackupId=backup_id, InstanceType="c5.large")
        )["Server"]
        try:
            assert created["Status"] == "CREATING"
            assert "PUPPET_ADMIN_PASSWORD" not in _attrs(created), "the backup's password stays; none is made"
            server = wait_for_status(bclient, copy)
            assert (server["Engine"], server["EngineModel"], server["EngineVersion"]) == ("Puppet", "Monolithic", "2019")
            assert _attrs(server)["PUPPET_API_CA_CERT"] == ca
            assert server["PreferredBackupWindow"] == "03:00" and server["BackupRetentionCount"] == 4, "from the backup"
            assert server["InstanceType"] == "c5.large", "from the request"
            crl = _crl_pem(bclient, copy)
            assert _verify(tmp_path, ca, issued, crl).returncode == 0, "certificates of the backup verify on the copy"
            fresh = _associate_puppet(bclient, copy, "node2.example.com")
            assert _verify(tmp_path, ca, fresh, _crl_pem(bclient, copy)).returncode == 0
            messages = [e["Message"] for e in bclient.describe_events(ServerName=copy)["ServerEvents"]]
            assert f"Server {copy} is made from backup {backup_id}." in messages
        finally:
            bclient.delete_server(ServerName=copy)


# --- automated backups, retention, DeleteServer ------------------------------------------------------


def test_automated_backup_in_its_window_and_delete_server_keeps_manual_backups(tmp_path):
    served = start_server(tmp_path / "data", "--ca-key-bits", "2048", "--schedule-interval", "1")
    try:
        client = served.client()
        now = datetime.now(timezone.utc)
        elsewhere = (now + timedelta(days=3)).strftime("%a:%H:%M")  # no maintenance during the test
        name, disabled = "auto", "noauto"
        for server, disable in ((name, False), (disabled, True)):
            client.create_server(
                **create_server_params(
                    server, "ChefAutomate", PreferredMaintenanceWindow=elsewhere, DisableAutomatedBackup=disable
                )
            )
            wait_for_status(client, server)
        manual = _backup(client, name)
        for server in (name, disabled):
            client.update_server(ServerName=server, PreferredBackupWindow=datetime.now(timezone.utc).strftime("%H:%M"))

        deadline = time.monotonic() + 30
        while True:
            automated = [b for b in client.describe_backups(ServerName=name)["Backups"] if b["BackupType"] == "AUTOMATED"]
            if automated and automated[0]["Status"] == "OK":
                break
            assert time.monotonic() < deadline, "no automated backup in the window"
            time.sleep(0.2)
        assert len(automated) == 1, "one per window"
        assert re.fullmatch(rf"{name}-\d{{17}}", automated[0]["BackupId"])
        time.sleep(2.5)  # a few more ticks: still one per window, none for the server that disabled them
        assert len([b for b in client.describe_backups(ServerName=name)["Backups"] if b["BackupType"] == "AUTOMATED"]) == 1
        assert client.describe_backups(ServerName=disabled)["Backups"] == []

        automated_file = _path_of(automated[0]["S3DataUrl"])
        assert automated_file.exists()
        client.delete_server(ServerName=name)
        wait_until_gone(client, name)
        left = client.describe_backups(ServerName=name)["Backups"]
        assert [b["BackupId"] for b in left] == [manual["BackupId"]], "manual backups outlive their server"
        assert not automated_file.exists(), "automated ones go with it, files included"
        assert _path_of(left[0]["S3DataUrl"]).exists()
    finally:
        served.stop()


def test_retention_keeps_the_newest_automated_backups():
    clock = FakeClock(datetime(2026, 3, 2, 4, 10, tzinfo=timezone.utc))
    with OpsWorksCMMock(clock=clock, run_jobs=False) as mock:
        client = mock_client(mock)
        client.create_server(
            **create_server_params(
                "kept", "Puppet", PreferredBackupWindow="04:00", PreferredMaintenanceWindow="Sun:20:00", BackupRetentionCount=2
            )
        )
        mock.app.jobs.run_pending()
        made = []
        for day in range(4):
            assert schedule.tick(mock.app.deps) == 1
            assert schedule.tick(mock.app.deps) == 0, "once per window"
            mock.app.jobs.run_pending()
            backups = client.describe_backups(ServerName="kept")["Backups"]
            made.append(next(b for b in backups if b["BackupType"] == "AUTOMATED")["BackupId"])
            if day == 1:
                clock.advance(timedelta(minutes=1))
                manual = _backup_in_mock(mock, client, "kept")
            clock.advance(timedelta(days=1))
        backups = client.describe_backups(ServerName="kept")["Backups"]
        assert [b["BackupId"] for b in backups if b["BackupType"] == "AUTOMATED"] == made[:1:-1]
        assert manual in [b["BackupId"] for b in backups], "retention never touches manual backups"
        files = sorted(p.name for p in (mock.app.settings.data_dir / "backups").iterdir())
        assert files == sorted(f"{b['BackupId']}.backup" for b in backups)
        messages = [e["Message"] for e in client.describe_events(ServerName="kept")["ServerEvents"]]
        assert any(m.startswith("Deleted automated backup(s) beyond the retention count of 2") for m in messages)


def _backup_in_mock(mock, client, name: str) -> str:
    backup_id = client.create_backup(ServerName=name)["Backup"]["BackupId"]
    mock.app.jobs.run_pending()
    return backup_id


# --- restarts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("claimed", [False, True], ids=["pending", "claimed-by-a-dead-worker"])
def test_a_backup_interrupted_by_a_restart_ends_ok(tmp_path, claimed):
    clock = FakeClock()
    with _held_jobs(("crash", "Puppet"), data_dir=tmp_path, clock=clock) as (mock, client):
        backup_id = client.create_backup(ServerName="crash")["Backup"]["BackupId"]
        if claimed:  # a worker took the job and died with it: its lease must run out first
            with mock.app.deps.uow() as uow:
                assert uow.jobs.claim(clock.now(), 120.0) is not None
                uow.commit()
    # The process is gone with the server BACKING_UP; a new one on the same data dir finishes the work.
    clock.advance(timedelta(minutes=5))
    with OpsWorksCMMock(data_dir=tmp_path, clock=clock) as mock:
        mock.wait_for_jobs()
        client = mock_client(mock)
        assert client.describe_backups(BackupId=backup_id)["Backups"][0]["Status"] == "OK"
        assert _server(client, "crash")["Status"] == "HEALTHY"


def test_a_served_opscm_finishes_a_backup_left_by_a_killed_process(tmp_path):
    # The state a kill -9 right after CreateBackup's commit leaves (the job itself takes milliseconds,
    # so killing a process inside it cannot be timed): made in-process, then served for real.
    with _held_jobs(("killed", "ChefAutomate"), data_dir=tmp_path) as (mock, client):
        backup_id = client.create_backup(ServerName="killed")["Backup"]["BackupId"]
    served = start_server(tmp_path, "--ca-key-bits", "2048")
    try:
        deadline = time.monotonic() + 30
        while True:
            with _db(tmp_path) as db:
                (status,) = db.execute("select status from backups where id = ?", (backup_id,)).fetchone()
                (server,) = db.execute("select status from servers where name = 'killed'").fetchone()
            if (status, server) == ("OK", "HEALTHY"):
                break
            assert time.monotonic() < deadline, (status, server)
            time.sleep(0.1)
        assert (tmp_path / "backups" / f"{backup_id}.backup").exists()
    finally:
        served.stop(signal.SIGKILL)


def test_servers_of_one_name_in_other_accounts_or_regions_get_their_own_backup_ids(tmp_path):
    """AWS's ids hold the server's name and the millisecond only: servers named alike in other
    accounts or regions, backed up in one tick, took one id (the key of every backup): the
    tick failed for every server of every account, all through the window."""
    clock = FakeClock(datetime(2030, 1, 7, 7, 0, tzinfo=timezone.utc))  # before the default 08:00 window
    callers = [Caller("111111111111", "us-east-1"), Caller("222222222222", "us-east-1"), Caller("111111111111", "us-west-2")]
    with console_app(tmp_path, clock) as (app, _):
        for caller in callers:
            healthy_server(app, caller, "prod")
        healthy_server(app, callers[0], "unrelated")
        clock.set(datetime(2030, 1, 7, 8, 5, tzinfo=timezone.utc))  # in every server's window
        assert schedule.tick(app.deps) == 4
        ids = [b["BackupId"] for caller in callers for b in backups.describe_backups(app.deps, caller, {"ServerName": "prod"})["Backups"]]
        assert len(ids) == len(set(ids)) == 3
        assert all(server_name_of_backup(backup_id) == "prod" for backup_id in ids)


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs, no ``except Exception`` sees it."""


def test_a_backup_whose_process_died_after_storing_its_file_finishes_when_taken_over(tmp_path, monkeypatch):
    """Before, the job run again found the server back at work and failed the backup, leaving its
    file behind for good."""
    clock = FakeClock()
    mock = OpsWorksCMMock(run_jobs=False, data_dir=tmp_path, clock=clock)
    client = mock_client(mock)
    client.create_server(**create_server_params("crash", "Puppet"))
    mock.app.jobs.run_pending()
    backup_id = client.create_backup(ServerName="crash")["Backup"]["BackupId"]
    finish = backups._finish

    def killed_once_stored(deps, server_id, payload, *, location=None, **options):
        if location:
            raise _Killed()
        return finish(deps, server_id, payload, location=location, **options)

    monkeypatch.setattr(backups, "_finish", killed_once_stored)
    with pytest.raises(_Killed):
        mock.app.jobs.run_pending()
    monkeypatch.setattr(backups, "_finish", finish)
    mock.close()
    assert (tmp_path / "backups" / f"{backup_id}.backup").exists()

    clock.advance(timedelta(minutes=5))  # past the dead process's lease on the job
    with OpsWorksCMMock(data_dir=tmp_path, clock=clock) as mock:
        mock.wait_for_jobs()
        client = mock_client(mock)
        backup = client.describe_backups(BackupId=backup_id)["Backups"][0]
        assert backup["Status"] == "OK" and backup["S3DataSize"] > 0
        assert _server(client, "crash")["Status"] == "HEALTHY"


def test_a_store_error_while_recording_a_stored_backup_fails_it_cleanly(tmp_path, monkeypatch):
    """Before, the backup stayed IN_PROGRESS for ever (never deletable) and its server FAILED."""
    with OpsWorksCMMock(run_jobs=False, data_dir=tmp_path) as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("hiccup", "Puppet"))
        mock.app.jobs.run_pending()
        backup_id = client.create_backup(ServerName="hiccup")["Backup"]["BackupId"]
        finish, calls = backups._finish, []

        def locked_once(*args, **options):
            calls.append(options)
            if len(calls) == 1:
                raise sqlite3.OperationalError("database is locked")
            return finish(*args, **options)

        monkeypatch.setattr(backups, "_finish", locked_once)
        mock.app.jobs.run_pending()
        backup = client.describe_backups(BackupId=backup_id)["Backups"][0]
        assert backup["Status"] == "FAILED" and _server(client, "hiccup")["Status"] == "HEALTHY"
        assert not (tmp_path / "backups" / f"{backup_id}.backup").exists(), "a failed backup's file goes with it"
        client.delete_backup(BackupId=backup_id)
