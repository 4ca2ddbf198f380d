"""``opscm serve`` over HTTPS: a self-signed certificate made once and kept, or the operator's
files; boto3 (``verify=``) and the real aws CLI (``AWS_CA_BUNDLE``) trust it."""

import ipaddress
import stat
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import SSLError
from cryptography import x509

from tests.support.awscli import aws_executable, cli_home, node_env
from tests.support.server import start_server


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("tls"), "--ca-key-bits", "2048", "--tls-self-signed",
                          "--endpoint-host", "opscm.example.test")
    yield server
    server.stop()


def test_self_signed_certificate_is_made_private_and_named(https):
    assert https.url.startswith("https://127.0.0.1:")
    assert any(f"self-signed TLS certificate: {https.ca_bundle}" in line for line in https.output)
    key = https.data_dir / "tls-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((https.data_dir / "tls-cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) >= {"localhost", "opscm.example.test"}
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


def test_boto3_trusts_it_with_verify(https):
    assert https.client().describe_servers()["Servers"] == []
    key_id, secret = https.access_key
    untrusting = boto3.client("opsworkscm", region_name="us-east-1", endpoint_url=https.url,
                              aws_access_key_id=key_id, aws_secret_access_key=secret)
    with pytest.raises(SSLError):
        untrusting.describe_servers()


@pytest.mark.awscli
def test_aws_cli_trusts_it_with_aws_ca_bundle(https, tmp_path):
    env = node_env(cli_home(tmp_path), https)
    command = [aws_executable(), "opsworks-cm", "describe-servers", "--region", "us-east-1", "--output", "json"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "SSL" in refused.stderr
    trusted = subprocess.run(command, env={**env, "AWS_CA_BUNDLE": https.ca_bundle}, capture_output=True, text=True, timeout=60)
    assert trusted.returncode == 0, trusted.stderr
    assert '"Servers": []' in trusted.stdout


def test_the_certificate_is_kept_across_restarts(tmp_path):
    first = start_server(tmp_path, "--ca-key-bits", "2048", "--tls-self-signed")
    pem = (tmp_path / "tls-cert.pem").read_bytes()
    assert first.stop() == 0
    second = start_server(tmp_path, "--ca-key-bits", "2048", "--tls-self-signed")
    try:
        assert (tmp_path / "tls-cert.pem").read_bytes() == pem
        assert second.client().describe_servers()["Servers"] == []
    finally:
        second.stop()
    # Served under a name the certificate does not cover: a new one that does.
    third = start_server(tmp_path, "--ca-key-bits", "2048", "--tls-self-signed", "--endpoint-host", "other.example.test")
    try:
        assert (tmp_path / "tls-cert.pem").read_bytes() != pem
    finally:
        third.stop()


def test_operator_certificate_files(https, tmp_path):
    server = start_server(tmp_path / "data", "--ca-key-bits", "2048",
                          "--tls-cert", str(https.data_dir / "tls-cert.pem"), "--tls-key", str(https.data_dir / "tls-key.pem"))
    try:
        assert server.url.startswith("https://")
        assert not any("self-signed TLS certificate" in line for line in server.output)
        key_id, secret = server.access_key
        client = boto3.client("opsworkscm", region_name="us-east-1", endpoint_url=server.url,
                              aws_access_key_id=key_id, aws_secret_access_key=secret,
                              verify=https.ca_bundle)  # the pair is the other server's
        assert client.describe_servers()["Servers"] == []
    finally:
        server.stop()


def test_a_certificate_that_cannot_be_used_is_one_line(tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    command = ["opscm", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
               "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr == f"opscm: the TLS certificate {tmp_path}/cert.pem is not a PEM certificate\n"
