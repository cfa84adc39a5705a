"""The count protocol on gevent: a StreamServer, a greenlet per connection,
written as blocking code.

A greenlet that reads, then sends, deadlocks with a client that sends a
whole message before reading, once the kernel's buffers fill; so each
connection's greenlet does what the protocol says while a writer greenlet
sends, and the gevent.queue.JoinableQueue between them holds at most
QUEUED_READS buffers (about 64 MiB): past it the reader blocks
(backpressure).

A gevent socket call that need not wait does not switch greenlets, so a
connection whose reads and sends keep succeeding would run on and starve
the others: both loops yield with ``gevent.sleep(0)`` after each call, as
its docstring advises ("a value of 0 ... means to yield execution to any
other runnable greenlets", gevent/hub.py).
"""

from __future__ import annotations

import math
import socket
import time

import gevent
from _common import QUEUED_READS, READ_SIZE, announce, parse_args, unread
from gevent.queue import JoinableQueue
from gevent.server import StreamServer

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, YIELD, EchoProtocol, Mode, Receive


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
                    gevent.sleep(0)  # a send that did not block did not yield: yield
                except OSError:
                    sent_all = False  # keep taking, so that the reader never blocks
            outbox.task_done()

    writer = gevent.spawn(write)
    linger = math.inf  # the protocol's deadline, once it has half-closed
    try:
        while True:
            now = time.monotonic()
            if now >= linger:
                protocol.expired(now)
            action = protocol.next_action(now)
            while (data := protocol.data_to_send()) is not None:
                outbox.put(data)
                protocol.sent(len(data), now)  # handed over: the queue is the bound
            if type(action) is Receive:
                if linger < math.inf:
                    sock.settimeout(linger - now)
                try:
                    data = sock.recv(min(action.max_bytes, READ_SIZE))
                except TimeoutError:
                    continue  # the deadline has passed
                protocol.receive_data(data, time.monotonic())
                gevent.sleep(0)  # a read that did not block did not yield: yield
            elif action is YIELD:
                gevent.sleep(0)
            elif action is CHECK_UNREAD:
                protocol.report_unread(unread(sock))
            elif action is SEND_EOF:
                outbox.join()  # the echo goes out first
                sock.shutdown(socket.SHUT_WR)
                protocol.eof_sent(time.monotonic())
                linger = protocol.deadline.when
            elif action is CLOSE:
                break
            # PAUSED: what it waits for was handed to the writer above
    except OSError:
        pass
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
