"""The count protocol on gevent: a StreamServer, a greenlet per connection,
written as blocking code.

A greenlet that reads, then sends, deadlocks with a client that sends a
whole message before reading, once the kernel's buffers fill; so each
connection's greenlet does what the protocol says while a writer greenlet
sends, and the gevent.queue.JoinableQueue between them holds at most
QUEUED_READS buffers (about 64 MiB): past it the reader blocks
(backpressure).

A gevent socket call that need not wait does not switch greenlets, so a
connection whose reads keep succeeding would run on and starve the others;
the protocol already says where to let them run (YIELD, after 1 MiB or 256
messages in one step), and there the reader calls ``gevent.idle()``, which
waits until the event loop has handled what is pending, the sockets ready
for other greenlets included. ``gevent.sleep(0)`` would not do: "this
greenlet may be scheduled again before the event loop cycles ... [it] can
prevent greenlets that are ready to do I/O from being scheduled"
(gevent.hub.sleep's docstring); and, at YIELD only, it let a 10 MB stream
keep a small client waiting for seconds. The writer sends what the reader
queued since it last let others run, and waits on the empty queue: it needs
no yield of its own.
"""

from __future__ import annotations

import contextlib
import socket
import time

import gevent
from _common import QUEUED_READS, announce, parse_args, pump_blocking
from gevent.queue import JoinableQueue
from gevent.server import StreamServer

from trio_echo import EchoProtocol, Mode


def handle(sock: socket.socket, mode: str) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    protocol = EchoProtocol(Mode(mode), now=time.monotonic())
    outbox: JoinableQueue[bytes] = JoinableQueue(QUEUED_READS)

    def write() -> None:
        sent_all = True
        for data in outbox:  # until StopIteration is put
            if sent_all:
                try:
                    sock.sendall(data)
                except OSError:
                    sent_all = False  # keep taking, so that the reader never blocks
            outbox.task_done()

    writer = gevent.spawn(write)
    with contextlib.suppress(OSError):  # the peer went away: closing is all there is
        pump_blocking(sock, protocol, outbox.put, flush=outbox.join, pause=gevent.idle)
    outbox.put(StopIteration)
    writer.join()
    sock.close()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    server = StreamServer(
        (args.host, args.port), lambda sock, _address: handle(sock, args.mode), backlog=4096
    )
    server.start()
    announce(args.host, server.server_port, args.mode)
    server.serve_forever()
