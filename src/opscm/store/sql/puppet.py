"""SQL store of the built-in Puppet CAs: keys (sealed), counters, CRLs, issued certificates."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from opscm.service.ports import (
    CaRecord,
    CertificateRecord,
    IssuedCertificate,
    PuppetCaState,
)

from .. import schema as t
from .base import Repository


class SqlPuppetCas(Repository):
    def create(self, server_id: str, ca: CaRecord) -> None:
        self._db.execute(
            insert(t.puppet_cas).values(
                server_id=server_id,
                key_enc=ca.key_enc,
                cert_pem=ca.cert_pem,
                crl_pem=ca.crl_pem,
                # Puppet's counter: the CA itself is serial 1.
                next_serial=2,
                crl_number=1,
            )
        )

    def get(self, server_id: str) -> CaRecord | None:
        c = t.puppet_cas.c
        row = self._db.execute(select(c.key_enc, c.cert_pem, c.crl_pem).where(c.server_id == server_id)).first()
        return CaRecord(key_enc=row.key_enc, cert_pem=row.cert_pem, crl_pem=row.crl_pem) if row else None

    def allocate_serial(self, server_id: str) -> int:
        return self._take(t.puppet_cas.c.next_serial, server_id)

    def allocate_crl_number(self, server_id: str) -> int:
        return self._take(t.puppet_cas.c.crl_number, server_id) + 1

    def _take(self, counter, server_id: str) -> int:
        """Read and advance a counter inside this transaction: the database hands out each value once."""
        c = t.puppet_cas.c
        self._db.execute(update(t.puppet_cas).where(c.server_id == server_id).values({counter: counter + 1}))
        return self._db.scalar(select(counter).where(c.server_id == server_id)) - 1

    def set_crl(self, server_id: str, crl_pem: str) -> None:
        c = t.puppet_cas.c
        self._db.execute(update(t.puppet_cas).where(c.server_id == server_id).values(crl_pem=crl_pem))

    def add_certificate(self, server_id: str, serial: int, certname: str, cert_pem: str, not_after: datetime) -> None:
        self._db.execute(
            insert(t.puppet_certificates).values(
                server_id=server_id, serial=serial, certname=certname, cert_pem=cert_pem, not_after=not_after
            )
        )

    def certificates(self, server_id: str, certname: str | None = None) -> list[IssuedCertificate]:
        c = t.puppet_certificates.c
        query = select(c.serial, c.certname, c.not_after, c.revoked_at).where(c.server_id == server_id)
        if certname is not None:
            query = query.where(c.certname == certname)
        return [IssuedCertificate(*row) for row in self._db.execute(query.order_by(c.serial))]

    def certificate_pem(self, server_id: str, certname: str) -> str | None:
        c = t.puppet_certificates.c
        return self._db.scalar(
            select(c.cert_pem)
            .where(c.server_id == server_id, c.certname == certname, c.revoked_at.is_(None))
            .order_by(c.serial.desc())
            .limit(1)
        )

    def delete_expired(self, server_id: str, now: datetime) -> int:
        c = t.puppet_certificates.c
        result = self._db.execute(delete(t.puppet_certificates).where(c.server_id == server_id, c.not_after < now))
        return result.rowcount

    def revoke(self, server_id: str, serial: int, at: datetime) -> None:
        c = t.puppet_certificates.c
        self._db.execute(
            update(t.puppet_certificates).where(c.server_id == server_id, c.serial == serial).values(revoked_at=at)
        )

    def export_state(self, server_id: str) -> PuppetCaState | None:
        ca = self._db.execute(select(t.puppet_cas).where(t.puppet_cas.c.server_id == server_id)).mappings().first()
        if ca is None:
            return None
        c = t.puppet_certificates.c
        rows = self._db.execute(
            select(c.serial, c.certname, c.cert_pem, c.not_after, c.revoked_at)
            .where(c.server_id == server_id)
            .order_by(c.serial)
        )
        return PuppetCaState(
            ca=CaRecord(key_enc=ca["key_enc"], cert_pem=ca["cert_pem"], crl_pem=ca["crl_pem"]),
            next_serial=ca["next_serial"],
            crl_number=ca["crl_number"],
            certificates=tuple(CertificateRecord(*row) for row in rows),
        )

    def import_state(self, server_id: str, state: PuppetCaState) -> None:
        self._db.execute(delete(t.puppet_certificates).where(t.puppet_certificates.c.server_id == server_id))
        self._db.execute(delete(t.puppet_cas).where(t.puppet_cas.c.server_id == server_id))
        self._db.execute(
            insert(t.puppet_cas).values(
                server_id=server_id,
                key_enc=state.ca.key_enc,
                cert_pem=state.ca.cert_pem,
                crl_pem=state.ca.crl_pem,
                next_serial=state.next_serial,
                crl_number=state.crl_number,
            )
        )
        if state.certificates:
            self._db.execute(
                insert(t.puppet_certificates),
                [{"server_id": server_id, **dataclasses.asdict(cert)} for cert in state.certificates],
            )
