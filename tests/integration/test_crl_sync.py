"""``opscm crl-sync`` against a local HTTP(S) server serving CRLs made by opscm's CA."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from opscm.crl_sync import CrlSource, CrlSyncError, checked_crl, sync_once
from opscm.pki import CaSigner, create_ca
from tests.support.http_files import DocumentServer
from tests.support.waiting import wait_for

NOW = datetime.now(timezone.utc)
CRL_PATH = "/certificate_revocation_list/ca"


@pytest.fixture(scope="module")
def signer() -> CaSigner:
    ca = create_ca("crl-sync", now=NOW, key_bits=2048)
    return CaSigner(ca.key_pem, ca.cert_pem)


@pytest.fixture(scope="module")
def other_signer() -> CaSigner:
    # Same CA name, another key: only the signature tells them apart.
    ca = create_ca("crl-sync", now=NOW, key_bits=2048)
    return CaSigner(ca.key_pem, ca.cert_pem)


@pytest.fixture
def out_dir(tmp_path, signer) -> Path:
    directory = tmp_path / "ssl"
    directory.mkdir()
    (directory / "ca.pem").write_text(signer.cert_pem)
    return directory


@pytest.fixture
def server():
    with DocumentServer() as running:
        yield running


def crl(signer: CaSigner, number: int, revoked=(), now=NOW, **kw) -> str:
    return signer.crl([(serial, now) for serial in revoked], number=number, now=now, **kw)


def number_in(path: Path) -> int:
    loaded = x509.load_pem_x509_crl(path.read_bytes())
    return loaded.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def crl_sync(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opscm", "crl-sync", *args],
        capture_output=True, text=True, timeout=timeout, env=_env(),
    )


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}


# --- one round (--interval 0) -------------------------------------------------------------


def test_a_missing_file_counts_as_zero_and_is_written_0644(server, out_dir, signer):
    server.serve(CRL_PATH, crl(signer, 1, revoked=[5]))
    out = out_dir / "crl.pem"
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out), "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert number_in(out) == 1
    assert [r.serial_number for r in x509.load_pem_x509_crl(out.read_bytes())] == [5]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in out_dir.iterdir()) == ["ca.pem", "crl.pem"]  # no temp file left
    assert "updated to CRL number 1 (was 0)" in result.stderr


def test_a_newer_number_replaces_the_file(server, out_dir, signer):
    out = out_dir / "crl.pem"
    out.write_text(crl(signer, 3))
    server.serve(CRL_PATH, crl(signer, 4, revoked=[9]))
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out), "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert number_in(out) == 4
    assert "updated to CRL number 4 (was 3)" in result.stderr


@pytest.mark.parametrize("served", [3, 2])
def test_the_same_or_an_older_number_leaves_the_file_alone(server, out_dir, signer, served):
    out = out_dir / "crl.pem"
    current = crl(signer, 3, revoked=[7])
    out.write_text(current)
    os.utime(out, (1_000_000, 1_000_000))
    server.serve(CRL_PATH, crl(signer, served))
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out), "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == current and out.stat().st_mtime == 1_000_000
    assert "is current (CRL number 3)" in result.stderr


def test_a_crl_of_another_ca_is_refused(server, out_dir, signer, other_signer):
    out = out_dir / "crl.pem"
    out.write_text(crl(signer, 3))
    server.serve(CRL_PATH, crl(other_signer, 99))
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out), "--interval", "0")
    assert result.returncode == 1
    assert "not signed by the CA CN=Puppet CA: crl-sync" in result.stderr
    assert number_in(out) == 3


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<html>maintenance</html>", "not one PEM CRL"),
        (b"-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n", "not a readable PEM CRL"),
        (b"", "not one PEM CRL"),
    ],
)
def test_garbage_is_refused(server, out_dir, signer, body, message):
    out = out_dir / "crl.pem"
    out.write_text(crl(signer, 3))
    server.serve(CRL_PATH, body)
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out), "--interval", "0")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert number_in(out) == 3


def test_an_http_error_is_a_failure(server, out_dir):
    server.serve(CRL_PATH, "gone", status=503)
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out_dir / "crl.pem"), "--interval", "0")
    assert result.returncode == 1
    assert "HTTP 503" in result.stderr
    assert not (out_dir / "crl.pem").exists()


def test_an_unreachable_url_is_a_failure(out_dir):
    with DocumentServer() as gone:
        url = gone.url(CRL_PATH)
    result = crl_sync("--url", url, "--out", str(out_dir / "crl.pem"), "--interval", "0", "--timeout", "3")
    assert result.returncode == 1
    assert "refused the connection or is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_to_run_without_a_ca_certificate(server, tmp_path, signer):
    server.serve(CRL_PATH, crl(signer, 1))
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(tmp_path / "crl.pem"), "--interval", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to run: no CA certificate at" in lines[0] and "--ca-cert" in lines[0]
    assert server.requests == []  # nothing fetched
    assert not (tmp_path / "crl.pem").exists()


def test_an_explicit_ca_cert(server, tmp_path, signer):
    (tmp_path / "the-ca.crt").write_text(signer.cert_pem)
    server.serve(CRL_PATH, crl(signer, 2))
    out = tmp_path / "crl.pem"
    result = crl_sync("--url", server.url(CRL_PATH), "--out", str(out), "--ca-cert", str(tmp_path / "the-ca.crt"), "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert number_in(out) == 2


def test_https_with_a_ca_bundle(tmp_path, out_dir, signer):
    # The HTTPS server presents a certificate from the same opscm CA (sign_server).
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "tls.pem").write_text(
        signer.sign_server(public, certname="localhost", alt_names=["IP:127.0.0.1"], serial=2, now=NOW)
    )
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    out = out_dir / "crl.pem"
    with DocumentServer(tls=(tmp_path / "tls.pem", tmp_path / "tls.key")) as https:
        https.serve(CRL_PATH, crl(signer, 5))
        untrusted = crl_sync("--url", https.url(CRL_PATH), "--out", str(out), "--interval", "0")
        assert untrusted.returncode == 1 and "TLS handshake" in untrusted.stderr
        trusted = crl_sync(
            "--url", https.url(CRL_PATH, host="localhost"), "--out", str(out),
            "--ca-bundle", str(out_dir / "ca.pem"), "--interval", "0",
        )
    assert trusted.returncode == 0, trusted.stderr
    assert number_in(out) == 5


# --- the checks, in process ----------------------------------------------------------------


def _ca(signer: CaSigner) -> x509.Certificate:
    return x509.load_pem_x509_certificate(signer.cert_pem.encode())


def test_an_expired_crl_is_refused(signer):
    old = crl(signer, 8, now=NOW - timedelta(days=10), next_update=timedelta(days=2))
    with pytest.raises(CrlSyncError, match="expired"):
        checked_crl(old.encode(), _ca(signer), NOW)


def test_a_delta_crl_or_one_without_number_is_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Puppet CA: bare")])
    ca = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    base = (
        x509.CertificateRevocationListBuilder().issuer_name(name)
        .last_update(NOW - timedelta(days=1)).next_update(NOW + timedelta(days=9))
    )
    bare = base.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CrlSyncError, match="no CRL number"):
        checked_crl(bare, ca, NOW)
    delta = (
        base.add_extension(x509.CRLNumber(4), critical=False)
        .add_extension(x509.DeltaCRLIndicator(3), critical=True)
        .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CrlSyncError, match="delta CRL"):
        checked_crl(delta, ca, NOW)


def test_two_crls_in_one_answer_are_refused(signer):
    with pytest.raises(CrlSyncError, match="not one PEM CRL"):
        checked_crl((crl(signer, 1) + crl(signer, 2)).encode(), _ca(signer), NOW)


def test_a_file_of_another_ca_is_replaced(server, out_dir, signer, other_signer):
    out = out_dir / "crl.pem"
    out.write_text(crl(other_signer, 50))
    server.serve(CRL_PATH, crl(signer, 1))
    source = CrlSource(server.url(CRL_PATH))
    try:
        outcome = sync_once(source, out, _ca(signer))
    finally:
        source.close()
    assert (outcome.previous, outcome.number, outcome.changed) == (0, 1, True)
    assert number_in(out) == 1


# --- the loop -------------------------------------------------------------------------------


def test_the_loop_follows_new_numbers_and_stops_cleanly_on_sigterm(server, out_dir, signer):
    out = out_dir / "crl.pem"
    server.serve(CRL_PATH, crl(signer, 1))
    process = subprocess.Popen(
        [sys.executable, "-m", "opscm", "crl-sync", "--url", server.url(CRL_PATH), "--out", str(out), "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        wait_for(lambda: out.exists() and number_in(out) == 1)
        server.serve(CRL_PATH, "garbage")  # a failing round: logged, the loop goes on
        served = len(server.requests)
        wait_for(lambda: len(server.requests) > served + 1)
        server.serve(CRL_PATH, crl(signer, 2, revoked=[3]))
        wait_for(lambda: number_in(out) == 2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert sum("updated to CRL number 1 (was 0)" in line for line in lines) == 1
    assert sum("updated to CRL number 2 (was 1)" in line for line in lines) == 1
    assert any("not one PEM CRL" in line for line in lines)
    assert "is current" not in stderr  # unchanged rounds are silent
    assert lines[-1].endswith("crl-sync: stopped")
