"""A client of the Puppet Server CA HTTP API v1 (``/puppet-ca/v1``), for the external Puppet engine.

Checked against Debian's puppetserver 7.9.5 (and its CA handlers' source):

* ``GET certificate/<name>``, ``GET certificate_revocation_list/ca`` and ``PUT
  certificate_request/<name>`` need no client certificate; everything else goes through
  auth.conf rules that want a client certificate carrying ``pp_cli_auth: "true"`` (the CA
  server's own certificate has it). A certificate without it gets 403.
* ``PUT certificate_status/<name>`` answers 204; 409 when the state cannot be reached (no CSR
  to sign, e.g. because the name is already signed; no certificate to revoke), 404 when the
  name has neither CSR nor certificate. ``PUT certificate_request`` answers 400 for a CSR
  it refuses (duplicate, bad name or extensions).
* ``PUT clean`` revokes and deletes the certificates (not a pending CSR) and answers 200,
  also for names without one (only its message says so). Where it is missing (an older
  puppetserver: 404 for the route, or 403 from an auth.conf without its rule), the same is
  done with revoke + ``DELETE certificate_status/<name>``.

Every failure is a :class:`BackendUnavailable` (try later) or :class:`BackendRefused`
(final), whose reason is short, names the certname, and holds at most puppetserver's own
short message.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from ..pki import check_certname
from .http import BackendRefused, BackendUnavailable, HttpBackend, Reply, refusal

API = "/puppet-ca/v1"
_JSON = {"Content-Type": "application/json", "Accept": "application/json"}
_TEXT = {"Content-Type": "text/plain", "Accept": "text/plain"}
# The CA's own document names; "ca" is also the safe probe for check().
_CA = "ca"
# Sizes well above any real document; a larger answer is not a Puppet CA talking.
_MAX_PEM = 1024 * 1024
_MAX_CRL = 64 * 1024 * 1024


class PuppetCaApi:
    """One Puppet Server CA, reached with an admin client certificate (``pp_cli_auth``)."""

    def __init__(
        self,
        url: str,
        client_cert: str,
        client_key: str,
        ca_bundle: str | None,
        timeout: float = 10.0,
    ):
        self._http = HttpBackend(
            url,
            ca_bundle=ca_bundle,
            client_cert=str(client_cert),
            client_key=str(client_key),
            read_timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    # -- public CA documents (no client certificate needed) -----------------------------

    def ca_certificate(self) -> str:
        """The CA certificate (bundle), PEM."""
        reply = self._call("GET", f"/certificate/{_CA}", _TEXT, "fetch the CA certificate")
        if reply.status != 200:
            raise refusal("puppetserver CA: fetching the CA certificate failed", reply)
        return _pem(reply, "CERTIFICATE", "the CA certificate", _MAX_PEM)

    def crl(self) -> str:
        """The CA's CRL (chain), PEM."""
        reply = self._call("GET", f"/certificate_revocation_list/{_CA}", _TEXT, "fetch the CRL")
        if reply.status != 200:
            raise refusal("puppetserver CA: fetching the CRL failed", reply)
        return _pem(reply, "X509 CRL", "the CRL", _MAX_CRL)

    def certificate(self, certname: str) -> str | None:
        """The signed certificate of ``certname``, or None when it has none."""
        return self._stored_pem(f"/certificate/{_name(certname)}", "CERTIFICATE", f"the certificate of {certname!r}")

    def requested_csr(self, certname: str) -> str | None:
        """The CSR of ``certname`` waiting to be signed, or None when there is none."""
        path = f"/certificate_request/{_name(certname)}"
        return self._stored_pem(path, "CERTIFICATE REQUEST", f"the pending CSR of {certname!r}")

    def _stored_pem(self, path: str, label: str, what: str) -> str | None:
        reply = self._call("GET", path, _TEXT, f"fetch {what}")
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise refusal(f"puppetserver CA: fetching {what} failed", reply)
        return _pem(reply, label, what, _MAX_PEM)

    def submit_csr(self, certname: str, csr_pem: str) -> None:
        """Hand puppetserver the CSR of ``certname`` (it keeps it until signed; no autosign)."""
        body = csr_pem.encode("ascii") if isinstance(csr_pem, str) else bytes(csr_pem)
        path = f"/certificate_request/{_name(certname)}"
        reply = self._call("PUT", path, _TEXT, f"submit the CSR of {certname!r}", body)
        if reply.status != 200:
            raise refusal(f"puppetserver CA refused the CSR of {certname!r}", reply)

    # -- administration (client certificate with pp_cli_auth) ---------------------------

    def sign(self, certname: str) -> None:
        """Sign the pending CSR of ``certname``. 409 (nothing to sign, a CSR puppetserver
        will not sign) and 404 (unknown name) are final refusals."""
        self._set_state(certname, "signed", "sign")

    def revoke(self, certname: str) -> None:
        """Revoke the certificate of ``certname`` (it stays on the CA, in the CRL)."""
        self._set_state(certname, "revoked", "revoke")

    def status(self, certname: str) -> dict | None:
        """puppetserver's view of ``certname`` (``state``: requested, signed, revoked;
        ``serial_number``, fingerprints...), or None when it has neither CSR nor certificate."""
        path = f"/certificate_status/{_name(certname)}"
        reply = self._call("GET", path, _JSON, f"read the status of {certname!r}")
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise refusal(f"puppetserver CA: reading the status of {certname!r} failed", reply)
        try:
            status = json.loads(reply.body)
        except ValueError:
            status = None
        if not isinstance(status, dict):
            raise BackendRefused(f"puppetserver CA: the status of {certname!r} is not a JSON object", reply.status)
        return status

    def clean(self, certname: str) -> bool:
        """Revoke and delete the certificate of ``certname``, like ``puppetserver ca clean``.
        True if it had a certificate, False if it had none. A pending CSR is left alone
        (puppetserver's clean does not touch it)."""
        name = _name(certname)
        body = json.dumps({"certnames": [certname]}).encode()
        reply = self._call("PUT", "/clean", _JSON, f"clean {certname!r}", body)
        if reply.status == 200:
            # 200 also for names without a certificate; only the message tells.
            return "do not exist" not in reply.text(500)
        if reply.status in (403, 404):
            # No clean endpoint (older puppetserver: route missing, or no auth.conf rule for
            # it): the same with the calls every version has. A client that may not
            # administer the CA is refused by those too, and that refusal is clean's.
            try:
                return self._clean_by_revoke_and_delete(certname, name)
            except BackendRefused as error:
                if error.status not in (401, 403):
                    raise
                raise refusal(f"puppetserver CA refused to clean {certname!r}", reply) from None
        raise refusal(f"puppetserver CA: cleaning {certname!r} failed", reply)

    def check(self) -> None:
        """Prove the CA answers and accepts our client certificate for admin calls (cheap:
        the status of one name). 401/403 -> BackendRefused."""
        reply = self._call("GET", f"/certificate_status/{_CA}", _JSON, "check the admin access")
        if reply.status in (200, 404):
            return
        if reply.status in (401, 403):
            raise BackendRefused(
                f"puppetserver CA refused the client certificate for CA administration (HTTP {reply.status}; "
                "it needs the pp_cli_auth extension or an auth.conf rule)",
                reply.status,
            )
        raise refusal("puppetserver CA: the admin access check failed", reply)

    # -- internals ------------------------------------------------------------------------

    def _set_state(self, certname: str, state: str, verb: str) -> None:
        path = f"/certificate_status/{_name(certname)}"
        body = json.dumps({"desired_state": state}).encode()
        reply = self._call("PUT", path, _JSON, f"{verb} {certname!r}", body)
        if reply.status in (200, 204):
            return
        if reply.status == 404:
            raise BackendRefused(
                f"puppetserver CA cannot {verb} {certname!r}: it has no certificate request or certificate", 404
            )
        raise refusal(f"puppetserver CA refused to {verb} {certname!r}", reply)

    def _clean_by_revoke_and_delete(self, certname: str, name: str) -> bool:
        status = self.status(certname)
        state = status.get("state") if status else None
        if state not in ("signed", "revoked"):
            return False  # nothing, or only a CSR: what clean leaves too
        if state == "signed":
            self.revoke(certname)
        # DELETE removes the certificate file (and a CSR beside it) without revoking.
        reply = self._call("DELETE", f"/certificate_status/{name}", _JSON, f"delete {certname!r}")
        if reply.status not in (200, 204, 404):
            raise refusal(f"puppetserver CA: deleting {certname!r} failed", reply)
        return True

    def _call(self, method: str, path: str, headers: dict, what: str, body: bytes | None = None) -> Reply:
        try:
            return self._http.request(method, API + path, body=body, headers=headers)
        except BackendUnavailable as error:
            raise BackendUnavailable(f"puppetserver CA: cannot {what}: {error.reason}") from None


def _name(certname: str) -> str:
    """The certname as a path segment; only valid certnames reach a URL."""
    check_certname(certname)
    return quote(certname, safe="")


def _pem(reply: Reply, label: str, what: str, limit: int) -> str:
    if len(reply.body) > limit:
        raise BackendRefused(f"puppetserver CA: {what} is implausibly large", reply.status)
    text = reply.body.decode("ascii", "replace")
    if f"-----BEGIN {label}-----" not in text:
        raise BackendRefused(f"puppetserver CA: {what} is not PEM ({label})", reply.status)
    return text
