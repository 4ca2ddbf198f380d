"""The process's cache of server rows: a reload never puts an older revision of a row over a
newer one that another thread read meanwhile."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import types

from opscm.service.server_cache import ServerCache


@dataclasses.dataclass
class Row:
    id: str
    revision: int


def test_a_reload_that_read_an_older_revision_keeps_the_newer_one():
    rows = [Row("s1", 5), Row("s1", 6)]  # what two reads find, in this order
    first_read_done, release_first = threading.Event(), threading.Event()

    def get(account_id, region, name):
        row = rows.pop(0)
        if row.revision == 5:  # the first read returns late
            first_read_done.set()
            assert release_first.wait(10)
        return row

    def uow(*, read_only=False, lean=False):
        return contextlib.nullcontext(types.SimpleNamespace(servers=types.SimpleNamespace(get=get)))

    cache = ServerCache(uow)
    late: list[Row] = []
    reader = threading.Thread(target=lambda: late.append(cache.reload("a", "r", "n")))
    reader.start()
    assert first_read_done.wait(10)
    assert cache.reload("a", "r", "n").revision == 6  # the second read, stored first
    release_first.set()
    reader.join(10)
    assert late[0].revision == 6  # the late reader is given the newer row it found cached
    assert cache.peek("a", "r", "n").revision == 6


def test_a_row_of_another_server_of_the_name_replaces_the_cached_one():
    rows = [Row("s1", 9), Row("s2", 1)]  # deleted and made again: a new id, a new count

    def uow(*, read_only=False, lean=False):
        servers = types.SimpleNamespace(get=lambda account_id, region, name: rows.pop(0))
        return contextlib.nullcontext(types.SimpleNamespace(servers=servers))

    cache = ServerCache(uow)
    cache.reload("a", "r", "n")
    assert cache.reload("a", "r", "n").id == "s2"
    assert cache.peek("a", "r", "n").id == "s2"
