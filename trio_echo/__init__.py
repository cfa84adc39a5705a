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
    from .client._echo import (
        echo as echo,
        echo_count as echo_count,
        echo_framed as echo_framed,
        echo_plain as echo_plain,
    )
    from .client._endpoint import Endpoint as Endpoint, HandshakeError as HandshakeError
    from .client._exchange import exchange as exchange
    from .client._load import LoadReport as LoadReport, run_load as run_load
    from .client._replies import (
        EchoCheck as EchoCheck,
        EchoMismatchError as EchoMismatchError,
        FramedAnswers as FramedAnswers,
    )
    from .protocol import (
        CHECK_UNREAD as CHECK_UNREAD,
        CLOSE as CLOSE,
        DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE,
        HANDSHAKE as HANDSHAKE,
        NEED_DATA as NEED_DATA,
        PAUSED as PAUSED,
        SEND_EOF as SEND_EOF,
        YIELD as YIELD,
        Action as Action,
        CountFramer as CountFramer,
        Deadline as Deadline,
        EchoProtocol as EchoProtocol,
        EndOfMessage as EndOfMessage,
        EndOfStream as EndOfStream,
        Event as Event,
        Expiry as Expiry,
        Header as Header,
        Limits as Limits,
        LocalProtocolError as LocalProtocolError,
        Mode as Mode,
        Outcome as Outcome,
        Payload as Payload,
        ProtocolError as ProtocolError,
        Reason as Reason,
        Receive as Receive,
        RemoteProtocolError as RemoteProtocolError,
        Unread as Unread,
        encode_header as encode_header,
        encode_message as encode_message,
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
    "DEFAULT_MAX_MESSAGE_SIZE": "protocol",
    "CountFramer": "protocol",
    "encode_header": "protocol",
    "encode_message": "protocol",
    "NEED_DATA": "protocol",
    "EndOfMessage": "protocol",
    "EndOfStream": "protocol",
    "Event": "protocol",
    "Header": "protocol",
    "Payload": "protocol",
    "LocalProtocolError": "protocol",
    "ProtocolError": "protocol",
    "Reason": "protocol",
    "RemoteProtocolError": "protocol",
    "CHECK_UNREAD": "protocol",
    "CLOSE": "protocol",
    "HANDSHAKE": "protocol",
    "PAUSED": "protocol",
    "SEND_EOF": "protocol",
    "YIELD": "protocol",
    "Action": "protocol",
    "Deadline": "protocol",
    "EchoProtocol": "protocol",
    "Expiry": "protocol",
    "Limits": "protocol",
    "Mode": "protocol",
    "Outcome": "protocol",
    "Receive": "protocol",
    "Unread": "protocol",
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
    "EchoCheck": "client._replies",
    "EchoMismatchError": "client._replies",
    "FramedAnswers": "client._replies",
    "Endpoint": "client._endpoint",
    "HandshakeError": "client._endpoint",
    "echo": "client._echo",
    "echo_count": "client._echo",
    "echo_framed": "client._echo",
    "echo_plain": "client._echo",
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
