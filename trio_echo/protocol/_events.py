# The events a CountFramer produces, and the NEED_DATA sentinel.
#
# Events are tiny immutable value classes, compared by value, so tests can
# write the expected event stream out literally. A message arrives as one
# Header, any number of Payload events (the payload streams: it is never
# buffered whole), then one EndOfMessage. EndOfStream says the peer closed
# cleanly between two messages.
from __future__ import annotations

import attrs

__all__ = [
    "NEED_DATA",
    "EndOfMessage",
    "EndOfStream",
    "Event",
    "Header",
    "Payload",
]


class _SentinelBase(type):
    def __repr__(cls) -> str:
        return cls.__name__


class NEED_DATA(metaclass=_SentinelBase):  # noqa: N801  (a sentinel, named as one)
    """Returned by `CountFramer.next_event` when it needs more bytes.

    It is its own type, so ``event is NEED_DATA`` is the test and the type
    checker can tell it apart from the events.
    """

    def __init__(self) -> None:
        raise TypeError("NEED_DATA is a sentinel; use the class itself")


def _short_repr(data: bytes) -> str:
    if len(data) <= 64:
        return repr(data)
    return f"<{len(data)} bytes: {data[:32]!r}...>"


@attrs.frozen
class Header:
    """A message's length prefix has been read in full.

    Attributes:
        length: The number of payload bytes that follow.
    """

    length: int


@attrs.frozen
class Payload:
    """A piece of the current message's payload, as it arrived.

    The pieces of one message add up to exactly ``Header.length`` bytes; how
    they are cut depends only on how the bytes arrived.

    Attributes:
        data: The payload bytes (never empty).
    """

    data: bytes = attrs.field(repr=_short_repr)


@attrs.frozen
class EndOfMessage:
    """The current message's payload is complete."""


@attrs.frozen
class EndOfStream:
    """The peer ended the stream cleanly, between two messages."""


Event = Header | Payload | EndOfMessage | EndOfStream
