# The line between the supervisor and each of its workers: a socket pair of
# its own per worker. The worker inherits one end (SUPERVISOR_FD_VARIABLE
# names it); the supervisor alone holds the other.
#
# - The certificate pair. The supervisor reads and checks the TLS files
#   itself, and sends the pair it holds in use down the line: as a worker
#   starts (the worker's first message, read before it listens) and on each
#   reload it accepted. A worker never reads the files: a bad file on disk
#   cannot stop a replacement from starting, and every worker serves the
#   pair the supervisor accepted.
# - The heartbeat. The supervisor sends PING a few times per timeout, and the
#   worker answers PONG from its trio loop. A worker that has not answered
#   for the whole timeout (stopped, or stuck in a step that never yields) is
#   reported, and the supervisor replaces it.
# - The supervisor's end. When the supervisor is gone, even killed outright,
#   the worker's end reads as ended, and the worker drains.
#
# From the supervisor, a message is one byte of kind (PING, PAIR); a pair
# then has three 4-byte lengths and as many PEM texts. From the worker, one
# PONG byte per PING.
from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

import trio

from ._tls import CertificatePair

__all__ = [
    "PINGS_PER_TIMEOUT",
    "SUPERVISOR_FD_VARIABLE",
    "LineError",
    "SupervisorEnd",
    "WorkerEnd",
]

SUPERVISOR_FD_VARIABLE = "TRIO_ECHO_SUPERVISOR_FD"
"""The environment variable that tells a worker its end of the line."""

PINGS_PER_TIMEOUT = 5
"""PINGs sent per heartbeat timeout: a worker that stops answering is found
at most a fifth of the timeout after the timeout has passed."""

PING = b"?"
PONG = b"!"
PAIR = b"C"
_LENGTHS = struct.Struct("!III")

FIRST_PAIR_TIMEOUT = 30.0
"""Seconds a starting worker waits for its pair (the supervisor sends it as
the worker starts)."""


class LineError(Exception):
    """The line broke the protocol, or ended, before a worker had its pair."""


def encode_pair(pair: CertificatePair) -> bytes:
    """The PAIR message that carries ``pair``."""
    client_ca = b"" if pair.client_ca is None else pair.client_ca
    lengths = _LENGTHS.pack(len(pair.chain), len(pair.key), len(client_ca))
    return PAIR + lengths + pair.chain + pair.key + client_ca


def next_message(buffer: bytearray) -> bytes | CertificatePair | None:
    """Take the first whole message out of ``buffer``: PING, or a pair.

    Returns:
        None if ``buffer`` holds no whole message yet.

    Raises:
        LineError: If the buffer starts with no known message.
    """
    kind = bytes(buffer[:1])
    if kind == PING:
        del buffer[:1]
        return PING
    if kind != PAIR:
        if not kind:
            return None
        raise LineError(f"an unknown message from the supervisor: {kind!r}")
    if len(buffer) < 1 + _LENGTHS.size:
        return None
    chain, key, client_ca = _LENGTHS.unpack_from(buffer, 1)
    start = 1 + _LENGTHS.size
    end = start + chain + key + client_ca
    if len(buffer) < end:
        return None
    body = bytes(buffer[start:end])
    del buffer[:end]
    return CertificatePair(
        body[:chain], body[chain : chain + key], body[chain + key :] if client_ca else None
    )


class SupervisorEnd:
    """The supervisor's end of one worker's line.

    Made before the worker is started: pass `theirs` on to it (its number
    in `SUPERVISOR_FD_VARIABLE`), then `close_theirs`.
    """

    def __init__(self) -> None:
        ours, self.theirs = socket.socketpair()
        self._socket = trio.socket.from_stdlib_socket(ours)
        self._sending = trio.StrictFIFOLock()  # a message goes whole: one at a time

    def close_theirs(self) -> None:
        """Close the worker's end here, once the worker holds it."""
        self.theirs.close()

    def close(self) -> None:
        """Close both ends held here: the worker reads that the line ended."""
        self.theirs.close()
        self._socket.close()

    async def send_pair(self, pair: CertificatePair) -> None:
        """Send the worker the pair to serve; nothing if it has gone."""
        await self._send(encode_pair(pair))

    async def wait_until_silent(self, silence: float) -> None:
        """Ping the worker until it has not answered for ``silence`` seconds.

        Returns then; waits for ever once the worker has closed its end (it
        is exiting, which its supervisor sees otherwise).
        """
        answered = trio.current_time()
        while trio.current_time() - answered < silence:
            with trio.move_on_after(silence / PINGS_PER_TIMEOUT) as tick:
                await self._send(PING)
                while await self._receive():
                    answered = trio.current_time()
            if not tick.cancelled_caught:  # the worker closed its end
                await trio.sleep_forever()

    async def _receive(self) -> bytes:
        """What the worker sent (its answers); nothing once its end is closed."""
        try:
            return await self._socket.recv(1024)
        except (OSError, trio.ClosedResourceError):
            return b""

    async def _send(self, message: bytes) -> None:
        async with self._sending:
            view = memoryview(message)
            try:
                while view:
                    view = view[await self._socket.send(view) :]
            except (OSError, trio.ClosedResourceError):
                return  # the worker has gone: its exit is watched


class WorkerEnd:
    """A worker's end of its line to its supervisor.

    Args:
        sock: The end, inherited.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._buffer = bytearray()

    @classmethod
    def inherited(cls, environ: dict[str, str] | None = None) -> WorkerEnd | None:
        """This worker's end, if this process is a worker (the variable is removed)."""
        env = os.environ if environ is None else environ
        value = env.pop(SUPERVISOR_FD_VARIABLE, None)
        if value is None or not value.isdigit():
            return None
        return cls(socket.socket(fileno=int(value)))

    def close(self) -> None:
        """Close the end: the supervisor sees no more answers."""
        self._socket.close()

    def receive_pair(self) -> CertificatePair:
        """Wait for the pair the supervisor sends as the worker starts.

        Blocks: call it before the worker's trio run.

        Raises:
            LineError: If the line ends, or says something else, first.
        """
        self._socket.settimeout(FIRST_PAIR_TIMEOUT)
        try:
            while (message := next_message(self._buffer)) is None:
                if not (data := self._socket.recv(65536)):
                    raise LineError("the supervisor ended the line before sending the certificate")
                self._buffer += data
        except OSError as error:
            raise LineError(f"no certificate from the supervisor: {error}") from None
        finally:
            self._socket.setblocking(False)
        if not isinstance(message, CertificatePair):
            raise LineError("the supervisor sent no certificate first")
        return message

    async def answer(self, use_pair: Callable[[CertificatePair], object]) -> None:
        """Answer the supervisor's PINGs, and hand each pair to ``use_pair``.

        Returns once the supervisor's end is closed (it has exited), or the
        line breaks.
        """
        sock = trio.socket.from_stdlib_socket(self._socket)
        try:
            while True:
                while (message := next_message(self._buffer)) is not None:
                    if isinstance(message, CertificatePair):
                        use_pair(message)
                    else:
                        await sock.send(PONG)
                if not (data := await sock.recv(65536)):
                    return
                self._buffer += data
        except (OSError, LineError):
            return
