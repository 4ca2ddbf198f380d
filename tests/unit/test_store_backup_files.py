"""Backup files: sealed, mode 0600, written whole, and only ever inside their directory."""

import os
import stat

import pytest

from opscm.app.secret_box import AesGcmBox
from opscm.store.backup_files import FileBackupStorage, MemoryBackupStorage


@pytest.fixture
def box():
    return AesGcmBox(os.urandom(32))


def test_put_get_delete(tmp_path, box):
    storage = FileBackupStorage(tmp_path / "backups", box)
    location = storage.put("web-20260101000000000", b'{"secret": "-----BEGIN PRIVATE KEY-----"}')
    path = tmp_path / "backups" / location
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    assert b"PRIVATE KEY" not in path.read_bytes()
    assert storage.get(location) == b'{"secret": "-----BEGIN PRIVATE KEY-----"}'
    assert storage.url(location) == path.resolve().as_uri()
    assert sorted(os.listdir(tmp_path / "backups")) == [location], "no temporary file is left behind"
    # Written again (a job run again after a restart): replaced whole.
    storage.put("web-20260101000000000", b"second")
    assert storage.get(location) == b"second"
    storage.delete(location)
    storage.delete(location)  # already gone: fine
    assert not path.exists()


def test_another_key_cannot_open_it(tmp_path, box):
    location = FileBackupStorage(tmp_path, box).put("web-20260101000000000", b"data")
    with pytest.raises(ValueError, match="does not open"):  # authenticated encryption: another key cannot open it
        FileBackupStorage(tmp_path, AesGcmBox(os.urandom(32))).get(location)


@pytest.mark.parametrize("location", ["../opscm.db", "/etc/passwd", "x/../../y.backup", "master.key", ""])
def test_locations_stay_inside_the_directory(tmp_path, box, location):
    storage = FileBackupStorage(tmp_path / "backups", box)
    for call in (storage.get, storage.delete, storage.url):
        with pytest.raises(ValueError):
            call(location)


def test_memory_storage(box):
    storage = MemoryBackupStorage(box)
    location = storage.put("web-20260101000000000", b"data")
    assert storage.get(location) == b"data" and storage.url(location) is None
    storage.delete(location)
    with pytest.raises(FileNotFoundError):
        storage.get(location)
