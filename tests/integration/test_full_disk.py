"""A full disk under a served opscm: clear 503 answers (never a 500), a FAILED backup with its
reason, nothing lost, and everything works again once there is room."""

import contextlib
import os
import subprocess
import uuid

from botocore.exceptions import ClientError

from tests.support.requests import create_server_params, public_pem, rsa_key
from tests.support.requirements import require
from tests.support.server import start_server, wait_for_status


@contextlib.contextmanager
def small_disk(path, size="16m"):
    require(os.geteuid() == 0, "root, to mount a small tmpfs")
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True)
    require(mounted.returncode == 0, f"mount -t tmpfs ({mounted.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk):
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    return filler


def _chef(key):
    return [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": key}]


def test_a_full_disk_is_a_clear_retryable_answer(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        opscm = start_server(disk / "data", "--schedule-interval", "0", "--health-interval", "0")
        try:
            client = opscm.client()
            name = f"full-{uuid.uuid4().hex[:6]}"
            client.create_server(**create_server_params(name, "ChefAutomate"))
            wait_for_status(client, name)
            first = client.associate_node(ServerName=name, NodeName="before", EngineAttributes=_chef(public_pem(rsa_key())))
            filler = _fill(disk)

            answers = []
            for i in range(5):
                try:
                    client.associate_node(ServerName=name, NodeName=f"n{i}", EngineAttributes=_chef(public_pem(rsa_key())))
                    answers.append("ok")
                except ClientError as error:
                    answers.append((error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]))
            assert ("ServiceUnavailable", 503) in answers, answers
            assert all(a == "ok" or a == ("ServiceUnavailable", 503) for a in answers), answers
            failed = next(a for a in answers if a != "ok")
            try:
                backup = client.create_backup(ServerName=name)["Backup"]
            except ClientError as error:
                assert error.response["Error"]["Code"] == "ServiceUnavailable"
                backup = None
            assert "Traceback" not in "".join(opscm.output)
            assert failed

            filler.unlink()
            if backup is not None:
                wait_for_status(client, name)
                status = client.describe_backups(BackupId=backup["BackupId"])["Backups"][0]
                assert status["Status"] in ("FAILED", "OK")
                if status["Status"] == "FAILED":
                    assert "No space left on device" in status["StatusDescription"]
            # Nothing was lost, and the server works again.
            described = client.describe_node_association_status(
                ServerName=name, NodeAssociationStatusToken=first["NodeAssociationStatusToken"]
            )
            assert described["NodeAssociationStatus"] == "SUCCESS"
            client.associate_node(ServerName=name, NodeName="after", EngineAttributes=_chef(public_pem(rsa_key())))
        finally:
            opscm.stop()
