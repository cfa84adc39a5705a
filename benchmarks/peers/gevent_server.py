"""The count protocol on gevent: a StreamServer, a greenlet per connection,
written as blocking code.

A greenlet that reads, then sends, deadlocks with a client that sends a
whole message before reading, once the kernel's buffers fill; so each
connection's greenlet reads while a writer greenlet sends, and the
gevent.queue.Queue between them holds at most QUEUED_READS reads (about
64 MiB): past it the reader blocks (backpressure).
"""

from __future__ import annotations

import contextlib
import socket

import gevent
from _common import LINGER, QUEUED_READS, READ_SIZE, announce, parse_args
from gevent.queue import Queue
from gevent.server import StreamServer

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


def handle(sock: socket.socket, mode: str) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    protocol = EchoProtocol(Mode(mode))
    outbox: Queue[list[bytes]] = Queue(QUEUED_READS)

    def write() -> bool:
        sent_all = True
        for pieces in outbox:  # until StopIteration is put
            if sent_all:
                try:
                    sock.sendall(b"".join(pieces))
                except OSError:
                    sent_all = False  # keep taking, so that the reader never blocks
        return sent_all

    writer = gevent.spawn(write)
    clean = False
    try:
        while not protocol.reading_done:
            outbox.put(protocol.receive_data(sock.recv(READ_SIZE)))
        clean = True
    except (RemoteProtocolError, OSError):
        pass
    outbox.put(StopIteration)
    sent_all = writer.get()
    if clean and sent_all and mode == "count" and protocol.trailing:  # linger
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(LINGER)
            while sock.recv(READ_SIZE):
                pass
    sock.close()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    server = StreamServer(
        (args.host, args.port), lambda sock, _address: handle(sock, args.mode), backlog=4096
    )
    server.start()
    announce(args.host, server.server_port, args.mode)
    server.serve_forever()
