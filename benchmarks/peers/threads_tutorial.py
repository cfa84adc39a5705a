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
import math
import socket
import socketserver
import time

from _common import READ_SIZE, announce, parse_args, unread

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, EchoProtocol, Mode, Receive


class Handler(socketserver.BaseRequestHandler):
    mode = "count"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = EchoProtocol(Mode(self.mode), now=time.monotonic())
        linger = math.inf  # the protocol's deadline, once it has half-closed
        with contextlib.suppress(OSError):
            while True:
                now = time.monotonic()
                if now >= linger:
                    protocol.expired(now)
                action = protocol.next_action(now)
                while (data := protocol.data_to_send()) is not None:
                    sock.sendall(data)  # the reading waits meanwhile
                    protocol.sent(len(data), time.monotonic())
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
                    sock.shutdown(socket.SHUT_WR)
                    protocol.eof_sent(time.monotonic())
                    linger = protocol.deadline.when
                elif action is CLOSE:
                    break
                # YIELD: threads are preempted; PAUSED: what it waits for was sent above


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    Handler.mode = args.mode
    Server.address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with Server((args.host, args.port), Handler) as server:
        announce(args.host, server.server_address[1], args.mode)
        server.serve_forever()
