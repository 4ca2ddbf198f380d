"""The built-in Puppet engine: a Puppet-compatible CA per server, kept in its own store.

Signatures (certificates, CRLs) are made outside transactions; what they were made from is
checked when they are written: serials come from blocks reserved beforehand, and a CRL is
published only if the CRL number it follows is still current (see ``CaStore``).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from cryptography import x509

from opscm.domain.associations import PUPPET_NODE_CERT, AssociationAction
from opscm.domain.engine_attributes import attribute_map
from opscm.domain.errors import InvalidState, ValidationFailed
from opscm.domain.nodes import NodeClaim
from opscm.domain.passwords import check_admin_password, generate_admin_password
from opscm.domain.servers import Server
from opscm.pki import CaSigner, CsrPolicy, check_csr, create_ca, hash_password
from opscm.pki.ca import BACKDATE
from opscm.service.ports import (
    Applied,
    CaStatus,
    Clock,
    Conflict,
    NodeChange,
    NodeCredential,
    Provisioned,
    SecretBox,
    StaleServer,
    UnitOfWork,
    UnitOfWorkFactory,
)

from .ports import CaRecord, CaStore, CertificateRecord, CertificateStatus, PuppetCaState
from .puppet_nodes import vet_puppet_change
from .serial_blocks import SerialBlocks
from .signer_cache import SignerCache

ADMIN_PASSWORD = "PUPPET_ADMIN_PASSWORD"
CREATE_ATTRIBUTES = (ADMIN_PASSWORD, "PUPPET_R10K_REMOTE", "PUPPET_R10K_PRIVATE_KEY")
# Kept in the server's engine data: public, and what DescribeServers shows without a query.
CA_CERT = "ca_cert_pem"
# Host names of server certificates issued by this CA (opscm puppetserver-bundle): never a node's.
SERVER_CERTNAMES = "server_certnames"


@dataclasses.dataclass(frozen=True)
class NewCrl:
    """A CRL signed outside the transaction, and the CRL number it must follow."""

    expected_number: int
    number: int
    pem: str


@dataclasses.dataclass(frozen=True)
class PreparedChange:
    now: datetime
    certname: str
    revoke: tuple[int, ...] = ()
    crl: NewCrl | None = None
    cert_pem: str | None = None
    serial: int | None = None

    @property
    def ref(self) -> str | None:
        return str(self.serial) if self.serial is not None else None


@dataclasses.dataclass(frozen=True)
class RestorePlan:
    state: PuppetCaState
    engine_data: dict
    expected_crl_number: int | None  # None: a new server, nothing to compare with


def _certificate(saved: dict) -> CertificateRecord:
    revoked_at = saved["revoked_at"]
    return CertificateRecord(
        serial=saved["serial"],
        certname=saved["certname"],
        cert_pem=saved["cert_pem"],
        not_after=datetime.fromisoformat(saved["not_after"]),
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )


def _credential(cert: CertificateStatus) -> NodeCredential:
    return NodeCredential(cert.certname, NodeCredential.CERTIFICATE, str(cert.serial), cert.not_after, cert.revoked_at)


def _in_force(certificates: Iterable[CertificateRecord]) -> list[tuple[str, str | None]]:
    """The node names holding an unrevoked certificate, each with its newest serial."""
    newest: dict[str, int] = {}
    for cert in certificates:
        if cert.revoked_at is None:
            newest[cert.certname] = max(cert.serial, newest.get(cert.certname, 0))
    return [(name, str(serial)) for name, serial in sorted(newest.items())]


class BuiltinPuppet:
    remote = False
    prepare_blocks = True  # it signs (a certificate, a CRL) and may load the CA key
    engine = "Puppet"
    endpoint = None

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        ca_store: Callable[..., CaStore],
        secret_box: SecretBox,
        clock: Clock,
        ca_urls: Callable[[Server], dict[str, str]],
        ca_key_bits: int = 4096,
        certificate_ttl: timedelta = timedelta(days=5 * 365),
        csr_policy: CsrPolicy = CsrPolicy(),
        serial_block: int = 32,
    ):
        self._uow = uow
        self._store = ca_store
        self._box = secret_box
        self._clock = clock
        self._ca_urls = ca_urls
        self._ca_key_bits = ca_key_bits
        self._ttl = certificate_ttl
        self._policy = csr_policy
        self._signers = SignerCache()
        self._checked_keys: dict[str, bytes] = {}  # server id -> the sealed key last loaded by a health check
        self._serials = SerialBlocks(self._reserve_serials, serial_block)

    # -- servers -----------------------------------------------------------------------------

    def prepare(self, server: Server, attributes) -> Provisioned:
        values = attribute_map(attributes, allowed=CREATE_ATTRIBUTES)
        password = values.get(ADMIN_PASSWORD)
        if password is None:
            password = generate_admin_password()
        else:
            check_admin_password(ADMIN_PASSWORD, password)
        record = self._new_ca(server)
        engine_data = {"admin_password_hash": hash_password(password), CA_CERT: record.cert_pem}
        if values.get("PUPPET_R10K_REMOTE"):
            engine_data["r10k_remote"] = values["PUPPET_R10K_REMOTE"]
        return Provisioned(
            once=[{"Name": ADMIN_PASSWORD, "Value": password}],
            engine_data=engine_data,
            store=lambda uow: uow.bind(self._store).create(server.id, record),
        )

    def provision(self, server: Server) -> Callable[[UnitOfWork, Server], None]:
        return lambda uow, created: None  # the CA was made with the server

    def _new_ca(self, server: Server) -> CaRecord:
        now = self._clock.now()
        material = create_ca(server.name, now=now, key_bits=self._ca_key_bits)
        signer = CaSigner(material.key_pem, material.cert_pem, key_is_ours=True)
        # Kept loaded for the server's first signatures (a load costs ~230 ms of GIL at 4096 bits).
        self._signers.get(server.id, material.cert_pem, lambda: signer)
        crl = signer.crl([], number=1, now=now)
        return CaRecord(key_enc=self._box.seal(material.key_pem), cert_pem=material.cert_pem, crl_pem=crl)

    def refresh(self, server: Server) -> dict | None:
        return None

    def describe(self, server: Server) -> list[dict[str, str]]:
        cert_pem = server.engine_data.get(CA_CERT)
        if not cert_pem:
            return []
        attributes = [{"Name": "PUPPET_API_CA_CERT", "Value": cert_pem}]
        attributes += [{"Name": name, "Value": url} for name, url in self._ca_urls(server).items()]
        return attributes

    def reserved_names(self, server: Server) -> Iterable[str]:
        return server.engine_data.get(SERVER_CERTNAMES, ())

    def ca_document(self, server: Server, document: str, name: str) -> str | None:
        with self._uow(read_only=True) as uow:
            store = uow.bind(self._store)
            if name != "ca":
                return store.certificate_pem(server.id, name) if document == "certificate" else None
            ca = store.get(server.id)
        if ca is None:
            return None
        return ca.crl_pem if document == "certificate_revocation_list" else ca.cert_pem

    def ca_status(self, server: Server) -> CaStatus | None:
        now = self._clock.now()
        with self._uow(read_only=True) as uow:
            store = uow.bind(self._store)
            ca = store.get(server.id)
            soonest = store.soonest_expiry(server.id, after=now)
        if ca is None:
            return None
        ca_expiry = x509.load_pem_x509_certificate(ca.cert_pem.encode()).not_valid_after_utc
        crl = x509.load_pem_x509_crl(ca.crl_pem.encode())
        # The CRL's lastUpdate is backdated for agents with a slow clock: it was signed BACKDATE later.
        return CaStatus(min(ca_expiry, soonest or ca_expiry), crl.last_update_utc + BACKDATE)

    def destroy(self, uow: UnitOfWork, server: Server) -> None:
        # The CA row, its key and every certificate row are deleted with the server (ON DELETE CASCADE).
        self._signers.forget(server.id)
        self._serials.forget(server.id)

    # -- nodes -------------------------------------------------------------------------------

    def vet(self, server: Server, action: AssociationAction, node_name: str, attributes) -> NodeChange:
        return vet_puppet_change(action, node_name, attributes, self._policy)

    def prepare_change(self, server: Server, change: NodeChange, holder: NodeClaim | None) -> PreparedChange:
        now = self._clock.now()
        signer = self._signer(server)
        # The certificate in force for this name (a replacement or a disassociation revokes it).
        revoke = (int(holder.ref),) if holder is not None and holder.ref else ()
        crl = self._new_crl(server, signer, revoke, now) if revoke else None
        if change.action is AssociationAction.DISASSOCIATE:
            return PreparedChange(now, change.node_name, revoke, crl)
        csr = change.vetted or check_csr(change.request["csr"], change.node_name, self._policy)
        serial = self._serials.next(server.id)
        cert_pem = signer.sign_node(
            csr, certname=change.node_name, serial=serial, now=now, ttl=self._ttl, policy=self._policy, vetted=True
        )
        return PreparedChange(now, change.node_name, revoke, crl, cert_pem, serial)

    def applied_if_held(self, server: Server, change: NodeChange, holder: NodeClaim) -> Applied | None:
        csr = change.vetted or check_csr(change.request["csr"], change.node_name, self._policy)
        with self._uow(read_only=True) as uow:
            cert_pem = uow.bind(self._store).certificate_pem(server.id, change.node_name)  # the newest in force
        if cert_pem is None:
            return None
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        if str(cert.serial_number) != holder.ref or cert.public_key() != csr.public_key():
            return None
        return Applied([{"Name": PUPPET_NODE_CERT, "Value": cert_pem}], ref=holder.ref)

    def commit_change(self, uow: UnitOfWork, server: Server, prepared: PreparedChange) -> Applied:
        store = uow.bind(self._store)
        if prepared.crl is not None:
            self._publish(store, server, prepared.crl)
        if prepared.revoke:
            store.revoke(server.id, prepared.revoke, prepared.now)
        revoked = len(prepared.revoke)
        if prepared.cert_pem is None:
            return Applied(certificates_revoked=revoked)
        store.add_certificate(server.id, prepared.serial, prepared.certname, prepared.cert_pem, prepared.now + self._ttl)
        return Applied(
            [{"Name": PUPPET_NODE_CERT, "Value": prepared.cert_pem}],
            ref=str(prepared.serial),
            certificates_issued=1,
            certificates_revoked=revoked,
        )

    def apply_change(self, server: Server, change: NodeChange, replacing: bool) -> Applied:
        raise NotImplementedError("the built-in engine commits changes locally")

    # -- server certificates (opscm puppetserver-bundle) ---------------------------------------

    def sign_server_certificate(
        self, server: Server, *, certname: str, alt_names: list[str], public_key_pem: str
    ) -> tuple[int, str]:
        serial = self._serials.next(server.id)
        cert_pem = self._signer(server).sign_server(
            public_key_pem, certname=certname, alt_names=alt_names, serial=serial, now=self._clock.now(), ttl=self._ttl
        )
        return serial, cert_pem

    def record_server_certificate(
        self, uow: UnitOfWork, server: Server, serial: int, certname: str, cert_pem: str, names: list[str]
    ) -> None:
        not_after = x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc
        uow.bind(self._store).add_certificate(server.id, serial, certname, cert_pem, not_after)
        reserved = set(server.engine_data.get(SERVER_CERTNAMES, ())) | set(names)
        server.engine_data[SERVER_CERTNAMES] = sorted(reserved)

    # -- listings (read-only) -----------------------------------------------------------------

    def credentials(self, uow: UnitOfWork, server: Server, claims: Sequence[NodeClaim]) -> list[NodeCredential]:
        serials = [int(claim.ref) for claim in claims if claim.ref and claim.ref.isdigit()]
        found = {str(cert.serial): cert for cert in uow.bind(self._store).statuses(server.id, serials)}
        return [
            _credential(found[claim.ref]) if claim.ref in found
            else NodeCredential(claim.name, NodeCredential.CERTIFICATE, claim.ref)
            for claim in claims
        ]

    def revoked_credentials(
        self, uow: UnitOfWork, server: Server, name_contains: str | None, limit: int
    ) -> list[NodeCredential]:
        return [_credential(cert) for cert in uow.bind(self._store).revoked_statuses(server.id, name_contains, limit)]

    def expiring_credentials(
        self, uow: UnitOfWork, server: Server, before: datetime, limit: int
    ) -> list[NodeCredential]:
        return [_credential(cert) for cert in uow.bind(self._store).expiring_statuses(server.id, before, limit)]

    # -- upkeep ------------------------------------------------------------------------------

    def maintain(self, server: Server) -> list[str]:
        """Expired certificates leave the active set and the CRL; the CRL is signed anew."""
        signer = self._signer(server)
        for _ in range(5):
            now = self._clock.now()
            with self._uow(read_only=True) as uow:
                store = uow.bind(self._store)
                expired = store.expired(server.id, now)
                state = store.revocation_state(server.id)
            if state is None:
                raise InvalidState(f"Server {server.name} has no certificate authority.")
            gone = {cert.serial for cert in expired}
            revoked = [(serial, at) for serial, at in state.revoked if serial not in gone]
            crl = NewCrl(state.crl_number, state.crl_number + 1, signer.crl(revoked, number=state.crl_number + 1, now=now))
            with self._uow() as uow:
                store = uow.bind(self._store)
                try:
                    self._publish(store, server, crl)
                except Conflict:
                    continue
                store.delete_certificates(server.id, sorted(gone))
                uow.nodes.release_refs(server.id, [str(serial) for serial in gone])
                uow.commit()
            return [f"Pruned {len(gone)} expired certificate(s).", f"Republished the CRL (CRL number {crl.number})."]
        raise InvalidState(f"The CRL of server {server.name} is being changed by other requests; try again.")

    def check_health(self, server: Server) -> str | None:
        with self._uow(read_only=True) as uow:
            ca = uow.bind(self._store).get(server.id)
        if ca is None:
            return "the certificate authority is missing"
        if self._checked_keys.get(server.id) != ca.key_enc:
            # A stored key not seen working yet is loaded once (it opens, parses and matches its certificate).
            try:
                self._signers.put(server.id, ca.cert_pem, CaSigner(self._box.open(ca.key_enc), ca.cert_pem, key_is_ours=True))
            except Exception:  # noqa: BLE001 - any failure to load the key means no signing
                self._checked_keys.pop(server.id, None)
                return "the CA key cannot be used"
            self._checked_keys[server.id] = ca.key_enc
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

    # -- backups -----------------------------------------------------------------------------

    def snapshot(self, uow: UnitOfWork, server: Server) -> dict:
        state = uow.bind(self._store).export_state(server.id)
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

    def plan_restore(self, server: Server, snapshot: dict, *, new_server: bool) -> RestorePlan:
        if snapshot.get("engine") != "Puppet":
            raise ValidationFailed("The backup is not a Puppet backup.")
        saved = snapshot["ca"]
        record = CaRecord(base64.b64decode(saved["key_enc"]), saved["cert_pem"], saved["crl_pem"])
        # The key must still open; loaded through the cache, which the restored CA then serves from.
        signer = self._signers.get(server.id, record.cert_pem, lambda: CaSigner(self._box.open(record.key_enc), record.cert_pem, key_is_ours=True))
        engine_data = {**snapshot["engine_data"], CA_CERT: record.cert_pem}
        certificates = {cert.serial: cert for cert in map(_certificate, snapshot["certificates"])}
        next_serial, crl_number = saved["next_serial"], saved["crl_number"]
        if new_server:
            state = PuppetCaState(record, next_serial, crl_number, tuple(certificates[s] for s in sorted(certificates)))
            return RestorePlan(state, engine_data, None)
        now = self._clock.now()
        with self._uow(read_only=True) as uow:
            current = uow.bind(self._store).export_state(server.id)
        expected = None
        if current is not None:
            expected = current.crl_number
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
        # As maintenance does: expired certificates leave the CRL; a fresh CRL with a higher number.
        kept = [certificates[s] for s in sorted(certificates) if certificates[s].not_after >= now]
        revoked = [(c.serial, c.revoked_at) for c in kept if c.revoked_at is not None]
        crl = signer.crl(revoked, number=crl_number + 1, now=now)
        state = PuppetCaState(dataclasses.replace(record, crl_pem=crl), next_serial, crl_number + 1, tuple(kept))
        return RestorePlan(state, engine_data, expected)

    def restore(self, uow: UnitOfWork, server: Server, plan: RestorePlan) -> list[tuple[str, str | None]]:
        store = uow.bind(self._store)
        if plan.expected_crl_number is not None:
            # Nothing may have been revoked since the plan was made (its CRL would miss it).
            crl = NewCrl(plan.expected_crl_number, plan.state.crl_number, plan.state.ca.crl_pem)
            self._publish(store, server, crl)
        store.import_state(server.id, plan.state)
        server.engine_data = dict(plan.engine_data)
        self._serials.forget(server.id)
        return _in_force(plan.state.certificates)

    # -- the CA ------------------------------------------------------------------------------

    def _signer(self, server: Server) -> CaSigner:
        cert_pem = server.engine_data.get(CA_CERT)

        def load() -> CaSigner:
            with self._uow(read_only=True) as uow:
                ca = uow.bind(self._store).get(server.id)
            if ca is None:  # its server was deleted (by another worker) since its row was read
                raise StaleServer()
            return CaSigner(self._box.open(ca.key_enc), ca.cert_pem, key_is_ours=True)

        if cert_pem is None:
            raise InvalidState(f"Server {server.name} has no certificate authority.")
        return self._signers.get(server.id, cert_pem, load)

    def _reserve_serials(self, server_id: str, count: int) -> int:
        # Lean: it waits on the writers' gate, never in SQLite's busy sleeps (on the event loop
        # it raises WouldWait instead).
        with self._uow(lean=True) as uow:
            first = uow.bind(self._store).reserve_serials(server_id, count)
            uow.commit()
        if first is None:  # deleted (by another worker) since its row was read
            raise StaleServer()
        return first

    def _new_crl(self, server: Server, signer: CaSigner, revoke: tuple[int, ...], now: datetime) -> NewCrl:
        with self._uow(read_only=True) as uow:
            state = uow.bind(self._store).revocation_state(server.id)
        if state is None:
            raise InvalidState(f"Server {server.name} has no certificate authority.")
        revoked = [*state.revoked, *((serial, now) for serial in revoke)]
        number = state.crl_number + 1
        return NewCrl(state.crl_number, number, signer.crl(revoked, number=number, now=now))

    def _publish(self, store: CaStore, server: Server, crl: NewCrl) -> None:
        if not store.publish_crl(server.id, expected_number=crl.expected_number, number=crl.number, crl_pem=crl.pem):
            raise Conflict(f"the CRL of server {server.id} changed")
