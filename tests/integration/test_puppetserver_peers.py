"""opscm's Puppet pieces with the real peers: Debian's puppetserver 7.9.5 and puppet agent 7.23.

* CA mode: puppetserver is the CA, driven through ``PuppetCaApi`` with its own admin
  certificate; a real agent's CSR is signed there and the agent applies its catalog.
* External-CA mode (opscm's built-in CA behind puppetserver): see test_puppet_engines.py.

The puppetservers take 30-100 s to start; see tests/support/puppetserver.py for how their
starts overlap with the tests.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from opscm.engines.http import BackendRefused
from opscm.engines.puppet_ca_api import PuppetCaApi
from tests.support.agent_runs import TLS_REFUSAL, assert_catalog_applied, describe, refused_run
from tests.support.puppet_agent import PuppetAgent, make_agent
from tests.support.puppetserver import Puppetserver

pytestmark = pytest.mark.puppet

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
