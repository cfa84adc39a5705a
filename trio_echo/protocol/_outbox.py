# The answers of one connection not yet sent, and what they cost.
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

__all__ = ["BUFFER_OVERHEAD", "COALESCE_LIMIT", "Chunk", "Outbox"]

Chunk = bytes | bytearray | memoryview
"""A piece of bytes received or to send."""

BUFFER_OVERHEAD = 64
"""Bytes charged for each buffer held, besides its contents: a bytes
object's header (33 bytes), its slot in a deque (8) and the allocator's
rounding."""

COALESCE_LIMIT = 4 * 1024
"""Answers shorter than this are joined into one buffer, instead of being
queued as objects of their own."""


OUTBOX_FIELDS = ("_out", "_out_held", "_out_offset", "bytes_out")
"""The slots of `EchoProtocol` that this part keeps."""


class Outbox:
    """The answers not yet sent, and what they cost: a part of `EchoProtocol`.

    They are sent in order; the first may be partly sent. Small answers are
    joined, so that a flood of tiny messages costs its bytes, not an object
    each. Its fields are `OUTBOX_FIELDS`, slots of the protocol, which starts them.
    """

    if not TYPE_CHECKING:  # its fields are the protocol's slots
        __slots__ = ()

    _out: deque[bytes] | None  # made with the first answer
    _out_held: int  # what the answers cost: their bytes, and BUFFER_OVERHEAD a buffer
    _out_offset: int  # into the first

    bytes_out: int

    if TYPE_CHECKING:

        def _progress(self, now: float) -> None: ...

    def data_to_send(self) -> Chunk | None:
        """Return the next bytes to send, or None if there are none.

        They stay queued until `sent` reports them: ask again after each
        send. A pump that sends from two places must send from one at a
        time, in order.
        """
        out = self._out
        if not out:
            return None
        front = out[0]
        return memoryview(front)[self._out_offset :] if self._out_offset else front

    def peer_took(self, now: float) -> None:
        """Report that the peer took bytes sent earlier (none sent now).

        A transport that sees its buffers drain says so while a send waits:
        the connection is not idle, though nothing more could be sent yet.
        """
        self._progress(now)

    def _append(self, buffer: bytes) -> None:
        """Queue a buffer of answers; a small one joins the small one before it.

        The first buffer may be being sent, so it is never joined: a join
        copies at most COALESCE_LIMIT bytes, and leaves one object where
        there were two.
        """
        out = self._out
        if out is None:
            out = self._out = deque()
        elif len(buffer) < COALESCE_LIMIT and len(out) > 1 and len(out[-1]) < COALESCE_LIMIT:
            last = out.pop()
            self._out_held -= len(last) + BUFFER_OVERHEAD
            buffer = last + buffer
        out.append(buffer)
        self._out_held += len(buffer) + BUFFER_OVERHEAD

    def sent(self, count: int, now: float) -> None:
        """Report that ``count`` bytes of `data_to_send` were sent."""
        if not count:
            return
        self.bytes_out += count
        out = self._out
        if not out:
            return  # it closed while these were under way
        self._progress(now)
        offset = self._out_offset + count
        while out and offset >= len(out[0]):
            front = out.popleft()
            offset -= len(front)
            self._out_held -= len(front) + BUFFER_OVERHEAD
        self._out_offset = offset

    def _drop_answers(self) -> None:
        """The connection closes: what is left unsent goes."""
        self._out = None
        self._out_held = 0
        self._out_offset = 0
