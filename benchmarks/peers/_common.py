"""What every Python peer shares: its command line and its start-up line.

Every peer takes the same arguments (``--port``, ``--mode``, ``--host``,
``--quiet``) and prints ``listening on HOST:PORT mode=MODE`` once it
listens, so the conformance suite and the benchmark harness can start any
of them the same way.
"""

from __future__ import annotations

import argparse
import sys

from trio_echo import NEED_DATA, CountFramer, EndOfMessage, Header, Payload, encode_header

BUFFER_LIMIT = 64 * 1024 * 1024
"""Unsent echo bytes a connection may hold before the peer stops reading:
the maximum message size, so a send-everything-then-read client completes."""

LINGER = 2.0
"""Seconds a count connection waits, after its half-close, for the client
to close, when the client sent bytes after its message (closing on unread
bytes would send a reset). With nothing after the message, the peers close
at once, as trio_echo does."""

READ_SIZE = 64 * 1024


def parse_args(
    description: str, modes: tuple[str, ...] = ("count", "echo", "framed")
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50007)
    parser.add_argument("--mode", choices=modes, default="count")
    parser.add_argument("--quiet", action="store_true", help="accepted for uniformity")
    parser.add_argument("--uvloop", action="store_true", help="asyncio peers: use uvloop")
    return parser.parse_args()


def announce(host: str, port: int, mode: str) -> None:
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{port} mode={mode}", flush=True)
    sys.stdout.flush()


class Echoer:
    """The protocol's echo, shared by the Python peers: bytes in, bytes out.

    Each peer does its own I/O, in its own model's idiom; this only says
    what to send back for what came in.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.framer = None if mode == "echo" else CountFramer()

    @property
    def trailing(self) -> bool:
        """Whether bytes came after a complete count message."""
        return self.framer is not None and self.framer.buffered > 0

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        """Take received bytes (``b""`` at the end of the stream).

        Returns:
            The bytes to echo, and whether reading is over: a count message
            is complete, or the stream ended cleanly.

        Raises:
            RemoteProtocolError: If the bytes break the protocol.
        """
        if self.framer is None:
            return ([data] if data else []), not data
        self.framer.receive_data(data)
        out: list[bytes] = []
        while True:
            event = self.framer.next_event()
            if event is NEED_DATA:
                return out, False
            if type(event) is Payload:
                out.append(event.data)
            elif type(event) is Header:
                if self.mode == "framed":
                    out.append(encode_header(event.length))
            elif type(event) is EndOfMessage:
                if self.mode == "count":
                    return out, True
            else:  # EndOfStream
                return out, True
