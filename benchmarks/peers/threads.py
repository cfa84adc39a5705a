"""The count protocol with a thread per connection (socketserver), plus a
writer thread per connection.

A single thread that reads, then sends, deadlocks with a client that sends
a whole message before reading, once the kernel's buffers fill; so each
connection's handler thread does what the protocol says while a second
thread sends, and the queue between them holds at most 64 MiB (the reader
blocks past it: backpressure).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections import deque

from _common import BUFFER_LIMIT, announce, parse_args, pump_blocking

from trio_echo import EchoProtocol, Mode

SEND_SIZE = 1024 * 1024


class Outbox:
    """Echo bytes between the reader thread and the writer thread."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.closed = False
        self.broken = False
        self.condition = threading.Condition()

    def put(self, data: bytes) -> None:
        with self.condition:
            while self.size >= BUFFER_LIMIT and not self.broken:
                self.condition.wait()
            if self.broken:
                raise BrokenPipeError("the writer could not send")
            self.chunks.append(data)
            self.size += len(data)
            self.condition.notify_all()

    def flush(self) -> None:
        """Wait until everything put is sent (or the writer broke)."""
        with self.condition:
            while self.size and not self.broken:
                self.condition.wait()

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def pump(self, sock: socket.socket) -> None:
        while True:
            with self.condition:
                while not self.chunks and not self.closed:
                    self.condition.wait()
                if not self.chunks:
                    return
                # Join at most a send's worth: joining everything queued
                # would hold a second copy of up to BUFFER_LIMIT bytes.
                pieces = [self.chunks.popleft()]
                size = len(pieces[0])
                while self.chunks and size + len(self.chunks[0]) <= SEND_SIZE:
                    size += len(self.chunks[0])
                    pieces.append(self.chunks.popleft())
                data = b"".join(pieces)
            try:
                sock.sendall(data)
            except OSError:
                with self.condition:
                    self.broken = True
                    self.condition.notify_all()
                return
            with self.condition:
                self.size -= len(data)
                self.condition.notify_all()


class Handler(socketserver.BaseRequestHandler):
    mode = "count"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = EchoProtocol(Mode(self.mode), now=time.monotonic())
        outbox = Outbox()
        writer = threading.Thread(target=outbox.pump, args=(sock,), daemon=True)
        writer.start()
        with contextlib.suppress(OSError):  # the peer went away: closing is all there is
            pump_blocking(sock, protocol, outbox.put, flush=outbox.flush)
        outbox.close()
        writer.join()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096


def serve(
    description: str,
    server_class: type[socketserver.TCPServer] = Server,
    handler: type[socketserver.BaseRequestHandler] = Handler,
) -> None:
    """Serve ``handler`` (its class attribute ``mode`` set from the arguments)
    with ``server_class`` until killed: the threads, threads-tutorial and
    forking peers."""
    args = parse_args(description)
    handler.mode = args.mode  # type: ignore[attr-defined]
    server_class.address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with server_class((args.host, args.port), handler) as server:
        announce(args.host, server.server_address[1], args.mode)
        server.serve_forever()


if __name__ == "__main__":
    serve(__doc__.splitlines()[0])
