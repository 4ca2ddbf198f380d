"""Group commit for SQLite: one sync of the write-ahead log for many commits.

With ``synchronous=FULL`` every commit syncs the WAL before it returns: on the event loop, the
loop stands still for the disk once per association, and a storm of them is as fast as the
disk's syncs one after the other. The event loop's writers instead commit with
``synchronous=NORMAL`` (the commit is appended to the WAL: atomic and consistent, but not yet
on disk) and count themselves here; one :meth:`WalSync.sync` (in a thread of its own, or on
the loop: see app/durable_answers.py) then fsyncs the WAL for all the commits counted before
it, and no answer made meanwhile leaves before it is done. Nothing a client was told is lost in a power
cut; what no client was told yet may be.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


class WalSync:
    """``sync_data`` syncs the WAL's contents (fdatasync, as SQLite syncs it: its size is synced
    when it grew, its times are not); ``sync_dir`` syncs the directory of a new WAL."""

    def __init__(
        self, database: Path, sync_data: Callable[[int], None] = os.fdatasync, sync_dir: Callable[[int], None] = os.fsync
    ):
        self._wal = Path(f"{database}-wal")
        self._sync_data = sync_data
        self._sync_dir = sync_dir
        self._fd: int | None = None
        self._lock = threading.Lock()  # one sync at a time
        self._failed = False
        self.counted = 0  # commits appended to the WAL unsynced (by the event loop's thread)
        self.synced = 0  # of those, how many a sync has made durable

    def committed(self) -> None:
        """Count a commit made with synchronous=NORMAL, once COMMIT has returned."""
        self.counted += 1

    def pending(self) -> bool:
        return self.synced < self.counted

    def sync(self) -> None:
        """Make every commit counted so far durable (blocks for the disk). After a failed sync
        every later one fails too: pages the kernel could not write may be dropped from its
        cache, and a later fsync that succeeds would not bring them back."""
        with self._lock:
            if self._failed:
                raise OSError("an earlier sync of the database's WAL failed: restart opscm")
            target = self.counted  # these commits' frames were written before they were counted
            try:
                fd = self._wal_fd()
                if fd is not None:
                    self._sync_data(fd)
            except OSError:
                self._failed = True
                raise
            self.synced = max(self.synced, target)

    def _wal_fd(self) -> int | None:
        """A descriptor of the WAL file as it is now. SQLite deletes the WAL when its last
        connection closes (after copying it into the database file and syncing that) and makes
        a new one later: a descriptor of the old one would sync nothing."""
        try:
            inode = os.stat(self._wal).st_ino
        except FileNotFoundError:
            return None  # everything is in the database file, synced
        if self._fd is not None and os.fstat(self._fd).st_ino == inode:
            return self._fd
        self._close_fd()
        # Read-only is enough for fsync; SQLite takes no locks on the WAL file itself, so
        # closing this descriptor cannot drop any of SQLite's.
        self._fd = os.open(self._wal, os.O_RDONLY | os.O_CLOEXEC)
        directory = os.open(self._wal.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._sync_dir(directory)  # a new WAL's name must survive a power cut too
        finally:
            os.close(directory)
        return self._fd

    def close(self) -> None:
        with self._lock:  # not under a sync still running
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
