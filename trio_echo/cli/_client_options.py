# What the client command is asked to do, as typed values.
from __future__ import annotations

import attrs

from .._ports import DEFAULT_PORT
from .._tls import client_context
from ..client._endpoint import Endpoint
from ..protocol import Mode

__all__ = ["LOAD_FLAGS", "TLS_FLAGS", "ClientOptions"]


@attrs.frozen(kw_only=True)
class ClientOptions:
    """What the client command was asked to do, as typed values.

    The command line's defaults are these.

    Attributes:
        message: The messages to send (``-``: standard input).
        file: A file whose contents to send instead.
        host: The server's host.
        port: The server's port.
        unix: The path of the server's unix socket, instead of a host and a
            port.
        tls: Whether to speak TLS.
        cafile: Over TLS, the certificates of the authorities to trust;
            None for the system's trust store.
        server_name: Over TLS, the name the server's certificate must
            carry; None for the host (over a unix socket, ``localhost``).
        cert: Over TLS, a client certificate (with its key, if ``key`` is
            None), for a server that asks for one.
        key: The client certificate's private key.
        mode: The server's mode.
        timeout: Seconds to give up after (in a load run, per message).
        quiet: Whether to leave the echo out of standard output.
        repeat: In a load run, the messages to send in all; None for one
            exchange.
        concurrency: In a load run, the connections at once.
        size: In a load run, the payload bytes per message.
        json: In a load run, whether to print the figures as JSON.
    """

    message: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    file: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix: str | None = None
    tls: bool = False
    cafile: str | None = None
    server_name: str | None = None
    cert: str | None = None
    key: str | None = None
    mode: Mode = attrs.field(default=Mode.COUNT, converter=Mode)
    timeout: float = 60.0
    quiet: bool = False
    repeat: int | None = None
    concurrency: int = 10
    size: int = 100
    json: bool = False

    def endpoint(self) -> Endpoint:
        """Where the server is, and how to reach it; over TLS, with the context made.

        Raises:
            TLSFileError: If a TLS file cannot be used.
        """
        tls = client_context(self.cafile, self.cert, self.key) if self.tls else None
        return Endpoint(
            host=self.host, port=self.port, unix=self.unix, tls=tls, server_name=self.server_name
        )


LOAD_FLAGS = ("concurrency", "size", "json")
"""The options that only a load run takes."""

TLS_FLAGS = ("cafile", "server_name", "cert", "key")
"""The options that only a TLS client takes."""
