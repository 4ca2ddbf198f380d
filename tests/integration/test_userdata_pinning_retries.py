"""The exported user data script against opscm over self-signed TLS (it trusts the certificate it
carries and no other), with a Puppet CA that is not the pinned one (it installs nothing), and
against a server that is busy (it waits and retries; other errors stop it at once)."""

import base64
import io
import os
import re
import subprocess
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from opscm.app.tls import self_signed
from opscm.domain.fingerprints import certificate_fingerprints
from opscm.mock import OpsWorksCMMock
from tests.support.asgi_server import Recorder, ThreadServer
from tests.support.awscli import aws_executable, cli_home
from tests.support.requests import create_server_params
from tests.support.server import start_server, wait_for_status
from tests.support.userdata import export_userdata, run_script, sandbox_env

pytestmark = [pytest.mark.awscli, pytest.mark.openssl]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return cli_home(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("tls"), "--ca-key-bits", "2048", "--tls-self-signed")
    yield server
    server.stop()


def _other_certificate(tmp_path: Path) -> str:
    other = tmp_path / "other-tls"
    other.mkdir()
    return self_signed(other, ["127.0.0.1", "localhost"]).cert.read_text()


# ---- opscm's own certificate ---------------------------------------------------------------

def test_chef_script_trusts_the_certificate_it_carries(https, home, tmp_path):
    client = https.client()
    client.create_server(**create_server_params("tls-chef", "ChefAutomate"))
    wait_for_status(client, "tls-chef")
    script = export_userdata(client, "tls-chef")
    pem = https.data_dir.joinpath("tls-cert.pem").read_text()
    assert pem.strip() in script
    # A bare home: the aws CLI's model too is fetched from opscm, over the pinned TLS.
    bare_home = tmp_path / "bare-home"
    bare_home.mkdir()
    config = tmp_path / "etc-chef"
    env = sandbox_env(bare_home, https, OPSCM_NODE_NAME="tls-node", OPSCM_CHEF_CONFIG_DIR=str(config))
    assert "AWS_CA_BUNDLE" not in env
    result = run_script(script, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (config / "client.pem").exists() and (config / "client.rb").exists()
    assert (bare_home / ".aws/models/opsworks-cm/2016-11-01/waiters-2.json").exists()

    # The same script carrying another certificate: opscm's is refused, nothing is installed.
    tampered = script.replace(pem.strip(), _other_certificate(tmp_path).strip())
    config2 = tmp_path / "etc-chef-2"
    env2 = sandbox_env(home, https, OPSCM_NODE_NAME="tls-node-2", OPSCM_CHEF_CONFIG_DIR=str(config2))
    refused = run_script(tampered, env2, tmp_path)
    assert refused.returncode != 0
    assert "SSL" in refused.stderr or "certificate verify failed" in refused.stderr, refused.stderr
    assert not (config2 / "client.pem").exists() and not (config2 / "client.rb").exists()


def test_export_and_kit_state_the_fingerprints(https):
    client = https.client()
    created = client.create_server(**create_server_params("tls-kit", "Puppet"))["Server"]
    kit_attribute = {a["Name"]: a["Value"] for a in created["EngineAttributes"]}["PUPPET_STARTER_KIT"]
    readme = zipfile.ZipFile(io.BytesIO(base64.b64decode(kit_attribute))).read("tls-kit-starter-kit/README.md").decode()
    api_print = certificate_fingerprints(https.data_dir.joinpath("tls-cert.pem").read_text())
    cert = x509.load_pem_x509_certificate(https.data_dir.joinpath("tls-cert.pem").read_bytes())
    assert api_print == cert.fingerprint(hashes.SHA256()).hex(":").upper()  # as openssl prints it
    assert api_print in readme
    wait_for_status(client, "tls-kit")
    ca_pem = {a["Name"]: a["Value"] for a in client.describe_servers(ServerName="tls-kit")["Servers"][0]["EngineAttributes"]}[
        "PUPPET_API_CA_CERT"]
    assert certificate_fingerprints(ca_pem) in readme
    assert f"puppet_ca_fingerprint='{certificate_fingerprints(ca_pem)}'" in export_userdata(client, "tls-kit")


@pytest.mark.puppet
def test_puppet_script_over_pinned_tls(https, home, tmp_path):
    client = https.client()
    client.create_server(**create_server_params("tls-puppet", "Puppet"))
    wait_for_status(client, "tls-puppet")
    root = tmp_path / "puppet"
    confdir, ssldir = root / "conf", root / "ssl"
    confdir.mkdir(parents=True)
    (confdir / "puppet.conf").write_text("[main]\nkeylength = 2048\n")
    env = sandbox_env(home, https, OPSCM_NODE_NAME="tls-puppet-node", OPSCM_PUPPET_CONFDIR=str(confdir),
                      OPSCM_PUPPET_SSLDIR=str(ssldir))
    result = run_script(export_userdata(client, "tls-puppet"), env, tmp_path)
    assert result.returncode == 0, result.stderr
    ca = {a["Name"]: a["Value"] for a in client.describe_servers(ServerName="tls-puppet")["Servers"][0]["EngineAttributes"]}
    assert (ssldir / "certs" / "ca.pem").read_text().strip() == ca["PUPPET_API_CA_CERT"].strip()
    assert (ssldir / "crl.pem").read_text().startswith("-----BEGIN X509 CRL-----")  # fetched over the pinned TLS
    assert (ssldir / "certs" / "tls-puppet-node.pem").exists()


# ---- the in-process mock behind a local HTTP bridge: its jobs run when the test says ---------

@pytest.fixture
def mock():
    with OpsWorksCMMock(run_jobs=False) as opscm:
        yield opscm


def _mock_client(mock):
    client = boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    mock.attach(client)
    return client


def _bridge_env(home: Path, url: str, **variables) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home), AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_CONFIG_FILE=str(home / "no-config"),
        PATH=f"{Path(aws_executable()).parent}:{env['PATH']}", OPSCM_API_URL=url,
        OPSCM_SKIP_INSTALL="1", OPSCM_FIRST_RUN="0", **variables,
    )
    return env


