# Every bound a connection keeps.
from __future__ import annotations

import attrs

from ._framer import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["IDLE_GRANULARITY", "Limits"]

IDLE_GRANULARITY = 0.5
"""Seconds by which the idle deadline may land late (see `EchoProtocol`)."""


@attrs.frozen
class Limits:
    """Every bound a connection keeps.

    Attributes:
        max_message_size: The largest length a message may announce.
        max_held: The most bytes the connection may hold (`EchoProtocol.held`).
        header_timeout: Seconds a length prefix has to arrive in full: from
            the connection's start in count mode, from its first byte in
            framed mode.
        idle_timeout: Seconds the connection may go without a byte received
            or sent.
        linger_timeout: Seconds to wait for the peer to close after a
            half-close, when it may still send.
        min_data_rate: Bytes per second a message's payload must average,
            once `min_data_rate_grace` has passed since its header; 0 turns
            the check off. Echo mode has no messages, and so no such check.
        min_data_rate_grace: Seconds a payload has before its rate counts.
        handshake_timeout: Seconds a TLS handshake has to end, from the
            connection's start.
    """

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_held: int = DEFAULT_MAX_MESSAGE_SIZE + DEFAULT_MAX_MESSAGE_SIZE // 16 + 64 * 1024
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    linger_timeout: float = 2.0
    min_data_rate: float = 240.0
    min_data_rate_grace: float = 5.0
    handshake_timeout: float = 10.0
    idle_granularity: float = attrs.field(init=False)
    """Seconds by which the idle deadline may land late: see `EchoProtocol`."""

    @idle_granularity.default
    def _idle_granularity(self) -> float:
        return min(IDLE_GRANULARITY, self.idle_timeout / 16)
