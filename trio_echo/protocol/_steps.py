# How much work one step of a connection may do, and how much it reads.
#
# A step is what lies between two YIELDs. It frames at most
# MAX_MESSAGES_PER_STEP messages and takes in at most STEP_BYTES and one read
# more, a read counting as READ_SIZE_MIN bytes at least (so at most
# STEP_BYTES / READ_SIZE_MIN reads): past either, the protocol says YIELD and
# the pump lets others run. So a pump may read again at once while its
# transport has bytes, without a checkpoint of its own per read.
#
# Reads start at READ_SIZE_MIN; a read that comes back full suggests a
# stream, and the next is twice as large, up to the transport's largest.
from __future__ import annotations

from typing import TYPE_CHECKING

from ._actions import YIELD, Receive

__all__ = [
    "MAX_MESSAGES_PER_STEP",
    "READ_SIZE_LEAST",
    "READ_SIZE_MAX",
    "READ_SIZE_MIN",
    "STEP_BYTES",
    "Steps",
]

MAX_MESSAGES_PER_STEP = 256
"""Messages framed in one step (between two `YIELD`), at most.

A step of 256 of the smallest messages costs about half a millisecond on the
machine this was measured on (0.43 ms for ``0 ``, 0.62 ms for one-byte
payloads, medians), so a peer that pipelines tiny messages cannot hold its
task, or the accepting task, for much longer than that between
checkpoints."""

STEP_BYTES = 1024 * 1024
"""Bytes taken in by one step (between two `YIELD`), at most, besides the
step's last read: about a millisecond of copying, to and from the kernel,
on the machine MAX_MESSAGES_PER_STEP was measured on. A read shorter than
READ_SIZE_MIN counts as that much: a step makes 257 reads at most."""

READ_SIZE_MIN = 4 * 1024
"""A quiet connection reads this much at a time."""

READ_SIZE_MAX = 256 * 1024
"""A streaming connection doubles its reads up to this much."""

READ_SIZE_LEAST = 512
"""While answers wait to be sent, no read is asked for with less room than
this: the connection waits for the answers to go out instead."""

_RECEIVES = {size: Receive(size) for size in (READ_SIZE_MIN << i for i in range(7))}
"""The reads of the usual sizes, made once (up to READ_SIZE_MAX)."""

_ECHOES = {size: Receive(size, echo=True) for size in _RECEIVES}
"""The same, for reads whose bytes may go straight back."""

_DISCARD = _RECEIVES[READ_SIZE_MIN]  # a connection that discards needs to hold little


STEP_FIELDS = ("_read_max", "_read_size", "_step_messages", "_yield_at")
"""The slots of `EchoProtocol` that this part keeps."""


class Steps:
    """The bounds of the current step, and the size of reads: a part of `EchoProtocol`.

    Its fields are `STEP_FIELDS`, slots of the protocol, which starts them.
    """

    if not TYPE_CHECKING:  # its fields are the protocol's slots
        __slots__ = ()

    bytes_in: int
    _read_max: int  # the largest read worth asking for
    _read_size: int
    _step_messages: int  # messages framed in the step so far
    _yield_at: int  # bytes_in at which the step is over

    def _took(self, size: int) -> None:
        """Count a read of ``size`` bytes (not 0) against the step, and size the next."""
        if size < READ_SIZE_MIN:
            # A read costs a step as much as READ_SIZE_MIN bytes at least:
            # small reads, all full, are no cheaper to make.
            self._yield_at -= READ_SIZE_MIN - size
            self._read_size = READ_SIZE_MIN
        elif size == self._read_size and size < self._read_max:
            self._read_size = size * 2  # a full read suggests a stream

    def _read(self, room: int, *, echo: bool = False) -> Receive | type[YIELD]:
        """Return the read to ask for with ``room`` bytes to hold, or YIELD first.

        With ``echo``, its bytes may go straight back (`Receive.echo`).
        """
        if self.bytes_in >= self._yield_at:
            return self._yield()
        size = self._read_size if room >= self._read_size else max(1, room)
        return (_ECHOES if echo else _RECEIVES).get(size) or Receive(size, echo)

    def _discard(self) -> Receive | type[YIELD]:
        """Return the read of a connection that discards, or YIELD first."""
        if self.bytes_in >= self._yield_at:
            return self._yield()
        return _DISCARD

    def _yield(self) -> type[YIELD]:
        """End the step: the pump lets others run before the next."""
        self._step_messages = 0
        self._yield_at = self.bytes_in + STEP_BYTES
        return YIELD
