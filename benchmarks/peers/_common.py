"""What every Python peer shares: its command line and its start-up line.

Every peer takes the same arguments (``--port``, ``--mode``, ``--host``,
``--quiet``) and prints ``listening on HOST:PORT mode=MODE`` once it
listens, so the conformance suite and the benchmark harness can start any
of them the same way.
"""

from __future__ import annotations

import argparse
import sys

BUFFER_LIMIT = 64 * 1024 * 1024
"""Unsent echo bytes a connection may hold before the peer stops reading:
the maximum message size, so a send-everything-then-read client completes."""

LINGER = 2.0
"""Seconds a count connection waits, after its half-close, for the client
to close, when the client sent bytes after its message (closing on unread
bytes would send a reset). With nothing after the message, the peers close
at once, as trio_echo does."""

READ_SIZE = 64 * 1024

QUEUED_READS = BUFFER_LIMIT // READ_SIZE
"""Peers that queue the echo of each read between a reader and a writer
(trio, AnyIO, asyncio TaskGroup, gevent) queue at most this many reads:
about BUFFER_LIMIT bytes, since a read's echo is at most the read (and, in
framed mode, a header)."""


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
    return parser.parse_args()


def announce(host: str, port: int, mode: str) -> None:
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{port} mode={mode}", flush=True)
    sys.stdout.flush()
