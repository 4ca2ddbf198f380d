"""PuppetCaApi against a scripted stand-in: requests sent, answers mapped, the clean fallback.

The answers scripted here are the ones a real puppetserver 7.9.5 gives (status codes and
bodies checked live, see tests/integration/test_puppetserver_peers.py); this file covers
what a live server will not do on demand (no clean endpoint, 5xx, junk).
"""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from opscm.engines.http import BackendRefused, BackendUnavailable
from opscm.engines.puppet_ca_api import PuppetCaApi
from opscm.pki import InvalidCertname

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CRL = "-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n"
FORBIDDEN = "Forbidden request: /puppet-ca/v1/clean (method :put). Please see the server logs for details."


class FakeCa:
    """Answers ``routes[(METHOD, path)] = (status, body)``; records every request."""

    def __init__(self):
        self.routes: dict[tuple[str, str], tuple[int, str]] = {}
        self.requests: list[tuple[str, str, dict, bytes]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                status, text = fake.routes.get((self.command, self.path), (404, "Not Found"))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, method: str, path: str, status: int, body: str = "") -> None:
        self.routes[(method, "/puppet-ca/v1" + path)] = (status, body)

    def sent(self) -> list[tuple[str, str]]:
        return [(method, path.removeprefix("/puppet-ca/v1")) for method, path, _, _ in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    ca = FakeCa()
    yield ca
    ca.close()


@pytest.fixture
def api(fake):
    # Plain http: the stand-in has no TLS; the client cert is only loaded for https.
    client = PuppetCaApi(fake.url, client_cert="unused.pem", client_key="unused.key", ca_bundle=None)
    yield client
    client.close()


def status_json(state: str) -> str:
    return json.dumps({"name": "web1", "state": state, "serial_number": 7})


def test_documents(fake, api):
    fake.on("GET", "/certificate/ca", 200, CERT)
    fake.on("GET", "/certificate_revocation_list/ca", 200, CRL)
    fake.on("GET", "/certificate/web1", 200, CERT)
    assert api.ca_certificate() == CERT
    assert api.crl() == CRL
    assert api.certificate("web1") == CERT
    assert api.certificate("web2") is None  # 404 "Could not find certificate web2"


def test_a_document_that_is_not_pem_is_refused(fake, api):
    fake.on("GET", "/certificate/ca", 200, "<html>proxy error</html>")
    with pytest.raises(BackendRefused, match="not PEM"):
        api.ca_certificate()


def test_submit_csr_is_a_text_plain_put(fake, api):
    fake.on("PUT", "/certificate_request/web1", 200)
    api.submit_csr("web1", "-----BEGIN CERTIFICATE REQUEST-----\n...")
    method, path, headers, body = fake.requests[-1]
    assert (method, path) == ("PUT", "/puppet-ca/v1/certificate_request/web1")
    assert headers["Content-Type"] == "text/plain"
    assert body.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")


def test_a_refused_csr_carries_puppetservers_message(fake, api):
    fake.on("PUT", "/certificate_request/web1", 400, "web1 already has a signed certificate; ignoring certificate request")
    with pytest.raises(BackendRefused) as error:
        api.submit_csr("web1", "pem")
    assert error.value.status == 400
    assert error.value.reason == (
        "puppetserver CA refused the CSR of 'web1': HTTP 400 "
        "(web1 already has a signed certificate; ignoring certificate request)"
    )


def test_sign_and_revoke_are_json_puts_of_the_desired_state(fake, api):
    fake.on("PUT", "/certificate_status/web1", 204)
    api.sign("web1")
    api.revoke("web1")
    bodies = [(h["Content-Type"], json.loads(b)) for m, p, h, b in fake.requests]
    assert bodies == [
        ("application/json", {"desired_state": "signed"}),
        ("application/json", {"desired_state": "revoked"}),
    ]


def test_sign_conflict_is_a_final_refusal_with_the_message(fake, api):
    fake.on("PUT", "/certificate_status/web1", 409, "Cannot sign certificate for host web1 without a certificate request")
    with pytest.raises(BackendRefused) as error:
        api.sign("web1")
    assert error.value.status == 409
    assert "Cannot sign certificate for host web1 without a certificate request" in error.value.reason


def test_sign_of_an_unknown_name(fake, api):
    fake.on("PUT", "/certificate_status/web1", 404, "Invalid certificate subject.")
    with pytest.raises(BackendRefused, match="has no certificate request or certificate") as error:
        api.sign("web1")
    assert error.value.status == 404


def test_status(fake, api):
    fake.on("GET", "/certificate_status/web1", 200, status_json("signed"))
    assert api.status("web1")["state"] == "signed"
    assert api.status("web2") is None
    assert fake.requests[0][2]["Accept"] == "application/json"
    fake.on("GET", "/certificate_status/web3", 200, "[]")
    with pytest.raises(BackendRefused, match="not a JSON object"):
        api.status("web3")


def test_check(fake, api):
    fake.on("GET", "/certificate_status/ca", 404, "Resource not found.")
    api.check()  # authorized: the name simply does not exist
    fake.on("GET", "/certificate_status/ca", 403, "Forbidden request: /puppet-ca/v1/certificate_status/ca (method :get).")
    with pytest.raises(BackendRefused, match="pp_cli_auth") as error:
        api.check()
    assert error.value.status == 403


def test_clean_uses_the_clean_endpoint(fake, api):
    fake.on("PUT", "/clean", 200, "Successfully cleaned all certs.")
    assert api.clean("web1") is True
    assert json.loads(fake.requests[-1][3]) == {"certnames": ["web1"]}
    fake.on("PUT", "/clean", 200, 'The following certs do not exist and cannot be revoked: ["web1"]')
    assert api.clean("web1") is False


@pytest.mark.parametrize("missing", [(404, "Not Found"), (403, FORBIDDEN)])
def test_clean_falls_back_to_revoke_and_delete(fake, api, missing):
    fake.on("PUT", "/clean", *missing)
    fake.on("GET", "/certificate_status/web1", 200, status_json("signed"))
    fake.on("PUT", "/certificate_status/web1", 204)
    fake.on("DELETE", "/certificate_status/web1", 204)
    assert api.clean("web1") is True
    assert fake.sent() == [
        ("PUT", "/clean"),
        ("GET", "/certificate_status/web1"),
        ("PUT", "/certificate_status/web1"),
        ("DELETE", "/certificate_status/web1"),
    ]


def test_clean_fallback_of_a_revoked_a_requested_and_an_unknown_name(fake, api):
    fake.on("PUT", "/clean", 404, "Not Found")
    fake.on("GET", "/certificate_status/gone", 200, status_json("revoked"))
    fake.on("DELETE", "/certificate_status/gone", 204)
    fake.on("GET", "/certificate_status/asked", 200, status_json("requested"))
    assert api.clean("gone") is True
    assert api.clean("asked") is False
    assert api.clean("never") is False
    assert ("PUT", "/certificate_status/gone") not in fake.sent()  # no second revocation
    assert ("DELETE", "/certificate_status/asked") not in fake.sent()  # a CSR is left, as clean does


def test_clean_fallback_refused_for_a_client_without_rights(fake, api):
    fake.on("PUT", "/clean", 403, FORBIDDEN)
    fake.on("GET", "/certificate_status/web1", 403, "Forbidden request")
    with pytest.raises(BackendRefused, match="refused to clean 'web1': HTTP 403") as error:
        api.clean("web1")
    assert error.value.status == 403


def test_5xx_is_retryable(fake, api):
    fake.on("PUT", "/certificate_status/web1", 503, "JRuby pool is busy")
    with pytest.raises(BackendUnavailable, match="HTTP 503"):
        api.sign("web1")


def test_no_answer_is_retryable_with_a_short_reason(fake):
    fake.close()
    client = PuppetCaApi(fake.url, "unused.pem", "unused.key", None, timeout=2)
    with pytest.raises(BackendUnavailable) as error:
        client.certificate("web1")
    assert error.value.reason == (
        "puppetserver CA: cannot fetch the certificate of 'web1': "
        "the backend refused the connection or is not reachable"
    )


@pytest.mark.parametrize("name", ["../ca", "Web1", "a/b", "", "web1?x=1"])
def test_only_valid_certnames_reach_a_url(fake, api, name):
    with pytest.raises(InvalidCertname):
        api.sign(name)
    assert fake.requests == []
