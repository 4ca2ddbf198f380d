"""The built-in Puppet engine: a Puppet-compatible CA per server, kept in the store."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509

from opscm.domain.associations import (
    PUPPET_NODE_CERT,
    AssociationStatus,
    Outcome,
    puppet_csr,
    puppet_disassociation,
)
from opscm.domain.engine_attributes import attribute_map
from opscm.domain.errors import InvalidState, NotFound, ValidationFailed
from opscm.domain.passwords import check_admin_password, generate_admin_password
from opscm.domain.servers import Server
from opscm.pki import CaSigner, CsrPolicy, PkiError, check_csr, create_ca, hash_password
from opscm.service.ports import (
    CaRecord,
    CertificateRecord,
    Clock,
    Provisioned,
    PuppetCaState,
    SecretBox,
    UnitOfWork,
)

from .signer_cache import SignerCache

ADMIN_PASSWORD = "PUPPET_ADMIN_PASSWORD"
CREATE_ATTRIBUTES = (ADMIN_PASSWORD, "PUPPET_R10K_REMOTE", "PUPPET_R10K_PRIVATE_KEY")


def _certificate(saved: dict) -> CertificateRecord:
    revoked_at = saved["revoked_at"]
    return CertificateRecord(
        serial=saved["serial"],
        certname=saved["certname"],
        cert_pem=saved["cert_pem"],
        not_after=datetime.fromisoformat(saved["not_after"]),
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )


class BuiltinPuppet:
    def __init__(
        self,
        *,
        secret_box: SecretBox,
        clock: Clock,
        ca_urls: Callable[[Server], dict[str, str]],
        ca_key_bits: int = 4096,
        certificate_ttl: timedelta = timedelta(days=5 * 365),
        csr_policy: CsrPolicy = CsrPolicy(),
    ):
        self._box = secret_box
        self._clock = clock
        self._ca_urls = ca_urls
        self._ca_key_bits = ca_key_bits
        self._ttl = certificate_ttl
        self._policy = csr_policy
        self._signers = SignerCache()

    def prepare(self, server: Server, attributes) -> Provisioned:
        values = attribute_map(attributes, allowed=CREATE_ATTRIBUTES)
        password = values.get(ADMIN_PASSWORD)
        if password is None:
            password = generate_admin_password()
        else:
            check_admin_password(ADMIN_PASSWORD, password)
        engine_data = {"admin_password_hash": hash_password(password)}
        if values.get("PUPPET_R10K_REMOTE"):
            engine_data["r10k_remote"] = values["PUPPET_R10K_REMOTE"]
        record = self._new_ca(server)
        return Provisioned(
            once=[{"Name": ADMIN_PASSWORD, "Value": password}],
            engine_data=engine_data,
            store=lambda uow: uow.puppet.create(server.id, record),
        )

    def provision(self, server: Server) -> Callable[[UnitOfWork], None]:
        return lambda uow: None  # the CA was made with the server

    def _new_ca(self, server: Server) -> CaRecord:
        now = self._clock.now()
        material = create_ca(server.name, now=now, key_bits=self._ca_key_bits)
        signer = CaSigner(material.key_pem, material.cert_pem)
        key_enc = self._box.seal(material.key_pem)
        # Kept loaded for the server's first signatures (a load costs ~230 ms of GIL at 4096 bits).
        self._signers.get(server.id, key_enc, material.cert_pem, lambda: signer)
        crl = signer.crl([], number=1, now=now)
        return CaRecord(key_enc=key_enc, cert_pem=material.cert_pem, crl_pem=crl)

    def describe(self, uow: UnitOfWork, server: Server) -> list[dict[str, str]]:
        ca = uow.puppet.get(server.id)
        if ca is None:
            return []
        attributes = [{"Name": "PUPPET_API_CA_CERT", "Value": ca.cert_pem}]
        attributes += [{"Name": name, "Value": url} for name, url in self._ca_urls(server).items()]
        return attributes

    def associate(self, uow: UnitOfWork, server: Server, node_name: str, attributes) -> Outcome:
        try:
            csr = check_csr(puppet_csr(attributes), node_name, self._policy)
        except PkiError as error:
            raise ValidationFailed(str(error)) from None
        signer = self._signer(uow, server)
        now = self._clock.now()
        # A new certificate replaces the node's old one, which is revoked (see README).
        replaced = self._revoke_active(uow, server, node_name)
        serial = uow.puppet.allocate_serial(server.id)
        cert_pem = signer.sign_node(csr, certname=node_name, serial=serial, now=now, ttl=self._ttl)
        uow.puppet.add_certificate(server.id, serial, node_name, cert_pem, now + self._ttl)
        if replaced:
            self._publish_crl(uow, server, signer)
        return Outcome(AssociationStatus.SUCCESS, [{"Name": PUPPET_NODE_CERT, "Value": cert_pem}])

    def disassociate(self, uow: UnitOfWork, server: Server, node_name: str, attributes) -> Outcome:
        puppet_disassociation(attributes)
        signer = self._signer(uow, server)
        if not self._revoke_active(uow, server, node_name):
            raise NotFound(f"Node {node_name} is not associated with server {server.name}.")
        self._publish_crl(uow, server, signer)
        return Outcome(AssociationStatus.SUCCESS)

    def destroy(self, uow: UnitOfWork, server: Server) -> None:
        # The CA row, its key and every certificate row are deleted with the server (ON DELETE CASCADE).
        self._signers.forget(server.id)

    def snapshot(self, uow: UnitOfWork, server: Server) -> dict:
        state = uow.puppet.export_state(server.id)
        if state is None:
            raise InvalidState(f"Server {server.name} has no certificate authority.")
        return {
            "engine": "Puppet",
            "engine_data": dict(server.engine_data),
            "ca": {
                "key_enc": base64.b64encode(state.ca.key_enc).decode("ascii"),  # sealed: never the plain key
                "cert_pem": state.ca.cert_pem,
                "crl_pem": state.ca.crl_pem,
                "next_serial": state.next_serial,
                "crl_number": state.crl_number,
            },
            "certificates": [
                {
                    "serial": cert.serial,
                    "certname": cert.certname,
                    "cert_pem": cert.cert_pem,
                    "not_after": cert.not_after.isoformat(),
                    "revoked_at": cert.revoked_at.isoformat() if cert.revoked_at else None,
                }
                for cert in state.certificates
            ],
        }

    def restore(self, uow: UnitOfWork, server: Server, snapshot: dict) -> None:
        if snapshot.get("engine") != "Puppet":
            raise ValidationFailed("The backup is not a Puppet backup.")
        saved = snapshot["ca"]
        record = CaRecord(base64.b64decode(saved["key_enc"]), saved["cert_pem"], saved["crl_pem"])
        # The key must still open; loaded through the cache, which the restored CA then serves from.
        signer = self._signers.get(
            server.id, record.key_enc, record.cert_pem, lambda: CaSigner(self._box.open(record.key_enc), record.cert_pem)
        )
        certificates = {cert.serial: cert for cert in map(_certificate, snapshot["certificates"])}
        next_serial, crl_number = saved["next_serial"], saved["crl_number"]
        now = self._clock.now()
        current = uow.puppet.export_state(server.id)
        if current is not None:
            # Counters never go backwards: a serial or CRL number is never handed out twice.
            next_serial = max(next_serial, current.next_serial)
            crl_number = max(crl_number, current.crl_number)
            if current.ca.cert_pem == record.cert_pem:
                # The same CA: what it did after the backup cannot be undone, only revoked.
                for cert in current.certificates:
                    kept = certificates.get(cert.serial)
                    if kept is None:  # issued after the backup: that association is gone
                        certificates[cert.serial] = dataclasses.replace(cert, revoked_at=cert.revoked_at or now)
                    elif cert.revoked_at and (kept.revoked_at is None or cert.revoked_at < kept.revoked_at):
                        certificates[cert.serial] = dataclasses.replace(kept, revoked_at=cert.revoked_at)
        state = PuppetCaState(record, next_serial, crl_number, tuple(certificates[s] for s in sorted(certificates)))
        uow.puppet.import_state(server.id, state)
        uow.puppet.delete_expired(server.id, now)  # as maintenance does: expired ones leave the CRL
        self._publish_crl(uow, server, signer)
        server.engine_data = dict(snapshot["engine_data"])

    def maintain(self, uow: UnitOfWork, server: Server) -> list[str]:
        signer = self._signer(uow, server)
        now = self._clock.now()
        # Expired certificates can no longer be used, revoked or not: they leave the active set and the CRL.
        pruned = uow.puppet.delete_expired(server.id, now)
        number = self._publish_crl(uow, server, signer)
        return [f"Pruned {pruned} expired certificate(s).", f"Republished the CRL (CRL number {number})."]

    def check_health(self, uow: UnitOfWork, server: Server) -> str | None:
        ca = uow.puppet.get(server.id)
        if ca is None:
            return "the certificate authority is missing"
        try:
            # Through the cache: the stored key and certificate are compared each time, but only a
            # changed one is loaded again (a load holds the GIL for ~230 ms at 4096 bits).
            self._signer(uow, server)
        except Exception as error:  # noqa: BLE001 - any failure to load the key means no signing
            return f"the CA key cannot be used ({type(error).__name__})"
        crl = x509.load_pem_x509_crl(ca.crl_pem.encode())
        if crl.next_update_utc is not None and crl.next_update_utc < self._clock.now():
            return "the CRL has expired; run maintenance to republish it"
        return None

    def update_attribute(self, uow: UnitOfWork, server: Server, name: str, value: str | None) -> list[dict[str, str]]:
        if name != ADMIN_PASSWORD:
            raise ValidationFailed(f"AttributeName {name} cannot be updated on a Puppet server; use {ADMIN_PASSWORD}.")
        if not value:
            raise ValidationFailed(f"{ADMIN_PASSWORD} needs an AttributeValue.")
        check_admin_password(ADMIN_PASSWORD, value)
        server.engine_data["admin_password_hash"] = hash_password(value)
        return []

    def _signer(self, uow: UnitOfWork, server: Server) -> CaSigner:
        ca = uow.puppet.get(server.id)
        if ca is None:
            raise InvalidState(f"Server {server.name} has no certificate authority.")
        return self._signers.get(
            server.id, ca.key_enc, ca.cert_pem, lambda: CaSigner(self._box.open(ca.key_enc), ca.cert_pem)
        )

    def _revoke_active(self, uow: UnitOfWork, server: Server, certname: str) -> list[int]:
        now = self._clock.now()
        serials = [c.serial for c in uow.puppet.certificates(server.id, certname) if c.revoked_at is None]
        for serial in serials:
            uow.puppet.revoke(server.id, serial, now)
        return serials

    def _publish_crl(self, uow: UnitOfWork, server: Server, signer: CaSigner) -> int:
        revoked = [(c.serial, c.revoked_at) for c in uow.puppet.certificates(server.id) if c.revoked_at is not None]
        number = uow.puppet.allocate_crl_number(server.id)
        uow.puppet.set_crl(server.id, signer.crl(revoked, number=number, now=self._clock.now()))
        return number
