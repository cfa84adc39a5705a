"""The original Twisted Echo and EchoCount servers, ported to Python 3.

Line for line from the course notes (Python 2, run under ``twistd -ny``),
flaws included, because this is the baseline the others are compared with:
it prints every chunk, accumulates the length prefix without a bound, parses
it with a bare ``int()``, buffers writes without limit, and closes only when a
chunk ends exactly at the end of the payload. The only changes: bytes instead
of str, print() as a function, and a command line (port, mode) in place of
the ``application`` object, so that it runs as a plain process.

Run: ``python benchmarks/peers/twisted_original.py --port 50007 --mode count``
(``--quiet`` drops the per-chunk prints, for benchmarks).

Two changes make the comparison fair, without touching the protocol
classes: the course notes call the prints "debug only", so ``--quiet``
formats nothing either (each line is formatted only when printed); and each
connection sets ``TCP_NODELAY``, as every other peer's does.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

QUIET = False


def log(text: str, *values: object) -> None:
    if not QUIET:
        print(text % values)


class Echo(Protocol):
    """a class implementing the echo protocol"""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802  (Twisted's name)
        """called whenever data is received. May fire on partial or multiple msg reception"""

        # debug only - print in log the received data
        log("Received %s bytes :%r", len(data), data)

        # echo data back to client
        self.transport.write(data)  # transport wraps physical connection details
        # like a TCP based transport


class EchoCount(Protocol):
    """a class implementing the echo protocol"""

    def __init__(self) -> None:
        """per protocol object initializations"""
        # base class Protocol has no __init__ to call

        # prefix holding string of msg length
        self.prefix = b""
        # expected content length, 0 means not extracted yet
        self.contentlength = 0
        # count of bytes received until now
        self.recvcount = 0
        # count of data bytes (without header) received (and echoed)
        self.datalen = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802  (Twisted's name)
        """called whenever data is received. May fire on partial or multiple msg reception"""

        recvlen = len(data)
        self.recvcount += recvlen
        log("received data with len %s (total received=%s)", recvlen, self.recvcount)

        if self.contentlength == 0:  # we still are in the process of extracting content length
            i = data.find(b" ")
            if i == -1:  # space not found, accumulate prefix
                self.prefix += data  # NOTE: we don't do a security check on accumulated length...
                return  # don't send anything back

            self.prefix += data[:i]
            self.contentlength = int(
                self.prefix
            )  # NOTE: we also don't check the validity of content length...
            log("extracted content length=%s", self.contentlength)

            data = data[i + 1 :]  # skip space too

        # echo back received data
        self.transport.write(data)

        sendlen = len(data)
        self.datalen += sendlen  # real data length until now (without bytecount header)
        log("echoed data with len %s (total sent=%s)", sendlen, self.datalen)

        if (
            self.datalen == self.contentlength
        ):  # echoed the specified number of data bytes, shutdown connection
            self.transport.loseConnection()


def with_nodelay(protocol: type[Protocol]) -> type[Protocol]:
    """The course's protocol, setting TCP_NODELAY as every peer does.

    Neither course class defines connectionMade, so this adds only that.
    """

    class NoDelay(protocol):  # type: ignore[valid-type,misc]
        def connectionMade(self) -> None:  # noqa: N802  (Twisted's name)
            self.transport.setTcpNoDelay(True)

    return NoDelay


def main() -> None:
    global QUIET  # noqa: PLW0603
    parser = argparse.ArgumentParser(description="The original Twisted echo servers.")
    parser.add_argument("--port", type=int, default=50007)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=["count", "echo"], default="count")
    parser.add_argument("--quiet", action="store_true", help="no per-chunk prints")
    args = parser.parse_args()
    QUIET = args.quiet

    # create the Factory object that will generate protocol objects
    factory = Factory()
    factory.protocol = with_nodelay(EchoCount if args.mode == "count" else Echo)

    port = reactor.listenTCP(args.port, factory, interface=args.host)  # type: ignore[attr-defined]
    print(f"listening on {args.host}:{port.getHost().port} mode={args.mode}", flush=True)
    reactor.run()  # type: ignore[attr-defined]
    sys.stdout.flush()


if __name__ == "__main__":
    main()
