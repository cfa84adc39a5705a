"""The count protocol with a thread per connection (socketserver), plus a
writer thread per connection.

A single thread that reads, then sends, deadlocks with a client that sends
a whole message before reading, once the kernel's buffers fill; so each
connection's handler thread does what the protocol says while a second
thread sends, and the queue between them holds at most 64 MiB (the reader
blocks past it: backpressure).
"""

from __future__ import annotations

import math
import socket
import socketserver
import threading
import time
from collections import deque

from _common import BUFFER_LIMIT, READ_SIZE, announce, parse_args, unread

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, EchoProtocol, Mode, Receive

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
        linger = math.inf  # the protocol's deadline, once it has half-closed
        try:
            while True:
                now = time.monotonic()
                if now >= linger:
                    protocol.expired(now)
                action = protocol.next_action(now)
                while (data := protocol.data_to_send()) is not None:
                    outbox.put(data)
                    protocol.sent(len(data), now)  # handed over: the outbox is the bound
                if type(action) is Receive:
                    if linger < math.inf:
                        sock.settimeout(linger - now)
                    try:
                        data = sock.recv(min(action.max_bytes, READ_SIZE))
                    except TimeoutError:
                        continue  # the deadline has passed
                    protocol.receive_data(data, time.monotonic())
                elif action is CHECK_UNREAD:
                    protocol.report_unread(unread(sock))
                elif action is SEND_EOF:
                    outbox.flush()  # the echo goes out first
                    sock.shutdown(socket.SHUT_WR)
                    protocol.eof_sent(time.monotonic())
                    linger = protocol.deadline.when
                elif action is CLOSE:
                    break
                # YIELD: this thread holds no one up; PAUSED: handed to the writer above
        except OSError:
            pass
        outbox.close()
        writer.join()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    Handler.mode = args.mode
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    Server.address_family = family
    with Server((args.host, args.port), Handler) as server:
        announce(args.host, server.server_address[1], args.mode)
        server.serve_forever()
