"""trio_echo: the Twisted echo and count-echo servers, rebuilt on Trio.

The count protocol is ``length SP payload``; `CountFramer` frames it without
doing any I/O, and the server and the client both use it.
"""

from __future__ import annotations

from ._errors import LocalProtocolError, ProtocolError, Reason, RemoteProtocolError
from ._events import NEED_DATA, EndOfMessage, EndOfStream, Event, Header, Payload
from ._framer import DEFAULT_MAX_MESSAGE_SIZE, CountFramer, encode_header, encode_message

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "NEED_DATA",
    "CountFramer",
    "EndOfMessage",
    "EndOfStream",
    "Event",
    "Header",
    "LocalProtocolError",
    "Payload",
    "ProtocolError",
    "Reason",
    "RemoteProtocolError",
    "encode_header",
    "encode_message",
]
