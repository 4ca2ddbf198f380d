"""A response's head and body leave in one write (one send(), one packet with TCP_NODELAY)."""

import asyncio

from opscm.app.http_protocol import _CoalescingTransport


class RecordingTransport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed


def test_writes_of_one_turn_go_out_as_one():
    async def scenario():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == [] and transport.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        transport.write(b"next")
        await asyncio.sleep(0)
        assert real.writes[1:] == [b"next"]
        assert transport.is_closing() is False  # anything else is the real transport's

    asyncio.run(scenario())


def test_close_sends_what_is_pending_first_and_abort_drops_it():
    async def scenario():
        loop = asyncio.get_running_loop()
        real = RecordingTransport()
        transport = _CoalescingTransport(real, loop)
        transport.write(b"last answer")
        transport.close()
        assert real.writes == [b"last answer"] and real.closed
        await asyncio.sleep(0)
        assert real.writes == [b"last answer"], "the flush already ran: nothing is written twice"

        real = RecordingTransport()
        transport = _CoalescingTransport(real, loop)
        transport.write(b"never sent")
        transport.abort()
        await asyncio.sleep(0)
        assert real.writes == [] and real.aborted

    asyncio.run(scenario())
