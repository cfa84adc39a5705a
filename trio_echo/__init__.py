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
    from ._ports import DEFAULT_PORT
    from ._tls import TLSFileError, client_context
    from .client._exchange import (
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
    from .client._load import LoadReport, run_load
    from .protocol._errors import LocalProtocolError, ProtocolError, Reason, RemoteProtocolError
    from .protocol._events import NEED_DATA, EndOfMessage, EndOfStream, Event, Header, Payload
    from .protocol._framer import (
        DEFAULT_MAX_MESSAGE_SIZE,
        CountFramer,
        encode_header,
        encode_message,
    )
    from .protocol._protocol import (
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
    from .server._budget import MemoryBudget
    from .server._config import ConfigError, ServerConfig
    from .server._listeners import ALL_INTERFACES, EchoServer, ListenAddress, open_listeners
    from .server._pump import HandlerError, handle_connection
    from .server._report import ConnectionReport
    from .server._tls import ServerTLS, TLSFiles
    from .server._unix import UnixSocketFile, open_unix_listener

__version__ = "0.1.0"

_EXPORTS = {
    "EchoCheck": "client._exchange",
    "EchoMismatchError": "client._exchange",
    "Endpoint": "client._exchange",
    "FramedAnswers": "client._exchange",
    "HandshakeError": "client._exchange",
    "echo": "client._exchange",
    "echo_count": "client._exchange",
    "echo_framed": "client._exchange",
    "echo_plain": "client._exchange",
    "exchange": "client._exchange",
    "ConfigError": "server._config",
    "DEFAULT_PORT": "_ports",
    "ServerConfig": "server._config",
    "HandlerError": "server._pump",
    "handle_connection": "server._pump",
    "LocalProtocolError": "protocol._errors",
    "ProtocolError": "protocol._errors",
    "Reason": "protocol._errors",
    "RemoteProtocolError": "protocol._errors",
    "EndOfMessage": "protocol._events",
    "EndOfStream": "protocol._events",
    "Event": "protocol._events",
    "Header": "protocol._events",
    "NEED_DATA": "protocol._events",
    "Payload": "protocol._events",
    "CountFramer": "protocol._framer",
    "DEFAULT_MAX_MESSAGE_SIZE": "protocol._framer",
    "encode_header": "protocol._framer",
    "encode_message": "protocol._framer",
    "LoadReport": "client._load",
    "run_load": "client._load",
    "MemoryBudget": "server._budget",
    "Action": "protocol._protocol",
    "CHECK_UNREAD": "protocol._protocol",
    "CLOSE": "protocol._protocol",
    "HANDSHAKE": "protocol._protocol",
    "Deadline": "protocol._protocol",
    "EchoProtocol": "protocol._protocol",
    "Expiry": "protocol._protocol",
    "Limits": "protocol._protocol",
    "Mode": "protocol._protocol",
    "Outcome": "protocol._protocol",
    "PAUSED": "protocol._protocol",
    "Receive": "protocol._protocol",
    "SEND_EOF": "protocol._protocol",
    "Unread": "protocol._protocol",
    "YIELD": "protocol._protocol",
    "ConnectionReport": "server._report",
    "ALL_INTERFACES": "server._listeners",
    "EchoServer": "server._listeners",
    "ListenAddress": "server._listeners",
    "open_listeners": "server._listeners",
    "ServerTLS": "server._tls",
    "TLSFileError": "_tls",
    "TLSFiles": "server._tls",
    "client_context": "_tls",
    "UnixSocketFile": "server._unix",
    "open_unix_listener": "server._unix",
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
