"""SQL store of the built-in Puppet CAs: keys (sealed), counters, CRLs, issued certificates."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, delete, func, insert, select, update

from opscm.engines.ports import CaRecord, CertificateRecord, CertificateStatus, PuppetCaState, RevocationState

from .. import schema as t
from .base import Repository
from .text_search import LIKE_ESCAPE, contains_pattern

_CERT_COLUMNS = (
    t.puppet_certificates.c.serial,
    t.puppet_certificates.c.certname,
    t.puppet_certificates.c.cert_pem,
    t.puppet_certificates.c.not_after,
    t.puppet_certificates.c.revoked_at,
)
_STATUS_COLUMNS = tuple(column for column in _CERT_COLUMNS if column.name != "cert_pem")


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

    def reserve_serials(self, server_id: str, count: int) -> int | None:
        # Plain SQL: a lean transaction of its own, queued with the hot path's other writers.
        row = self._sql.first(
            "UPDATE puppet_cas SET next_serial = next_serial + :count WHERE server_id = :server_id RETURNING next_serial",
            {"count": count, "server_id": server_id},
        )
        return None if row is None else row[0] - count

    def revocation_state(self, server_id: str) -> RevocationState | None:
        number = self._db.scalar(select(t.puppet_cas.c.crl_number).where(t.puppet_cas.c.server_id == server_id))
        if number is None:
            return None
        c = t.puppet_certificates.c
        revoked = self._db.execute(
            select(c.serial, c.revoked_at).where(c.server_id == server_id, c.revoked_at.is_not(None)).order_by(c.serial)
        )
        return RevocationState(number, tuple((row.serial, row.revoked_at) for row in revoked))

    def publish_crl(self, server_id: str, *, expected_number: int, number: int, crl_pem: str) -> bool:
        return self._sql.changed(
            "UPDATE puppet_cas SET crl_number = :number, crl_pem = :crl_pem "
            "WHERE server_id = :server_id AND crl_number = :expected",
            {"number": number, "crl_pem": crl_pem, "server_id": server_id, "expected": expected_number},
        )

    def add_certificate(self, server_id: str, serial: int, certname: str, cert_pem: str, not_after: datetime) -> None:
        self._sql.execute(
            "INSERT INTO puppet_certificates (server_id, serial, certname, cert_pem, not_after) "
            "VALUES (:server_id, :serial, :certname, :cert_pem, :not_after)",
            {
                "server_id": server_id,
                "serial": serial,
                "certname": certname,
                "cert_pem": cert_pem,
                "not_after": self._sql.time(not_after),
            },
        )

    def revoke(self, server_id: str, serials: Sequence[int], at: datetime) -> None:
        for serial in serials:
            self._sql.execute(
                "UPDATE puppet_certificates SET revoked_at = :at "
                "WHERE server_id = :server_id AND serial = :serial AND revoked_at IS NULL",
                {"at": self._sql.time(at), "server_id": server_id, "serial": serial},
            )

    def certificate_pem(self, server_id: str, certname: str) -> str | None:
        c = t.puppet_certificates.c
        return self._db.scalar(
            select(c.cert_pem)
            .where(c.server_id == server_id, c.certname == certname, c.revoked_at.is_(None))
            .order_by(c.serial.desc())
            .limit(1)
        )

    def certificates(self, server_id: str) -> list[CertificateRecord]:
        c = t.puppet_certificates.c
        rows = self._db.execute(select(*_CERT_COLUMNS).where(c.server_id == server_id).order_by(c.serial))
        return [CertificateRecord(*row) for row in rows]

    def soonest_expiry(self, server_id: str, *, after: datetime) -> datetime | None:
        c = t.puppet_certificates.c
        return self._db.scalar(
            select(func.min(c.not_after)).where(c.server_id == server_id, c.revoked_at.is_(None), c.not_after > after)
        )

    def expired(self, server_id: str, now: datetime) -> list[CertificateRecord]:
        c = t.puppet_certificates.c
        rows = self._db.execute(
            select(*_CERT_COLUMNS).where(c.server_id == server_id, c.not_after < now).order_by(c.serial)
        )
        return [CertificateRecord(*row) for row in rows]

    def delete_certificates(self, server_id: str, serials: Sequence[int]) -> None:
        c = t.puppet_certificates.c
        self._db.execute(delete(t.puppet_certificates).where(c.server_id == server_id, c.serial.in_(list(serials))))

    def export_state(self, server_id: str) -> PuppetCaState | None:
        ca = self._db.execute(select(t.puppet_cas).where(t.puppet_cas.c.server_id == server_id)).mappings().first()
        if ca is None:
            return None
        return PuppetCaState(
            ca=CaRecord(key_enc=ca["key_enc"], cert_pem=ca["cert_pem"], crl_pem=ca["crl_pem"]),
            next_serial=ca["next_serial"],
            crl_number=ca["crl_number"],
            certificates=tuple(self.certificates(server_id)),
        )

    def statuses(self, server_id: str, serials: Sequence[int]) -> list[CertificateStatus]:
        c = t.puppet_certificates.c
        if not serials:
            return []
        rows = self._db.execute(select(*_STATUS_COLUMNS).where(c.server_id == server_id, c.serial.in_(list(serials))))
        return [CertificateStatus(*row) for row in rows]

    def revoked_statuses(self, server_id: str, certname_contains: str | None, limit: int) -> list[CertificateStatus]:
        c = t.puppet_certificates.c
        query = select(*_STATUS_COLUMNS).where(c.server_id == server_id, c.revoked_at.is_not(None))
        if certname_contains:
            query = query.where(func.lower(c.certname).like(contains_pattern(certname_contains), escape=LIKE_ESCAPE))
        rows = self._db.execute(query.order_by(c.revoked_at.desc(), c.serial.desc()).limit(limit))
        return [CertificateStatus(*row) for row in rows]

    def expiring_statuses(self, server_id: str, before: datetime, limit: int) -> list[CertificateStatus]:
        c = t.puppet_certificates.c
        rows = self._db.execute(
            select(*_STATUS_COLUMNS)
            .where(c.server_id == server_id, c.revoked_at.is_(None), c.not_after < before)
            .order_by(c.not_after, c.serial)
            .limit(limit)
        )
        return [CertificateStatus(*row) for row in rows]

    def import_state(self, server_id: str, state: PuppetCaState) -> None:
        self._db.execute(delete(t.puppet_certificates).where(t.puppet_certificates.c.server_id == server_id))
        c = t.puppet_cas.c
        row = {"key_enc": state.ca.key_enc, "cert_pem": state.ca.cert_pem, "crl_pem": state.ca.crl_pem,
               "crl_number": state.crl_number}
        # The row is updated in place, its serial counter never lowered: a block another worker or
        # replica reserved after the state was planned is never handed out again, and a
        # reservation waiting on this row finds it (a deleted row would fail it).
        kept = case((c.next_serial > state.next_serial, c.next_serial), else_=state.next_serial)
        updated = self._db.execute(update(t.puppet_cas).where(c.server_id == server_id).values(**row, next_serial=kept))
        if not updated.rowcount:  # a new server made from a backup
            self._db.execute(insert(t.puppet_cas).values(server_id=server_id, **row, next_serial=state.next_serial))
        if state.certificates:
            self._db.execute(
                insert(t.puppet_certificates),
                [{"server_id": server_id, **dataclasses.asdict(cert)} for cert in state.certificates],
            )
