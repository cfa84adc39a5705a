# One exchange with a server in each mode: send the payloads as the mode
# frames them, and return what came back. What is sent, when the client
# half-closes and how big the reply is are the mode's rules (`ModeRules`);
# these functions only follow them.
from __future__ import annotations

from collections.abc import Sequence

import trio

from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Mode, rules_of
from ._exchange import exchange
from ._replies import answers_of

__all__ = ["echo", "echo_count", "echo_framed", "echo_plain"]


async def _echo(
    stream: trio.abc.Stream,
    payloads: Sequence[bytes],
    mode: Mode | str,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> list[bytes]:
    """Send ``payloads`` in ``mode``; return the answers' payloads.

    Bare answers (count, echo) come back as one: the echo.

    Raises:
        RemoteProtocolError: If framed answers break the framing, or end
            inside an answer.
    """
    rules = rules_of(mode)
    answers = answers_of(rules, max_message_size)
    reply_size = rules.reply_size([len(payload) for payload in payloads])
    await exchange(
        stream,
        rules.requests(payloads, len),
        answers,
        half_close_after=rules.half_close_after(reply_size),
        reply_size=reply_size,
    )
    answers.end()
    return answers.answers


async def echo_count(stream: trio.abc.Stream, payload: bytes) -> bytes:
    """Send ``payload`` as one count message; return what the server echoed.

    Reads until the server closes. The stream is not closed.
    """
    return b"".join(await _echo(stream, [payload], Mode.COUNT))


async def echo_plain(stream: trio.abc.Stream, payload: bytes) -> bytes:
    """Send ``payload`` to an echo-mode server; return what it echoed.

    Half-closes once as many bytes came back as were sent (at once for an
    empty payload), then reads until the server closes; over a stream that
    cannot half-close (TLS), returns once as many bytes came back as were
    sent. The stream is not closed (over TLS, closing it ends the exchange
    for the server).
    """
    return b"".join(await _echo(stream, [payload], Mode.ECHO))


async def echo_framed(
    stream: trio.abc.Stream,
    payloads: Sequence[bytes],
    *,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> list[bytes]:
    """Pipeline ``payloads`` to a framed server; return its answers' payloads.

    Sends every message, half-closes, and parses the answers until the
    server closes; over a stream that cannot half-close (TLS), until every
    answer is in. The stream is not closed (over TLS, closing it ends the
    exchange for the server).

    Raises:
        RemoteProtocolError: If the answers break the framing, or end
            inside an answer.
    """
    return await _echo(stream, payloads, Mode.FRAMED, max_message_size)


async def echo(stream: trio.abc.Stream, payload: bytes, mode: Mode | str = Mode.COUNT) -> bytes:
    """Send ``payload`` in ``mode`` and return the echoed payload.

    Args:
        stream: The connection; not closed on return.
        payload: The bytes to send.
        mode: ``count``, ``echo`` or ``framed`` (one message).

    Returns:
        The payload bytes that came back (in framed mode, the payloads of
        every answer, joined).
    """
    return b"".join(await _echo(stream, [payload], mode))
