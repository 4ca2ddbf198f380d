"""SQL implementations of the service ports, one small class per aggregate."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from opscm.domain.associations import Association, AssociationAction, AssociationStatus
from opscm.domain.backups import Backup, BackupStatus, BackupType
from opscm.domain.servers import EngineChoice, Server, ServerStatus
from opscm.service.ports import (
    AccessKey,
    CaRecord,
    CertificateRecord,
    ChefClient,
    Event,
    IssuedCertificate,
    Job,
    PuppetCaState,
)

from . import schema as t


class _Repository:
    def __init__(self, connection: Connection):
        self._db = connection


class SqlServers(_Repository):
    def add(self, server: Server) -> None:
        self._db.execute(insert(t.servers).values(**_server_row(server)))

    def get(self, account_id: str, region: str, name: str) -> Server | None:
        c = t.servers.c
        return self._one(and_(c.account_id == account_id, c.region == region, c.name == name))

    def get_by_id(self, server_id: str) -> Server | None:
        return self._one(t.servers.c.id == server_id)

    def list(self, account_id: str, region: str) -> list[Server]:
        c = t.servers.c
        rows = self._db.execute(
            select(t.servers).where(c.account_id == account_id, c.region == region).order_by(c.created_at, c.name)
        )
        return [_server(row) for row in rows.mappings()]

    def list_all(self) -> list[Server]:
        rows = self._db.execute(select(t.servers).order_by(t.servers.c.created_at))
        return [_server(row) for row in rows.mappings()]

    def count(self, account_id: str, region: str) -> int:
        c = t.servers.c
        return self._db.scalar(select(func.count()).where(c.account_id == account_id, c.region == region))

    def save(self, server: Server) -> None:
        row = _server_row(server)
        self._db.execute(update(t.servers).where(t.servers.c.id == server.id).values(**row))

    def delete(self, server_id: str) -> None:
        self._db.execute(delete(t.servers).where(t.servers.c.id == server_id))

    def _one(self, condition) -> Server | None:
        row = self._db.execute(select(t.servers).where(condition)).mappings().first()
        return _server(row) if row else None


def _server_row(server: Server) -> dict:
    return {
        "id": server.id,
        "account_id": server.account_id,
        "region": server.region,
        "name": server.name,
        "engine": server.engine.engine,
        "engine_model": server.engine.model,
        "engine_version": server.engine.version,
        "status": str(server.status),
        "status_reason": server.status_reason,
        "endpoint": server.endpoint,
        "created_at": server.created_at,
        "settings": server.settings,
        "engine_data": server.engine_data,
        "maintenance_status": server.maintenance_status,
        "last_automated_backup_at": server.last_automated_backup_at,
        "last_maintenance_at": server.last_maintenance_at,
    }


def _server(row) -> Server:
    return Server(
        id=row["id"],
        account_id=row["account_id"],
        region=row["region"],
        name=row["name"],
        engine=EngineChoice(row["engine"], row["engine_model"], row["engine_version"]),
        status=ServerStatus(row["status"]),
        status_reason=row["status_reason"],
        endpoint=row["endpoint"],
        created_at=row["created_at"],
        settings=dict(row["settings"]),
        engine_data=dict(row["engine_data"]),
        maintenance_status=row["maintenance_status"],
        last_automated_backup_at=row["last_automated_backup_at"],
        last_maintenance_at=row["last_maintenance_at"],
    )


class SqlAssociations(_Repository):
    def add(self, association: Association, account_id: str, region: str) -> None:
        self._db.execute(
            insert(t.associations).values(
                token_hash=association.token_hash,
                account_id=account_id,
                region=region,
                server_id=association.server_id,
                node_name=association.node_name,
                action=str(association.action),
                created_at=association.created_at,
                **_association_state(association),
            )
        )

    def get(self, token_hash: str) -> Association | None:
        row = self._db.execute(select(t.associations).where(t.associations.c.token_hash == token_hash))
        row = row.mappings().first()
        if row is None:
            return None
        return Association(
            token_hash=row["token_hash"],
            server_id=row["server_id"],
            node_name=row["node_name"],
            action=AssociationAction(row["action"]),
            status=AssociationStatus(row["status"]),
            created_at=row["created_at"],
            engine_attributes=list(row["engine_attributes"]),
            status_reason=row["status_reason"],
        )

    def save(self, association: Association) -> None:
        c = t.associations.c
        self._db.execute(
            update(t.associations).where(c.token_hash == association.token_hash).values(**_association_state(association))
        )


def _association_state(association: Association) -> dict:
    return {
        "status": str(association.status),
        "status_reason": association.status_reason,
        "engine_attributes": association.engine_attributes,
    }


class SqlJobs(_Repository):
    def add(self, kind: str, server_id: str, now: datetime, payload: dict | None = None) -> int:
        result = self._db.execute(
            insert(t.jobs).values(
                kind=kind, server_id=server_id, state="pending", attempts=0, created_at=now, payload=payload
            )
        )
        return result.inserted_primary_key[0]

    def claim(self, now: datetime, lease_seconds: float) -> Job | None:
        """Take the oldest pending job whose lease is free; the lease outlives a crashed worker."""
        c = t.jobs.c
        free = or_(c.lease_until.is_(None), c.lease_until < now)
        row = self._db.execute(
            select(t.jobs).where(c.state == "pending", free).order_by(c.id).limit(1)
        ).mappings().first()
        if row is None:
            return None
        taken = self._db.execute(
            update(t.jobs)
            .where(c.id == row["id"], free)
            .values(lease_until=now + timedelta(seconds=lease_seconds), attempts=c.attempts + 1)
        )
        if taken.rowcount != 1:
            return None
        return Job(
            id=row["id"], kind=row["kind"], server_id=row["server_id"], attempts=row["attempts"] + 1, payload=row["payload"]
        )

    def finish(self, job_id: int, *, error: str | None = None) -> None:
        self._db.execute(
            update(t.jobs)
            .where(t.jobs.c.id == job_id)
            .values(state="failed" if error else "done", last_error=error, lease_until=None)
        )


    def release_leases(self) -> None:
        self._db.execute(update(t.jobs).where(t.jobs.c.state == "pending").values(lease_until=None))

    def unfinished(self) -> int:
        return self._db.scalar(select(func.count()).where(t.jobs.c.state == "pending"))


class SqlPuppetCas(_Repository):
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


class SqlChefClients(_Repository):
    def put(self, server_id: str, organization: str, name: str, public_key_pem: str, now: datetime) -> bool:
        """Register or re-key a client; True when it replaced an existing key."""
        existed = self.delete(server_id, organization, name)
        self._db.execute(
            insert(t.chef_clients).values(
                server_id=server_id, organization=organization, name=name, public_key_pem=public_key_pem, created_at=now
            )
        )
        return existed

    def list(self, server_id: str) -> list[ChefClient]:
        c = t.chef_clients.c
        rows = self._db.execute(
            select(c.organization, c.name, c.public_key_pem, c.created_at)
            .where(c.server_id == server_id)
            .order_by(c.organization, c.name)
        )
        return [ChefClient(*row) for row in rows]

    def get(self, server_id: str, organization: str, name: str) -> str | None:
        c = t.chef_clients.c
        return self._db.scalar(
            select(c.public_key_pem).where(c.server_id == server_id, c.organization == organization, c.name == name)
        )

    def delete(self, server_id: str, organization: str, name: str) -> bool:
        c = t.chef_clients.c
        result = self._db.execute(
            delete(t.chef_clients).where(c.server_id == server_id, c.organization == organization, c.name == name)
        )
        return result.rowcount > 0

    def replace_all(self, server_id: str, clients) -> None:
        self._db.execute(delete(t.chef_clients).where(t.chef_clients.c.server_id == server_id))
        if clients:
            self._db.execute(
                insert(t.chef_clients), [{"server_id": server_id, **dataclasses.asdict(client)} for client in clients]
            )


class SqlAccessKeys(_Repository):
    def add(self, key: AccessKey, secret_enc: bytes, now: datetime) -> None:
        self._db.execute(
            insert(t.access_keys).values(
                access_key_id=key.access_key_id,
                account_id=key.account_id,
                secret_enc=secret_enc,
                name=key.name,
                actions=list(key.actions),
                server_names=list(key.server_names) if key.server_names is not None else None,
                created_at=now,
            )
        )

    def get(self, access_key_id: str) -> tuple[AccessKey, bytes] | None:
        row = self._db.execute(select(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id))
        row = row.mappings().first()
        if row is None:
            return None
        return _access_key(row), row["secret_enc"]

    def list(self) -> list[AccessKey]:
        c = t.access_keys.c
        rows = self._db.execute(select(t.access_keys).order_by(c.created_at, c.access_key_id))
        return [_access_key(row) for row in rows.mappings()]

    def remove(self, access_key_id: str) -> bool:
        result = self._db.execute(delete(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id))
        return result.rowcount > 0

    def count(self) -> int:
        return self._db.scalar(select(func.count()).select_from(t.access_keys))


def _access_key(row) -> AccessKey:
    """A stored key without its secret (``secret_enc`` is read separately, only for SigV4)."""
    names = row["server_names"]
    return AccessKey(
        access_key_id=row["access_key_id"],
        account_id=row["account_id"],
        secret_access_key="",
        name=row["name"],
        actions=tuple(row["actions"]),
        server_names=tuple(names) if names is not None else None,
    )


class SqlEvents(_Repository):
    def add(self, server_id: str, now: datetime, message: str, log_url: str | None = None) -> None:
        self._db.execute(insert(t.events).values(server_id=server_id, created_at=now, message=message, log_url=log_url))

    def list(self, server_id: str) -> list[Event]:
        c = t.events.c
        rows = self._db.execute(select(t.events).where(c.server_id == server_id).order_by(c.id.desc()))
        return [Event(**row) for row in rows.mappings()]


class SqlBackups(_Repository):
    def add(self, backup: Backup) -> None:
        self._db.execute(insert(t.backups).values(**_backup_row(backup)))

    def get(self, account_id: str, region: str, backup_id: str) -> Backup | None:
        c = t.backups.c
        row = self._db.execute(
            select(t.backups).where(c.account_id == account_id, c.region == region, c.id == backup_id)
        ).mappings().first()
        return _backup(row) if row else None

    def save(self, backup: Backup) -> None:
        self._db.execute(update(t.backups).where(t.backups.c.id == backup.id).values(**_backup_row(backup)))

    def delete(self, backup_id: str) -> None:
        self._db.execute(delete(t.backups).where(t.backups.c.id == backup_id))

    def list(self, account_id: str, region: str, server_name: str | None = None) -> list[Backup]:
        c = t.backups.c
        query = select(t.backups).where(c.account_id == account_id, c.region == region)
        if server_name is not None:
            query = query.where(c.server_name == server_name)
        rows = self._db.execute(query.order_by(c.created_at.desc(), c.id.desc()))
        return [_backup(row) for row in rows.mappings()]

    def count(self, account_id: str, region: str, backup_type: str) -> int:
        c = t.backups.c
        return self._db.scalar(
            select(func.count()).where(c.account_id == account_id, c.region == region, c.backup_type == backup_type)
        )


def _backup_row(backup: Backup) -> dict:
    return {
        "id": backup.id,
        "account_id": backup.account_id,
        "region": backup.region,
        "server_id": backup.server_id,
        "server_name": backup.server_name,
        "backup_type": str(backup.backup_type),
        "status": str(backup.status),
        "status_description": backup.status_description,
        "description": backup.description,
        "created_at": backup.created_at,
        "server_snapshot": backup.server_snapshot,
        "size_bytes": backup.size_bytes,
        "location": backup.location,
    }


def _backup(row) -> Backup:
    return Backup(
        id=row["id"],
        account_id=row["account_id"],
        region=row["region"],
        server_id=row["server_id"],
        server_name=row["server_name"],
        backup_type=BackupType(row["backup_type"]),
        status=BackupStatus(row["status"]),
        created_at=row["created_at"],
        server_snapshot=dict(row["server_snapshot"]),
        description=row["description"],
        status_description=row["status_description"],
        size_bytes=row["size_bytes"],
        location=row["location"],
    )


class SqlTags(_Repository):
    def put(self, resource_arn: str, tags) -> None:
        c = t.tags.c
        existing = {key for (key, _value) in self.list(resource_arn)}
        position = self._db.scalar(select(func.coalesce(func.max(c.position), 0)).where(c.resource_arn == resource_arn))
        for key, value in tags:
            if key in existing:
                self._db.execute(update(t.tags).where(c.resource_arn == resource_arn, c.key == key).values(value=value))
            else:
                position += 1
                existing.add(key)
                self._db.execute(insert(t.tags).values(resource_arn=resource_arn, key=key, value=value, position=position))

    def remove(self, resource_arn: str, keys) -> None:
        c = t.tags.c
        self._db.execute(delete(t.tags).where(c.resource_arn == resource_arn, c.key.in_(list(keys))))

    def list(self, resource_arn: str) -> list[tuple[str, str]]:
        c = t.tags.c
        rows = self._db.execute(select(c.key, c.value).where(c.resource_arn == resource_arn).order_by(c.position))
        return [(row.key, row.value) for row in rows]

    def delete_all(self, resource_arn: str) -> None:
        self._db.execute(delete(t.tags).where(t.tags.c.resource_arn == resource_arn))
