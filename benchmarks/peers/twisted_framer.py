"""The count protocol on Twisted, written as a Twisted expert would.

Built on the shared CountFramer, serving all three modes. Unlike the
original it bounds what it holds: the transport is registered as the
producer of its own output, so when 64 MiB of echo are unsent Twisted
pauses reading from it (``bufferSize``) and resumes once the buffer drains.
It implements IHalfCloseableProtocol, so a client's half-close does not
drop the echo still buffered, and a count connection half-closes itself
once the payload is echoed and closes when the client does.
"""

from __future__ import annotations

from _common import BUFFER_LIMIT, LINGER, Echoer, announce, parse_args
from twisted.internet import reactor
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from trio_echo import RemoteProtocolError


@implementer(IHalfCloseableProtocol)
class CountEcho(Protocol):
    def __init__(self, mode: str) -> None:
        self.echoer = Echoer(mode)
        self.mode = mode
        self.done = False

    def connectionMade(self) -> None:  # noqa: N802  (Twisted's names)
        self.transport.bufferSize = BUFFER_LIMIT
        self.transport.registerProducer(self.transport, True)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.done:
            return  # after a count message: discard
        try:
            pieces, self.done = self.echoer.feed(data)
        except RemoteProtocolError:
            self.transport.abortConnection()
            return
        self.transport.writeSequence(pieces)
        if self.done:
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()
            reactor.callLater(LINGER, self.transport.loseConnection)

    def readConnectionLost(self) -> None:  # noqa: N802
        if not self.done:
            try:
                pieces, _ = self.echoer.feed(b"")
            except RemoteProtocolError:
                self.transport.abortConnection()
                return
            self.transport.writeSequence(pieces)
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
