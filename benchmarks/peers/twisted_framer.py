"""The count protocol on Twisted, written as a Twisted expert would.

Built on trio_echo's EchoProtocol, serving all three modes: each callback
feeds it and does what it says. Unlike the original it bounds what it holds.
The protocol registers itself as a streaming producer of the transport's
output: Twisted calls pauseProducing once more than ``bufferSize`` (64 KiB)
is unsent, and resumeProducing when the buffer drains. While paused it keeps
reading (a client that sends a whole message before reading needs that),
counting what it writes, and stops reading from the peer
(``transport.pauseProducing``) only past 64 MiB. Raising ``bufferSize``
itself to 64 MiB would be simpler and wrong: Twisted also uses it as the
size of every recv(), so each read would allocate 64 MiB (measured: half the
echo throughput). It implements IHalfCloseableProtocol, so a client's
half-close does not drop the echo still buffered, and a count connection that
must not close on unread bytes half-closes itself once the payload is
echoed, and closes when the client does (or the protocol's linger time
ends).
"""

from __future__ import annotations

import time

from _common import BUFFER_LIMIT, announce, parse_args, unread
from twisted.internet import reactor
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, EchoProtocol, Mode, Receive


@implementer(IHalfCloseableProtocol, IPushProducer)
class CountEcho(Protocol):
    def __init__(self, mode: str) -> None:
        self.protocol = EchoProtocol(Mode(mode), now=time.monotonic())
        self.buffer_full = False  # Twisted's write buffer is past bufferSize
        self.written_while_full = 0
        self.reading_paused = False

    def connectionMade(self) -> None:  # noqa: N802  (Twisted's names)
        self.transport.setTcpNoDelay(True)  # as every peer: answers go out at once
        self.transport.registerProducer(self, True)

    # IPushProducer: Twisted's word on its write buffer.
    def pauseProducing(self) -> None:  # noqa: N802
        self.buffer_full = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.buffer_full = False
        self.written_while_full = 0
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802
        pass

    def write(self, data: bytes) -> None:
        self.transport.write(data)
        if self.buffer_full:
            self.written_while_full += len(data)
            if self.written_while_full > BUFFER_LIMIT and not self.reading_paused:
                self.reading_paused = True
                self.transport.pauseProducing()  # stop reading from the peer

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.protocol.receive_data(data, time.monotonic())
        self.pump()

    def readConnectionLost(self) -> None:  # noqa: N802
        self.protocol.receive_data(b"", time.monotonic())
        self.pump()

    def pump(self) -> None:
        """Do what the protocol says until it waits for the peer.

        On YIELD it loops on: a callback frames the one read the reactor
        made, as Twisted protocols do.
        """
        protocol, transport = self.protocol, self.transport
        while True:
            now = time.monotonic()
            action = protocol.next_action(now)
            while (data := protocol.data_to_send()) is not None:
                self.write(data)
                protocol.sent(len(data), now)  # buffered: counted against BUFFER_LIMIT
            if type(action) is Receive:
                return  # the next dataReceived (or readConnectionLost) brings it
            if action is CHECK_UNREAD:
                protocol.report_unread(unread(transport.getHandle()))
            elif action is SEND_EOF:
                transport.unregisterProducer()  # it writes no more
                transport.loseWriteConnection()
                protocol.eof_sent(now := time.monotonic())
                reactor.callLater(protocol.deadline.when - now, self.expire)
            elif action is CLOSE:
                transport.unregisterProducer()
                if protocol.clean:
                    transport.loseConnection()  # after the echo is written
                else:
                    transport.abortConnection()
                return

    def expire(self) -> None:
        self.protocol.expired(time.monotonic())
        self.pump()

    def writeConnectionLost(self) -> None:  # noqa: N802
        pass


class CountEchoFactory(Factory):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def buildProtocol(self, addr: object) -> CountEcho:  # noqa: N802
        return CountEcho(self.mode)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    port = reactor.listenTCP(
        args.port, CountEchoFactory(args.mode), backlog=4096, interface=args.host
    )
    announce(args.host, port.getHost().port, args.mode)
    reactor.run()
