"""trio_echo: the Twisted echo and count-echo servers, rebuilt on Trio.

The count protocol is ``length SP payload``. `CountFramer` frames it and
`EchoProtocol` is one connection's state machine in each `Mode`, without
doing any I/O; the server (`EchoServer`, `handle_connection`) and the client (`echo`,
`echo_count`, `echo_plain`, `echo_framed`, `run_load`) build on them.
"""

from __future__ import annotations

from ._client import (
    EchoCheck,
    EchoMismatchError,
    FramedAnswers,
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

__version__ = "0.1.0"

__all__ = [
    "ALL_INTERFACES",
    "CHECK_UNREAD",
    "CLOSE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PORT",
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
    "Event",
    "Expiry",
    "FramedAnswers",
    "HandlerError",
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
    "Unread",
    "echo",
    "echo_count",
    "echo_framed",
    "echo_plain",
    "encode_header",
    "encode_message",
    "exchange",
    "handle_connection",
    "open_listeners",
    "run_load",
]
