# Where a server is and how to reach it: TCP or a unix socket, and over
# either, TLS. A failed handshake is named in a few words, from the ssl
# library's error, with a hint when the server seems not to speak TLS.
from __future__ import annotations

import ssl

import attrs
import trio

from .._ports import DEFAULT_PORT
from .._tls import certificate_failure

__all__ = ["Endpoint", "HandshakeError"]


class HandshakeError(Exception):
    """The TLS handshake failed; the message says why, the cause is the ssl library's error.

    A rejected certificate is named as `_tls.certificate_failure` names it.
    """


# Errors of the ssl library that come from a peer that speaks TLS (an alert
# it sent) name no hint; any other says what a server that does not speak
# TLS looks like from here.
_NOT_TLS_HINT = " (is the server speaking TLS?)"


def _handshake_words(cause: BaseException | None) -> str:
    """Say in a few words why a handshake failed, from the ssl library's error."""
    if cause is not None and (failure := certificate_failure(cause)):
        return str(failure)
    if isinstance(cause, ssl.SSLEOFError) or cause is None:
        return "the server closed the connection during the handshake" + _NOT_TLS_HINT
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or cause.strerror or str(cause)
        words = reason.lower().replace("_", " ")
        hint = "" if "ALERT" in reason else _NOT_TLS_HINT
        return f"the handshake failed: {words}{hint}"
    if isinstance(cause, OSError) and cause.strerror:
        return f"the connection was broken during the handshake ({cause.strerror.lower()})"
    return f"the handshake failed: {cause}"


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where a server listens, and how to reach it.

    Attributes:
        host: The server's host (unused with ``unix``).
        port: The server's port (unused with ``unix``).
        unix: The path of the server's unix socket, instead of a host and
            a port.
        tls: The context to speak TLS with (``_tls.client_context``), or
            None for none.
        server_name: The name the server's certificate must carry: by
            default the host, and over a unix socket ``localhost``.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix: str | None = None
    tls: ssl.SSLContext | None = None
    server_name: str | None = None

    def __str__(self) -> str:
        """``unix:PATH``, or ``host:port`` as the server prints it."""
        if self.unix is not None:
            return f"unix:{self.unix}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def tls_name(self) -> str:
        """The name the server's certificate is checked against."""
        if self.server_name is not None:
            return self.server_name
        return "localhost" if self.unix is not None else self.host

    async def connect(self) -> trio.abc.Stream:
        """Open a connection to the server, and over TLS, shake hands.

        Returns:
            A `trio.SocketStream` (which can half-close), or over TLS a
            `trio.SSLStream` (which cannot: closing it sends close_notify).

        Raises:
            OSError: If the connection failed (refused, host not found, no
                socket at the path).
            HandshakeError: If the TLS handshake failed.
        """
        stream: trio.abc.Stream
        if self.unix is not None:
            stream = await trio.open_unix_socket(self.unix)
        else:
            stream = await trio.open_tcp_stream(self.host, self.port)
        if self.tls is None:
            return stream
        tls_stream = trio.SSLStream(
            stream, self.tls, server_hostname=self.tls_name, https_compatible=False
        )
        try:
            await tls_stream.do_handshake()
        except trio.BrokenResourceError as error:
            await trio.aclose_forcefully(stream)
            cause = error.__cause__
            raise HandshakeError(_handshake_words(cause)) from cause
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return tls_stream
