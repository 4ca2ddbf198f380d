"""Backup snapshots as files in ``<data-dir>/backups/``: sealed with the secret box, mode 0600.

A file is written under a temporary name and renamed into place, so a crash never leaves a
half-written snapshot under a backup's name.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from opscm.service.ports import SecretBox

_SUFFIX = ".backup"
# Backup ids are ``<ServerName>-<digits>``; a stored location is the file's name, nothing else.
_LOCATION = re.compile(r"[A-Za-z][A-Za-z0-9\-]*" + re.escape(_SUFFIX))


class FileBackupStorage:
    def __init__(self, directory: Path, secret_box: SecretBox):
        self._directory = Path(directory)
        self._box = secret_box

    def put(self, backup_id: str, data: bytes) -> str:
        location = backup_id + _SUFFIX
        path = self._path(location)
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self._directory / f".{location}.{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(self._box.seal(data))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temporary, path)
        return location

    def get(self, location: str) -> bytes:
        return self._box.open(self._path(location).read_bytes())

    def delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)

    def url(self, location: str) -> str | None:
        return self._path(location).resolve().as_uri()

    def stored(self, backup_id: str) -> str | None:
        location = backup_id + _SUFFIX
        return location if self._path(location).exists() else None

    def _path(self, location: str) -> Path:
        # Locations come from our own rows, but never let one name a file outside the directory.
        if not _LOCATION.fullmatch(location):
            raise ValueError(f"not a backup location: {location!r}")
        return self._directory / location


class MemoryBackupStorage:
    """For a store without a data dir (an in-memory database): snapshots live as long as the process."""

    def __init__(self, secret_box: SecretBox):
        self._box = secret_box
        self._blobs: dict[str, bytes] = {}

    def put(self, backup_id: str, data: bytes) -> str:
        self._blobs[backup_id] = self._box.seal(data)
        return backup_id

    def stored(self, backup_id: str) -> str | None:
        return backup_id if backup_id in self._blobs else None

    def get(self, location: str) -> bytes:
        try:
            return self._box.open(self._blobs[location])
        except KeyError:
            raise FileNotFoundError(f"no stored snapshot {location}") from None

    def delete(self, location: str) -> None:
        self._blobs.pop(location, None)

    def url(self, location: str) -> str | None:
        return None
