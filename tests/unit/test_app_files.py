"""Secret files in the data dir: 0600 from the first byte, never written or read through a link
planted there; SQL parameters never in logs."""

import base64
import logging
import os
import stat

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from opscm.app.credentials import ensure_admin
from opscm.app.files import read_private_file, replace_private_file, write_private_file
from opscm.app.secret_box import AesGcmBox, load_master_key
from opscm.store.database import migrate, open_database
from opscm.store.unit_of_work import SqlUnitOfWorkFactory


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_files_are_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_private_file(tmp_path / "secret", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "secret") == 0o600 and read_private_file(tmp_path / "secret") == b"x"


def test_an_existing_file_is_never_overwritten(tmp_path):
    (tmp_path / "secret").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "secret", b"new")
    assert (tmp_path / "secret").read_bytes() == b"old"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A data dir where someone linked master.key and credentials to files of their choice."""
    monkeypatch.delenv("OPSCM_MASTER_KEY", raising=False)
    data_dir, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data_dir.mkdir()
    elsewhere.mkdir()
    target = elsewhere / "victim"
    target.write_bytes(b"do not touch")
    (data_dir / "credentials").symlink_to(target)
    (data_dir / "master.key").symlink_to(elsewhere / "dangling")  # O_CREAT alone would create it
    return data_dir, elsewhere


def test_a_planted_link_as_master_key_is_neither_written_nor_read(planted):
    data_dir, elsewhere = planted
    with pytest.raises(OSError, match="symbolic link"):
        load_master_key(data_dir)
    assert not (elsewhere / "dangling").exists()
    (elsewhere / "dangling").write_bytes(base64.b64encode(os.urandom(32)))  # a key the planter knows
    with pytest.raises(OSError, match="symbolic link"):
        load_master_key(data_dir)


def test_a_planted_link_as_credentials_is_replaced_not_followed(planted):
    data_dir, elsewhere = planted
    (data_dir / "master.key").unlink()
    key = load_master_key(data_dir)
    assert _mode(data_dir / "master.key") == 0o600
    database = open_database("sqlite://")
    migrate(database)
    written = ensure_admin(SqlUnitOfWorkFactory(database), AesGcmBox(key), data_dir, _now())
    assert written == data_dir / "credentials" and not written.is_symlink()
    assert _mode(written) == 0o600 and "aws_secret_access_key" in written.read_text()
    assert (elsewhere / "victim").read_bytes() == b"do not touch"


def test_replacing_a_private_file(tmp_path):
    write_private_file(tmp_path / "secret", b"old")
    replace_private_file(tmp_path / "secret", b"new")
    assert read_private_file(tmp_path / "secret") == b"new" and _mode(tmp_path / "secret") == 0o600


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://nobody@127.0.0.1:1/none"])
def test_sql_parameters_are_never_logged(url):
    assert open_database(url).hide_parameters


def test_a_failing_statement_does_not_show_its_parameters(caplog):
    database = open_database("sqlite://")
    with database.begin() as connection:
        connection.execute(text("create table t (v text primary key)"))
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    with pytest.raises(IntegrityError) as raised, database.begin() as connection:
        for _ in range(2):
            connection.execute(text("insert into t values (:v)"), {"v": "top-secret-value"})
    assert "top-secret-value" not in str(raised.value)
    assert "SQL parameters hidden" in str(raised.value)
    assert "top-secret-value" not in caplog.text


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
