"""trio_echo: the Twisted echo and count-echo servers, rebuilt on Trio.

The count protocol is ``length SP payload``. `CountFramer` frames it and
`EchoProtocol` is one connection's state machine in each `Mode`, without
doing any I/O; the server (`EchoServer`, `handle_connection`) and the client (`echo`,
`echo_count`, `echo_plain`, `echo_framed`, `run_load`, over TCP, a unix
socket or TLS: `Endpoint`) build on them.

Importing the package imports none of its modules: each name is imported
on first use, so that ``python -m trio_echo`` can catch the shutdown
signals before trio is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import (
        EchoCheck,
        EchoMismatchError,
        Endpoint,
        FramedAnswers,
        HandshakeError,
        echo,
        echo_count,
        echo_framed,
        echo_plain,
        exchange,
    )
    from ._config import DEFAULT_PORT, ConfigError, ServerConfig
    from ._connection import HandlerError, handle_connection
    from ._errors import LocalProtocolError, ProtocolError, Reason, RemoteProtocolError
    from ._events import NEED_DATA, EndOfMessage, EndOfStream, Event, Header, Payload
    from ._framer import DEFAULT_MAX_MESSAGE_SIZE, CountFramer, encode_header, encode_message
    from ._load import LoadReport, run_load
    from ._memory import MemoryBudget
    from ._protocol import (
        CHECK_UNREAD,
        CLOSE,
        HANDSHAKE,
        PAUSED,
        SEND_EOF,
        YIELD,
        Action,
        Deadline,
        EchoProtocol,
        Expiry,
        Limits,
        Mode,
        Outcome,
        Receive,
        Unread,
    )
    from ._report import ConnectionReport
    from ._server import ALL_INTERFACES, EchoServer, ListenAddress, open_listeners
    from ._tls import ServerTLS, TLSFileError, TLSFiles, client_context
    from ._unix import UnixSocketFile, open_unix_listener

__version__ = "0.1.0"

_EXPORTS = {
    "EchoCheck": "_client",
    "EchoMismatchError": "_client",
    "Endpoint": "_client",
    "FramedAnswers": "_client",
    "HandshakeError": "_client",
    "echo": "_client",
    "echo_count": "_client",
    "echo_framed": "_client",
    "echo_plain": "_client",
    "exchange": "_client",
    "ConfigError": "_config",
    "DEFAULT_PORT": "_config",
    "ServerConfig": "_config",
    "HandlerError": "_connection",
    "handle_connection": "_connection",
    "LocalProtocolError": "_errors",
    "ProtocolError": "_errors",
    "Reason": "_errors",
    "RemoteProtocolError": "_errors",
    "EndOfMessage": "_events",
    "EndOfStream": "_events",
    "Event": "_events",
    "Header": "_events",
    "NEED_DATA": "_events",
    "Payload": "_events",
    "CountFramer": "_framer",
    "DEFAULT_MAX_MESSAGE_SIZE": "_framer",
    "encode_header": "_framer",
    "encode_message": "_framer",
    "LoadReport": "_load",
    "run_load": "_load",
    "MemoryBudget": "_memory",
    "Action": "_protocol",
    "CHECK_UNREAD": "_protocol",
    "CLOSE": "_protocol",
    "HANDSHAKE": "_protocol",
    "Deadline": "_protocol",
    "EchoProtocol": "_protocol",
    "Expiry": "_protocol",
    "Limits": "_protocol",
    "Mode": "_protocol",
    "Outcome": "_protocol",
    "PAUSED": "_protocol",
    "Receive": "_protocol",
    "SEND_EOF": "_protocol",
    "Unread": "_protocol",
    "YIELD": "_protocol",
    "ConnectionReport": "_report",
    "ALL_INTERFACES": "_server",
    "EchoServer": "_server",
    "ListenAddress": "_server",
    "open_listeners": "_server",
    "ServerTLS": "_tls",
    "TLSFileError": "_tls",
    "TLSFiles": "_tls",
    "client_context": "_tls",
    "UnixSocketFile": "_unix",
    "open_unix_listener": "_unix",
}
"""Every public name, and the module that defines it."""

__all__ = [
    "ALL_INTERFACES",
    "CHECK_UNREAD",
    "CLOSE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PORT",
    "HANDSHAKE",
    "NEED_DATA",
    "PAUSED",
    "SEND_EOF",
    "YIELD",
    "Action",
    "ConfigError",
    "ConnectionReport",
    "CountFramer",
    "Deadline",
    "EchoCheck",
    "EchoMismatchError",
    "EchoProtocol",
    "EchoServer",
    "EndOfMessage",
    "EndOfStream",
    "Endpoint",
    "Event",
    "Expiry",
    "FramedAnswers",
    "HandlerError",
    "HandshakeError",
    "Header",
    "Limits",
    "ListenAddress",
    "LoadReport",
    "LocalProtocolError",
    "MemoryBudget",
    "Mode",
    "Outcome",
    "Payload",
    "ProtocolError",
    "Reason",
    "Receive",
    "RemoteProtocolError",
    "ServerConfig",
    "ServerTLS",
    "TLSFileError",
    "TLSFiles",
    "UnixSocketFile",
    "Unread",
    "client_context",
    "echo",
    "echo_count",
    "echo_framed",
    "echo_plain",
    "encode_header",
    "encode_message",
    "exchange",
    "handle_connection",
    "open_listeners",
    "open_unix_listener",
    "run_load",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
