# How the client command names what went wrong, in one sentence: a failed
# handshake, an echo it could not write, a connection that failed, and the
# hints that the reply (or its absence) gives about the server: its mode,
# its bound on a message's size, or its wish for a client certificate.
from __future__ import annotations

import contextlib
import os
import sys

from .._messages import Message
from .._status import ExitStatus, fail
from .._tls import certificate_failure
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, ModeRules
from ._readers import size_text

__all__ = [
    "HEAD_SIZE",
    "HINT_FROM",
    "certificate_refused",
    "connect_failure",
    "handshake_failed",
    "mode_hint",
    "output_failed",
    "size_hint",
    "tls_hint",
]

HINT_FROM = 64 * 1024
"""The least message size for which a silent server's limit is hinted at."""

HEAD_SIZE = 64
"""Bytes of the reply kept to say what kind of server sent it."""

_TLS_ALERT = b"\x15\x03"
"""How a TLS alert record begins (its type, then the major version)."""


def handshake_failed(where: str, error: Exception) -> ExitStatus:
    """End for a TLS handshake that failed: over a certificate, or otherwise."""
    cannot = f"cannot connect to {where} over TLS"
    if failure := certificate_failure(error):
        return fail(f"{cannot}: {failure}", ExitStatus.CERTIFICATE)
    return fail(f"{cannot}: {error}", ExitStatus.RESET)


def output_failed(cause: BaseException | None) -> ExitStatus:
    """End for a failure to write the echo.

    Quietly for a reader that went away (a broken pipe, as ``cat`` does),
    else with one sentence.
    """
    # Nothing more can be written there, not even the interpreter's flush.
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno() if sys.stdout else 1)
    if isinstance(cause, BrokenPipeError):
        return ExitStatus.OUTPUT_ERROR
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    return fail(
        f"cannot write the echo to standard output: {reason.lower()}",
        ExitStatus.OUTPUT_ERROR,
    )


def size_hint(rules: ModeRules, messages: list[Message], head: bytes | bytearray) -> str:
    """Say what the server's silence may mean.

    A server whose requests are framed, and that refuses a message's length,
    closes before it echoes a byte.
    """
    if not rules.framed_requests or head:
        return ""
    largest = max(message.size for message in messages)
    if largest < HINT_FROM:
        return ""
    return (
        f" (nothing came back: a server refuses a message longer than its"
        f" --max-message-size, {size_text(DEFAULT_MAX_MESSAGE_SIZE)} by default,"
        f" and this one is {largest:,} bytes)"
    )


def certificate_refused(*, tls: bool, cert: str | None, head: bytes | bytearray) -> str:
    """Say why a TLS connection that ended before any reply likely did: its client certificate.

    Over TLS 1.3 a server checks the client's certificate after the client
    has finished its half of the handshake. One that refuses it without its
    alert (a trio server sends none) ends the connection, and the client
    sees an end of stream or a reset, whichever way the server ended it.

    Returns:
        The sentence's end, or ``""`` if the connection was not over TLS, or
        something came back.
    """
    if not tls or head:
        return ""
    if cert is None:
        return (
            "the server ended the connection before any reply, as a server that requires"
            " a client certificate does when it gets none (see --cert)"
        )
    return (
        "the server ended the connection before any reply, as a server does that does not"
        " trust the client certificate (--cert): its issuer may not be in the server's"
        " --tls-client-ca"
    )


def tls_hint(*, tls: bool, head: bytes | bytearray) -> str:
    """Say what a plain connection's reply (or its absence) says of a TLS server."""
    if tls:
        return ""
    if head.startswith(_TLS_ALERT):
        return " (a TLS alert came back: the server speaks TLS; give --tls)"
    if not head:
        return (
            " (nothing came back: a server that speaks TLS ends a plain connection so;"
            " if it does, give --tls)"
        )
    return ""


def mode_hint(rules: ModeRules, messages: list[Message], head: bytes | bytearray) -> str:
    """Say which mode the server seems to be in, when its reply shows it."""
    if rules.framed_answers and head and head.startswith(messages[0].read(0, len(head))):
        return " (a bare payload came back: the server seems to be in count mode)"
    if not rules.framed_requests and not head:
        return (
            " (nothing came back: a server in count or framed mode closes at once"
            " on a message that does not begin with a length)"
        )
    return ""


def connect_failure(error: OSError) -> str:
    """Say in a few words why a connection failed.

    trio reports every address it tried as the cause of one OSError; the
    first attempt's reason is the one to tell.
    """
    cause = error.__cause__
    if isinstance(cause, BaseExceptionGroup):
        attempts = [e for e in cause.exceptions if isinstance(e, OSError)]
        if attempts:
            error = attempts[0]
    elif isinstance(cause, OSError):
        error = cause
    if error.errno is not None and error.errno > 0:  # name lookups have their own codes
        return os.strerror(error.errno).lower()
    return (error.strerror or str(error)).lower()
