"""The count protocol with one thread per connection that reads, then sends
(socketserver's ThreadingTCPServer, as its documentation's echo handler).

Each connection's thread reads, hands the bytes to EchoProtocol, and sends
what the protocol answers with ``sendall`` before it reads again. A thread
is all a connection costs, and it deadlocks with a client that sends a whole
large message before it reads any of the echo (both sides end up blocked in
a send once the kernel's buffers fill): the conforming threads peer,
threads.py, adds a writer thread for that case.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import time

from _common import pump_blocking
from threads import serve

from trio_echo import EchoProtocol, Mode


class Handler(socketserver.BaseRequestHandler):
    mode = "count"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = EchoProtocol(Mode(self.mode), now=time.monotonic())
        with contextlib.suppress(OSError):
            pump_blocking(sock, protocol, sock.sendall)  # the reading waits meanwhile


if __name__ == "__main__":
    serve(__doc__.splitlines()[0], handler=Handler)
