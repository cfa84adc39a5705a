"""What every Python peer shares: its command line, its start-up line, its
bounds, and its answer to the protocol's CHECK_UNREAD.

Every peer takes the same arguments (``--port``, ``--mode``, ``--host``,
``--quiet``) and prints ``listening on HOST:PORT mode=MODE`` once it
listens, so the conformance suite and the benchmark harness can start any
of them the same way. Each drives trio_echo's EchoProtocol: it does what
``next_action`` says, and the protocol decides every ending.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import socket
import ssl
import sys
import termios
import time
from collections.abc import Callable
from typing import Protocol

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, YIELD, EchoProtocol, Receive, Unread

BUFFER_LIMIT = 64 * 1024 * 1024
"""Unsent echo bytes a connection may hold before the peer stops reading:
the maximum message size, so a send-everything-then-read client completes."""

READ_SIZE = 64 * 1024
"""The most a peer that reads for itself reads at once (less when the
protocol's `Receive` asks for less)."""

QUEUED_READS = BUFFER_LIMIT // READ_SIZE
"""Peers that queue the echo between a reader and a writer (trio, AnyIO,
asyncio TaskGroup, gevent) queue at most this many buffers of
`EchoProtocol.data_to_send`: about BUFFER_LIMIT bytes, since each is at most
about the echo of one read."""


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def unread(sock: _HasFileno) -> Unread:
    """Answer the protocol's CHECK_UNREAD: whether the peer's bytes wait in
    the kernel unread (closing then would send a reset), asked without
    reading them."""
    try:
        waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
    except OSError:
        return Unread.UNKNOWN
    return Unread.YES if int.from_bytes(waiting, sys.byteorder) else Unread.NO


def pump_blocking(
    sock: socket.socket,
    protocol: EchoProtocol,
    hand_over: Callable[[bytes | bytearray | memoryview], None],
    *,
    flush: Callable[[], None] = lambda: None,
    pause: Callable[[], None] = lambda: None,
) -> None:
    """Serve one connection on a blocking socket, doing what ``protocol`` says.

    The threads peers and gevent (whose sockets block cooperatively) share
    it; they differ in what they do with an answer.

    Args:
        sock: The connection.
        protocol: Its state machine.
        hand_over: Sends an answer, or queues it for a writer (the queue is
            then the bound: the bytes count as sent once handed over).
        flush: Returns once every answer handed over is sent (before a
            half-close).
        pause: Lets others run where the protocol says YIELD (gevent: a
            call that need not wait does not switch greenlets).

    Raises:
        OSError: If the connection broke.
    """
    linger = math.inf  # the protocol's deadline, once it has half-closed
    while True:
        now = time.monotonic()
        if now >= linger:
            protocol.expired(now)
        action = protocol.next_action(now)
        while (data := protocol.data_to_send()) is not None:
            hand_over(data)
            protocol.sent(len(data), time.monotonic())
        if type(action) is Receive:
            if linger < math.inf:
                sock.settimeout(linger - now)
            try:
                data = sock.recv(min(action.max_bytes, READ_SIZE))
            except TimeoutError:
                continue  # the deadline has passed
            protocol.receive_data(data, time.monotonic())
        elif action is YIELD:
            pause()
        elif action is CHECK_UNREAD:
            protocol.report_unread(unread(sock))
        elif action is SEND_EOF:
            flush()  # the echo goes out first
            sock.shutdown(socket.SHUT_WR)
            protocol.eof_sent(time.monotonic())
            linger = protocol.deadline.when
        elif action is CLOSE:
            return
        # PAUSED: what it waits for was handed over above


def parse_args(
    description: str, modes: tuple[str, ...] = ("count", "echo", "framed")
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50007)
    parser.add_argument("--mode", choices=modes, default="count")
    parser.add_argument("--quiet", action="store_true", help="accepted for uniformity")
    parser.add_argument("--uvloop", action="store_true", help="asyncio peers: use uvloop")
    parser.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="AnyIO: its backend"
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS peers: serve TLS with this chain")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS peers: the chain's private key")
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    return args


def server_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context ``--tls-cert``/``--tls-key`` ask for, or None for plain TCP.

    TLS 1.2 or later, from ``ssl.create_default_context``, as trio_echo's
    server makes it (``trio_echo.server._tls.TLSFiles.load``): the same settings,
    session tickets included, for every server compared. Every connection of
    the TLS benchmark is still a full handshake: its client never resumes a
    session.
    """
    if args.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def announce(host: str, port: int, mode: str) -> None:
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{port} mode={mode}", flush=True)
    sys.stdout.flush()
