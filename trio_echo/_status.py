# How the command line ends: an exit status from ExitStatus, and for every
# failure one sentence on standard error, never a traceback. Every sentence
# has one prefix, the program and its command: `trio-echo: client: ...`. A
# standard error that cannot be written (closed, a full disk, a reader gone)
# loses the sentence and changes nothing else: not the status, and the
# sentence never goes to standard output, which carries the client's echo.
from __future__ import annotations

import contextlib
import enum
import os
import sys

__all__ = ["PROG", "ExitStatus", "fail", "give_stderr_a_sink", "speak_for"]

PROG = "trio-echo"


class ExitStatus(enum.IntEnum):
    """The command line's exit statuses."""

    OK = 0
    MISMATCH = 1
    """Client: the echo differs from what was sent (short, long or altered)."""
    WORKER_FAILED = 1
    """Server: a worker failed to start or exited at once, too many times in a
    row (the other workers were drained). The same number as MISMATCH: each
    command has its own meaning for it."""
    USAGE = 2
    """A bad flag or argument, a TLS file among them (missing, unreadable,
    not PEM, a key that does not match its certificate); client: a message
    longer than --max-message-size in count or framed mode."""
    CANNOT_LISTEN = 3
    """Server: the address could not be bound (in use, not resolvable)."""
    REFUSED = 4
    """Client: the connection was refused or the host did not resolve (over a
    unix socket: the path does not exist, is not a socket, or nobody listens
    there)."""
    TIMEOUT = 5
    """Client: the exchange did not finish within --timeout."""
    RESET = 6
    """Client: the server reset or broke the connection, or the TLS handshake
    failed for a reason other than a certificate (a server that does not
    speak TLS, one that closes during the handshake)."""
    PROTOCOL = 7
    """Client: the server's answer broke the framing (framed mode)."""
    IO_ERROR = 8
    """Client: the input file could not be read."""
    OUTPUT_ERROR = 9
    """Client: the echo could not be written to standard output (a reader
    that went away, a full disk); a broken pipe ends quietly."""
    CERTIFICATE = 10
    """Client: a TLS certificate was rejected: the server's (unknown issuer,
    wrong name, expired...), or, by the server, the client's (or its
    absence), also when the server only ended the connection before any
    reply, as it does when it refuses one without an alert."""
    INTERRUPTED = 130
    """Interrupted (SIGINT, Ctrl-C): the client at any moment, the server
    before it listened."""


_speaking: dict[str, str] = {}


def speak_for(command: str) -> None:
    """Name the command (``server``, ``client``) that `fail` speaks for from now on."""
    _speaking["command"] = command


def give_stderr_a_sink() -> None:
    """Make a standard error closed at start a sink, not a way to standard output.

    Python then sets ``sys.stderr`` to None, and print() and argparse write
    what was meant for it to standard output. The null device opened here
    also takes descriptor 2 (the lowest free one), so that no file or socket
    opened later takes it.
    """
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (the program's life)


def fail(message: str, status: ExitStatus) -> ExitStatus:
    """Say ``message`` on standard error, after the prefix; return ``status``.

    The prefix is the program and the command it speaks for
    (`speak_for`): a message that already begins with the command's name
    is not given it twice. Returns ``status`` all the same when standard
    error cannot be written.
    """
    command = _speaking.get("command")
    if command is not None:
        message = f"{command}: {message.removeprefix(f'{command}: ')}"
    stream = sys.stderr
    if stream is None:  # closed, and no sink given: print() would use standard output
        return status
    with contextlib.suppress(OSError, ValueError):  # ValueError: closed since
        print(f"{PROG}: {message}", file=stream, flush=True)
    return status