def _ready_server(mock, name: str, engine: str) -> str:
    client = _mock_client(mock)
    client.create_server(**create_server_params(name, engine))
    mock.wait_for_jobs()
    return export_userdata(client, name)


def test_puppet_script_refuses_a_ca_that_is_not_pinned(mock, home, tmp_path):
    script = _ready_server(mock, "pinned", "Puppet")
    impostor = _other_certificate(tmp_path)

    def swap_ca(operation, answer):
        if operation == "DescribeServers":
            for server in answer["Servers"]:
                for attribute in server.get("EngineAttributes", []):
                    if attribute["Name"] == "PUPPET_API_CA_CERT":
                        attribute["Value"] = impostor
        return answer

    recorder = Recorder(mock.app.asgi, rewrite=swap_ca)
    ssldir = tmp_path / "ssl"
    with ThreadServer(recorder) as bridge:
        env = _bridge_env(home, bridge.url, OPSCM_NODE_NAME="victim", OPSCM_PUPPET_CONFDIR=str(tmp_path / "conf"),
                          OPSCM_PUPPET_SSLDIR=str(ssldir))
        result = run_script(script, env, tmp_path)
    assert result.returncode != 0
    assert "is not the one this script pins" in result.stderr and "nothing was installed" in result.stderr
    assert not ssldir.exists(), "no key, CSR or certificate was written"
    assert recorder.count("AssociateNode") == 0


def _start_script(script: str, env: dict, cwd: Path) -> subprocess.Popen:
    path = cwd / "userdata.sh"
    path.write_text(script)
    return subprocess.Popen(["bash", str(path)], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)


def test_script_waits_while_the_server_is_backing_up(mock, home, tmp_path):
    script = _ready_server(mock, "busy", "ChefAutomate")
    client = _mock_client(mock)
    client.create_backup(ServerName="busy")  # BACKING_UP until the test runs the backup job
    assert client.describe_servers(ServerName="busy")["Servers"][0]["Status"] == "BACKING_UP"
    recorder = Recorder(mock.app.asgi)
    config = tmp_path / "etc-chef"
    with ThreadServer(recorder) as bridge:
        env = _bridge_env(home, bridge.url, OPSCM_NODE_NAME="patient", OPSCM_CHEF_CONFIG_DIR=str(config),
                          OPSCM_RETRY_SECONDS="120")
        process = _start_script(script, env, tmp_path)
        try:
            _wait_until(lambda: recorder.count("AssociateNode", "InvalidStateException") >= 2, 30, "two refused tries")
            assert process.poll() is None, "the script must still be waiting"
            assert not (config / "client.pem").exists()
            mock.wait_for_jobs()  # the backup ends: HEALTHY again
            _stdout, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, stderr
    assert "(InvalidStateException)" in stderr and "trying again in" in stderr
    assert recorder.count("AssociateNode", None) == recorder.count("AssociateNode", "InvalidStateException") + 1
    assert (config / "client.pem").exists()


def test_retries_end_after_opscm_retry_seconds(mock, home, tmp_path):
    script = _ready_server(mock, "stuck", "ChefAutomate")
    _mock_client(mock).create_backup(ServerName="stuck")  # and it never ends
    recorder = Recorder(mock.app.asgi)
    with ThreadServer(recorder) as bridge:
        env = _bridge_env(home, bridge.url, OPSCM_NODE_NAME="gives-up", OPSCM_CHEF_CONFIG_DIR=str(tmp_path / "c"),
                          OPSCM_RETRY_SECONDS="3")
        result = run_script(script, env, tmp_path, timeout=60)
    assert result.returncode != 0
    assert "InvalidStateException" in result.stderr.splitlines()[-1] or "InvalidStateException" in result.stderr
    assert recorder.count("AssociateNode", "InvalidStateException") >= 2
    # The pauses end at the deadline (before, the last one could run up to 64 s past it).
    pauses = [int(seconds) for seconds in re.findall(r"trying again in (\d+)s", result.stderr)]
    assert pauses and sum(pauses) <= 3


def test_a_validation_error_is_not_retried(mock, home, tmp_path):
    script = _ready_server(mock, "strict", "ChefAutomate").replace("chef_organization='default'", "chef_organization='other'")
    recorder = Recorder(mock.app.asgi)
    with ThreadServer(recorder) as bridge:
        env = _bridge_env(home, bridge.url, OPSCM_NODE_NAME="invalid", OPSCM_CHEF_CONFIG_DIR=str(tmp_path / "c"))
        result = run_script(script, env, tmp_path, timeout=60)
    assert result.returncode != 0
    assert "ValidationException" in result.stderr and "trying again" not in result.stderr
    assert recorder.calls.count(("AssociateNode", 400, "ValidationException")) == 1
    assert recorder.count("AssociateNode") == 1
