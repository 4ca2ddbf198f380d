"""opscm's Puppet pieces with the real peers: Debian's puppetserver 7.9.5 and puppet agent 7.23.

* CA mode: puppetserver is the CA, driven through ``PuppetCaApi`` with its own admin
  certificate; a real agent's CSR is signed there and the agent applies its catalog.
* External-CA mode: puppetserver serves certificates of opscm's CA (``create_ca``,
  ``sign_server``, ``sign_node``, ``crl``); ``opscm crl-sync`` brings a new CRL and the
  revoked agent is then refused at the TLS handshake.

The puppetservers take 30-100 s to start; see tests/support/puppetserver.py for how their
starts overlap with the tests.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from opscm.engines.http import BackendRefused
from opscm.engines.puppet_ca_api import PuppetCaApi
from opscm.pki import CaSigner, check_csr, create_ca
from tests.support.http_files import DocumentServer
from tests.support.puppet_agent import PuppetAgent, make_agent, puppet_available
from tests.support.puppetserver import ExternalCaFiles, Puppetserver, selected_tests_use

pytestmark = [
    pytest.mark.puppet,
    pytest.mark.skipif(not puppet_available(), reason="needs the real puppet agent (Debian puppet-agent 7.x)"),
]

# A revoked agent is refused once puppetserver has reloaded its CRL (about 1 s after the
# file changes); each agent run takes a few seconds, so a few runs are plenty.
REFUSAL_ATTEMPTS = 10
TLS_REFUSAL = "alert certificate unknown"


def applied_catalog(run: subprocess.CompletedProcess) -> bool:
    # Detailed exit codes: 0 nothing changed, 2 changes applied; anything else failed.
    return run.returncode in (0, 2) and "Applied catalog" in run.stdout


def describe(run: subprocess.CompletedProcess) -> str:
    return f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"


def assert_catalog_applied(agent: PuppetAgent, run: subprocess.CompletedProcess) -> None:
    assert applied_catalog(run), describe(run)
    assert f"opscm catalog for {agent.certname}" in run.stdout
    # What the server's compiler saw: an authenticated request by this certificate.
    assert agent.applied() == {"certname": agent.certname, "authenticated": "remote"}


def refused_run(agent: PuppetAgent, server: str, port: int) -> subprocess.CompletedProcess:
    """Run the agent until a run is refused (bounded): the CRL reload is asynchronous."""
    run = None
    for _ in range(REFUSAL_ATTEMPTS):
        agent.applied_path.unlink(missing_ok=True)
        run = agent.run_agent(server, port)
        if not applied_catalog(run) and "Applied catalog" not in run.stdout:
            return run
    pytest.fail(f"the agent still got its catalog after {REFUSAL_ATTEMPTS} runs\n{describe(run)}")


# ---- CA mode -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_api(puppetserver_ca: Puppetserver):
    api = PuppetCaApi(
        puppetserver_ca.url,
        client_cert=str(puppetserver_ca.client_cert_path),
        client_key=str(puppetserver_ca.client_key_path),
        ca_bundle=str(puppetserver_ca.ca_cert_path),
    )
    yield api
    api.close()


def signed_by_puppetserver(api: PuppetCaApi, agent: PuppetAgent, csr_attributes: dict | None = None) -> str:
    csr = agent.generate_csr(csr_attributes)
    api.submit_csr(agent.certname, csr)
    assert api.status(agent.certname)["state"] == "requested"
    api.sign(agent.certname)
    cert = api.certificate(agent.certname)
    assert cert is not None
    agent.install(cert, api.ca_certificate(), api.crl())
    return cert


def test_ca_mode_real_agent_csr_signed_through_the_api_applies_its_catalog(ca_api, puppetserver_ca, tmp_path):
    agent = make_agent(tmp_path, "agent-ca.example.com", keylength=2048)
    cert_pem = signed_by_puppetserver(ca_api, agent, {"extension_requests": {"pp_role": "web"}})
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    status = ca_api.status(agent.certname)
    assert status["state"] == "signed" and status["serial_number"] == cert.serial_number

    verified = agent.verify()
    assert verified.returncode == 0, describe(verified)
    assert_catalog_applied(agent, agent.run_agent("localhost", puppetserver_ca.port))

    # A name already signed has no CSR left to sign: 409 with puppetserver's reason.
    with pytest.raises(BackendRefused) as conflict:
        ca_api.sign(agent.certname)
    assert conflict.value.status == 409
    assert f"Cannot sign certificate for host {agent.certname} without a certificate request" in conflict.value.reason
    # ...and a second CSR for it is refused (no duplicate certificates).
    with pytest.raises(BackendRefused) as duplicate:
        ca_api.submit_csr(agent.certname, agent.csr_path.read_text())
    assert duplicate.value.status == 400 and "already has a signed certificate" in duplicate.value.reason

    ca_api.revoke(agent.certname)
    crl = x509.load_pem_x509_crl(ca_api.crl().encode())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert ca_api.status(agent.certname)["state"] == "revoked"
    # puppetserver copies its CA's CRL to the one its web server checks: the agent is out.
    refused = refused_run(agent, "localhost", puppetserver_ca.port)
    assert TLS_REFUSAL in refused.stderr, describe(refused)

    assert ca_api.clean(agent.certname) is True
    assert ca_api.certificate(agent.certname) is None
    assert ca_api.status(agent.certname) is None
    assert ca_api.clean(agent.certname) is False  # nothing left to clean
    # Cleaned, the serial stays revoked.
    crl = x509.load_pem_x509_crl(ca_api.crl().encode())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_ca_mode_check_accepts_the_admin_certificate_and_refuses_an_agents(ca_api, puppetserver_ca, tmp_path):
    ca_api.check()
    agent = make_agent(tmp_path, "agent-nonadmin.example.com", keylength=2048)
    signed_by_puppetserver(ca_api, agent)
    as_agent = PuppetCaApi(
        puppetserver_ca.url, str(agent.cert_path), str(agent.private_key_path), str(puppetserver_ca.ca_cert_path)
    )
    try:
        with pytest.raises(BackendRefused) as refused:
            as_agent.check()
        assert refused.value.status == 403
        with pytest.raises(BackendRefused) as revoke:
            as_agent.revoke(agent.certname)
        assert revoke.value.status == 403
        with pytest.raises(BackendRefused) as clean:
            as_agent.clean(agent.certname)
        assert clean.value.status == 403
        # The public documents need no rights.
        assert as_agent.certificate(agent.certname) == ca_api.certificate(agent.certname)
    finally:
        as_agent.close()
    assert ca_api.status(agent.certname)["state"] == "signed"
    assert ca_api.clean(agent.certname) is True


# ---- external-CA mode (opscm's CA) ------------------------------------------------------


class OpscmCa:
    """opscm's CA for the external-mode server: its files, and serials as a counter would."""

    def __init__(self, directory: Path):
        self.now = datetime.now(timezone.utc)
        material = create_ca("opscm-peers", now=self.now, key_bits=2048)
        self.signer = CaSigner(material.key_pem, material.cert_pem)
        self.serials = itertools.count(2)  # the CA is 1
        self.crl_numbers = itertools.count(1)
        self.revoked: list[tuple[int, datetime]] = []
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.files = ExternalCaFiles(
            certname="localhost",
            server_cert=directory / "localhost.pem",
            server_key=directory / "localhost.key",
            ca_cert=directory / "ca.pem",
            crl=directory / "crl.pem",
        )
        self.files.server_cert.write_text(
            self.signer.sign_server(
                public_pem, certname="localhost", alt_names=["DNS:localhost", "IP:127.0.0.1"],
                serial=next(self.serials), now=self.now,
            )
        )
        _write_private(
            self.files.server_key,
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        self.files.ca_cert.write_text(material.cert_pem)
        self.files.crl.write_text(self.crl())

    def sign_agent(self, agent: PuppetAgent, csr_pem: str) -> tuple[str, int]:
        serial = next(self.serials)
        cert = self.signer.sign_node(check_csr(csr_pem, agent.certname), certname=agent.certname, serial=serial, now=self.now)
        return cert, serial

    def revoke(self, serial: int) -> None:
        self.revoked.append((serial, datetime.now(timezone.utc)))

    def crl(self) -> str:
        return self.signer.crl(self.revoked, number=next(self.crl_numbers), now=datetime.now(timezone.utc))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@pytest.fixture(scope="session")
def opscm_ca(tmp_path_factory) -> OpscmCa:
    return OpscmCa(tmp_path_factory.mktemp("opscm-ca"))


@pytest.fixture(scope="session", autouse=True)
def _begin_external_early(request, puppetserver_external, opscm_ca):
    # Session-scoped and autouse, so it runs before the first test of this module waits for
    # puppetserver_ca: both servers then start together, if a selected test needs this one.
    if selected_tests_use(request.session, "external_server"):
        puppetserver_external.begin(opscm_ca.files)


@pytest.fixture(scope="module")
def external_server(puppetserver_external, opscm_ca) -> Puppetserver:
    return puppetserver_external(opscm_ca.files)


def crl_sync_once(url: str, out: Path) -> subprocess.CompletedProcess:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "opscm", "crl-sync", "--url", url, "--out", str(out), "--interval", "0"],
        capture_output=True, text=True, timeout=60, env=env,
    )


def test_external_ca_agent_applies_then_is_refused_after_crl_sync(external_server, opscm_ca, tmp_path):
    agent = make_agent(tmp_path, "agent-ext.example.com", keylength=2048)
    cert, serial = opscm_ca.sign_agent(agent, agent.generate_csr({"extension_requests": {"pp_role": "db"}}))
    agent.install(cert, opscm_ca.files.ca_cert.read_text(), opscm_ca.files.crl.read_text())
    verified = agent.verify()
    assert verified.returncode == 0, describe(verified)
    # By IP: the server certificate from sign_server holds IP:127.0.0.1.
    assert_catalog_applied(agent, agent.run_agent("127.0.0.1", external_server.port))

    opscm_ca.revoke(serial)
    with DocumentServer() as published:
        published.serve("/crl", opscm_ca.crl())
        synced = crl_sync_once(published.url("/crl"), opscm_ca.files.crl)
    assert synced.returncode == 0, synced.stderr
    assert "updated to CRL number 2 (was 1)" in synced.stderr

    refused = refused_run(agent, "127.0.0.1", external_server.port)
    assert TLS_REFUSAL in refused.stderr, describe(refused)
    assert agent.applied() is None
