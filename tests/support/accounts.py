"""A second account's key, written straight into a served data dir (until `opscm credentials` exists)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from opscm.app.credentials import new_access_key, new_account_id, store_key
from opscm.app.secret_box import AesGcmBox, load_master_key
from opscm.store.database import open_database, sqlite_url
from opscm.store.unit_of_work import SqlUnitOfWorkFactory


def add_account_key(data_dir: Path) -> tuple[str, str]:
    database = open_database(sqlite_url(data_dir))
    try:
        key = new_access_key(new_account_id(), "other-account")
        store_key(SqlUnitOfWorkFactory(database), AesGcmBox(load_master_key(data_dir)), key, datetime.now(timezone.utc))
    finally:
        database.dispose()
    return key.access_key_id, key.secret_access_key
