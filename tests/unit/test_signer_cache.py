import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from opscm.engines.serial_blocks import SerialBlocks
from opscm.engines.signer_cache import SignerCache


def test_signer_is_loaded_once_per_ca_certificate_and_reloaded_when_it_changes():
    cache = SignerCache(capacity=2)
    loads = []

    def loader(tag):
        def load():
            loads.append(tag)
            return object()

        return load

    first = cache.get("s1", "cert-1", loader("a"))
    assert cache.get("s1", "cert-1", loader("b")) is first
    restored = cache.get("s1", "cert-2", loader("c"))  # a restore brought another CA
    assert restored is not first
    cache.get("s2", "c", loader("d"))
    cache.get("s3", "c", loader("e"))  # evicts s1, the least recently used
    cache.get("s1", "cert-2", loader("f"))
    cache.forget("s3")
    cache.get("s3", "c", loader("g"))
    assert loads == ["a", "c", "d", "e", "f", "g"]


def test_threads_that_meet_an_empty_cache_load_the_key_once():
    """A boot storm on a process that has loaded nothing yet: 32 request threads want the same
    signer; one loads it (a 4096-bit key takes ~250 ms), the others wait and take it."""
    cache = SignerCache()
    loads = []

    def load():
        loads.append(threading.get_ident())
        time.sleep(0.2)  # the others arrive meanwhile
        return object()

    with ThreadPoolExecutor(32) as pool:
        signers = list(pool.map(lambda _: cache.get("s1", "cert-1", load), range(32)))
    assert len(loads) == 1
    assert len({id(signer) for signer in signers}) == 1


def test_a_failed_load_leaves_the_next_thread_to_try():
    cache = SignerCache()
    attempts = []

    def load():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("the store is away")
        return "signer"

    with pytest.raises(OSError):
        cache.get("s1", "cert-1", load)
    assert cache.get("s1", "cert-1", load) == "signer"
    assert len(attempts) == 2


def test_serials_come_in_blocks_unique_and_increasing_per_process():
    counter = {"s1": 2, "s2": 2}
    reservations = []

    def reserve(server_id, count):
        reservations.append((server_id, count))
        first = counter[server_id]
        counter[server_id] += count
        return first

    blocks = SerialBlocks(reserve, block=3)
    serials = [blocks.next("s1") for _ in range(7)]
    assert serials == [2, 3, 4, 5, 6, 7, 8]
    assert reservations == [("s1", 3)] * 3
    assert blocks.next("s2") == 2
    # Another process took the counter on meanwhile: a forgotten block is never reused.
    counter["s1"] += 100
    blocks.forget("s1")
    assert blocks.next("s1") == 111


def test_a_serial_reservation_holds_no_lock_that_others_wait_on():
    """A thread whose reservation waits (another writer holds the database) must not make a
    thread that needs a block wait behind it: the event loop would stand still (it raises
    WouldWait instead, from its own reservation)."""
    counter = {"s1": 2}
    slow_started, release = threading.Event(), threading.Event()

    def reserve(server_id, count):
        if threading.current_thread().name == "slow":
            slow_started.set()
            assert release.wait(10)
        first = counter[server_id]
        counter[server_id] += count
        return first

    blocks = SerialBlocks(reserve, block=4)
    slow_serials = []
    slow = threading.Thread(target=lambda: slow_serials.append(blocks.next("s1")), name="slow")
    slow.start()
    assert slow_started.wait(10)
    # While the slow reservation is under way, another thread gets its own block at once.
    assert [blocks.next("s1") for _ in range(3)] == [2, 3, 4]
    release.set()
    slow.join(10)
    # The slow block (6-9) came after the one in use (2-5): it replaces it (3 lost), and no
    # serial is handed out twice.
    assert slow_serials == [6]
    assert blocks.next("s1") == 7


def test_a_block_reserved_before_the_one_in_use_is_dropped():
    firsts = iter([14, 20])  # reservations, in the database's order
    nested = []

    def reserve(server_id, count):
        first = next(firsts)
        if first == 14:
            # While this reservation is on its way back, another thread reserves after it and
            # takes its first serial.
            other = threading.Thread(target=lambda: nested.append(blocks.next("s1")))
            other.start()
            other.join(10)
        return first

    blocks = SerialBlocks(reserve, block=4)
    # 14 would come after 20 in this process: the older block is dropped, never used.
    assert blocks.next("s1") == 21
    assert nested == [20]
