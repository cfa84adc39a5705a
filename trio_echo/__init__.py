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
    # The public names, for the type checker: it does not run `_EXPORTS`
    # (tests/test_layout.py checks that the two name the same).
    from ._ports import DEFAULT_PORT as DEFAULT_PORT
    from ._tls import TLSFileError as TLSFileError, client_context as client_context
    from .client._exchange import (
        EchoCheck as EchoCheck,
        EchoMismatchError as EchoMismatchError,
        Endpoint as Endpoint,
        FramedAnswers as FramedAnswers,
        HandshakeError as HandshakeError,
        echo as echo,
        echo_count as echo_count,
        echo_framed as echo_framed,
        echo_plain as echo_plain,
        exchange as exchange,
    )
    from .client._load import LoadReport as LoadReport, run_load as run_load
    from .protocol._errors import (
        LocalProtocolError as LocalProtocolError,
        ProtocolError as ProtocolError,
        Reason as Reason,
        RemoteProtocolError as RemoteProtocolError,
    )
    from .protocol._events import (
        NEED_DATA as NEED_DATA,
        EndOfMessage as EndOfMessage,
        EndOfStream as EndOfStream,
        Event as Event,
        Header as Header,
        Payload as Payload,
    )
    from .protocol._framer import (
        DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE,
        CountFramer as CountFramer,
        encode_header as encode_header,
        encode_message as encode_message,
    )
    from .protocol._protocol import (
        CHECK_UNREAD as CHECK_UNREAD,
        CLOSE as CLOSE,
        HANDSHAKE as HANDSHAKE,
        PAUSED as PAUSED,
        SEND_EOF as SEND_EOF,
        YIELD as YIELD,
        Action as Action,
        Deadline as Deadline,
        EchoProtocol as EchoProtocol,
        Expiry as Expiry,
        Limits as Limits,
        Mode as Mode,
        Outcome as Outcome,
        Receive as Receive,
        Unread as Unread,
    )
    from .server._budget import MemoryBudget as MemoryBudget
    from .server._config import ConfigError as ConfigError, ServerConfig as ServerConfig
    from .server._handler import (
        HandlerError as HandlerError,
        handle_connection as handle_connection,
    )
    from .server._listeners import (
        ALL_INTERFACES as ALL_INTERFACES,
        ListenAddress as ListenAddress,
        open_listeners as open_listeners,
    )
    from .server._report import ConnectionReport as ConnectionReport
    from .server._server import EchoServer as EchoServer
    from .server._tls import ServerTLS as ServerTLS, TLSFiles as TLSFiles
    from .server._unix import (
        UnixSocketFile as UnixSocketFile,
        open_unix_listener as open_unix_listener,
    )


__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # The sans-IO core.
    "DEFAULT_MAX_MESSAGE_SIZE": "protocol._framer",
    "CountFramer": "protocol._framer",
    "encode_header": "protocol._framer",
    "encode_message": "protocol._framer",
    "NEED_DATA": "protocol._events",
    "EndOfMessage": "protocol._events",
    "EndOfStream": "protocol._events",
    "Event": "protocol._events",
    "Header": "protocol._events",
    "Payload": "protocol._events",
    "LocalProtocolError": "protocol._errors",
    "ProtocolError": "protocol._errors",
    "Reason": "protocol._errors",
    "RemoteProtocolError": "protocol._errors",
    "CHECK_UNREAD": "protocol._protocol",
    "CLOSE": "protocol._protocol",
    "HANDSHAKE": "protocol._protocol",
    "PAUSED": "protocol._protocol",
    "SEND_EOF": "protocol._protocol",
    "YIELD": "protocol._protocol",
    "Action": "protocol._protocol",
    "Deadline": "protocol._protocol",
    "EchoProtocol": "protocol._protocol",
    "Expiry": "protocol._protocol",
    "Limits": "protocol._protocol",
    "Mode": "protocol._protocol",
    "Outcome": "protocol._protocol",
    "Receive": "protocol._protocol",
    "Unread": "protocol._protocol",
    # The server.
    "ConfigError": "server._config",
    "ServerConfig": "server._config",
    "MemoryBudget": "server._budget",
    "HandlerError": "server._handler",
    "handle_connection": "server._handler",
    "ConnectionReport": "server._report",
    "ALL_INTERFACES": "server._listeners",
    "EchoServer": "server._server",
    "ListenAddress": "server._listeners",
    "open_listeners": "server._listeners",
    "UnixSocketFile": "server._unix",
    "open_unix_listener": "server._unix",
    "ServerTLS": "server._tls",
    "TLSFiles": "server._tls",
    # The client.
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
    "LoadReport": "client._load",
    "run_load": "client._load",
    # What both ends use.
    "DEFAULT_PORT": "_ports",
    "TLSFileError": "_tls",
    "client_context": "_tls",
}
"""Every public name, and the module that defines it (below this package).

`__all__` and the imports on first use (`__getattr__`) are made from it.
"""

__all__ = list(_EXPORTS)


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
