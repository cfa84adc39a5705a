"""The count protocol on Twisted, written as a Twisted expert would.

Built on the shared CountFramer, serving all three modes. Unlike the
original it bounds what it holds. The protocol registers itself as a
streaming producer of the transport's output: Twisted calls pauseProducing
once more than ``bufferSize`` (64 KiB) is unsent, and resumeProducing when
the buffer drains. While paused it keeps reading (a client that sends a
whole message before reading needs that), counting what it writes, and
stops reading from the peer (``transport.pauseProducing``) only past 64 MiB.
Raising ``bufferSize`` itself to 64 MiB would be simpler and wrong: Twisted
also uses it as the size of every recv(), so each read would allocate 64 MiB
(measured: half the echo throughput). It implements IHalfCloseableProtocol,
so a client's half-close does not drop the echo still buffered, and a count
connection half-closes itself once the payload is echoed and closes when the
client does.
"""

from __future__ import annotations

from _common import BUFFER_LIMIT, LINGER, announce, parse_args
from twisted.internet import reactor
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


@implementer(IHalfCloseableProtocol, IPushProducer)
class CountEcho(Protocol):
    def __init__(self, mode: str) -> None:
        self.protocol = EchoProtocol(Mode(mode))
        self.mode = mode
        self.buffer_full = False  # Twisted's write buffer is past bufferSize
        self.written_while_full = 0
        self.reading_paused = False

    def connectionMade(self) -> None:  # noqa: N802  (Twisted's names)
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

    def write(self, pieces: list[bytes]) -> None:
        self.transport.writeSequence(pieces)
        if self.buffer_full:
            self.written_while_full += sum(map(len, pieces))
            if self.written_while_full > BUFFER_LIMIT and not self.reading_paused:
                self.reading_paused = True
                self.transport.pauseProducing()  # stop reading from the peer

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.protocol.reading_done:
            return  # after a count message: discard
        try:
            pieces = self.protocol.receive_data(data)
        except RemoteProtocolError:
            self.transport.abortConnection()
            return
        self.write(pieces)
        if self.protocol.reading_done:
            self.transport.unregisterProducer()
            if not self.protocol.trailing:
                self.transport.loseConnection()  # after the echo is written
                return
            self.transport.loseWriteConnection()
            reactor.callLater(LINGER, self.transport.loseConnection)

    def readConnectionLost(self) -> None:  # noqa: N802
        if not self.protocol.reading_done:
            try:
                pieces = self.protocol.receive_data(b"")
            except RemoteProtocolError:
                self.transport.abortConnection()
                return
            self.write(pieces)
            self.transport.unregisterProducer()
        self.transport.loseConnection()

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
