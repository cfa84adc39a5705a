# `trio-echo client`: one exchange, checked byte for byte.
#
# What is sent, when the client half-closes, how big the reply is and how it
# is checked are the mode's rules (`ModeRules`, `ReplyCheck`); this module
# reads the messages, writes the echo as it arrives, and names the failures
# (cli/_client_failures.py) with an exit status. A load run is
# cli/_load_command.py.
from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import AsyncIterator, Callable

import trio

from .._messages import Message, MessageReadError
from .._status import ExitStatus, fail
from .._tls import TLSFileError, certificate_failure
from ..client._endpoint import Endpoint, HandshakeError
from ..client._exchange import exchange, message_pieces
from ..client._replies import EchoMismatchError, ReplyCheck
from ..protocol import RemoteProtocolError, rules_of
from ._client_failures import (
    HEAD_SIZE,
    certificate_hint,
    connect_failure,
    handshake_failed,
    mode_hint,
    output_failed,
    size_hint,
)
from ._client_options import ClientOptions
from ._client_output import EchoOutput, OutputError, Progress

__all__ = ["run_client"]


class _UsageError(Exception):
    pass


class _InputError(Exception):
    pass


def _messages(options: ClientOptions) -> list[Message]:
    """The messages the client was asked to send, none of them read yet.

    Raises:
        _UsageError: If the arguments do not name exactly one source, or
            name several messages in a mode that sends one.
        _InputError: If the input cannot be read.
    """
    sources = len(options.message) + (options.file is not None)
    if sources == 0:
        raise _UsageError("client: give a MESSAGE, --file PATH, or - for standard input")
    if options.file is not None and options.message:
        raise _UsageError("client: give either MESSAGE or --file, not both")
    if sources > 1 and not rules_of(options.mode).pipelines:
        raise _UsageError(
            f"client: {options.mode} mode sends one message; framed mode sends several"
        )
    if options.message.count("-") > 1:
        raise _UsageError("client: standard input (-) can be read once")
    try:
        if options.file is not None:
            return [Message.from_file(options.file)]
        return [
            _standard_input() if text == "-" else Message(os.fsencode(text))
            for text in options.message
        ]
    except OSError as error:
        raise _InputError(
            f"client: cannot read {error.filename or options.file or 'standard input'}: "
            f"{(error.strerror or str(error)).lower()}"
        ) from None


def _standard_input() -> Message:
    if sys.stdin is None:
        raise OSError(errno.EBADF, "it is closed", "standard input")
    return Message.from_stream(sys.stdin.buffer)


def _size(piece: bytes | Message) -> int:
    return len(piece) if isinstance(piece, bytes) else piece.size


async def _client_exchange(
    options: ClientOptions,
    endpoint: Endpoint,
    messages: list[Message],
    output: EchoOutput,
    head: bytearray,
) -> str | None:
    """Run the client's exchange; return what is wrong with the reply, if anything.

    The first `HEAD_SIZE` bytes received are kept in ``head``.

    Raises:
        EchoMismatchError: At the first byte of the echo that differs.
        OutputError: If the echo cannot be written.
    """
    rules = rules_of(options.mode)
    outgoing = rules.requests(messages, _size)
    reply_size = rules.reply_size([message.size for message in messages])
    progress = Progress(sum(_size(piece) for piece in outgoing))

    def echoed(data: bytes) -> None:
        output.write(data)
        progress.on_echoed(len(data))

    check = ReplyCheck(rules, messages, on_payload=echoed, on_answer=output.end_line)

    def sink(data: bytes) -> None:
        if len(head) < HEAD_SIZE:
            head.extend(data[: HEAD_SIZE - len(head)])
        check(data)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in outgoing:
            if isinstance(piece, bytes):
                yield piece
            else:
                async with contextlib.aclosing(message_pieces(piece)) as from_file:
                    async for part in from_file:
                        yield part

    try:
        sent_all = await _send_and_receive(
            options,
            endpoint,
            pieces(),
            sink,
            half_close_after=rules.half_close_after(reply_size),
            reply_size=reply_size,
            progress=progress,
        )
    except* MessageReadError as group:  # from the sending task: raised as itself
        while isinstance(error := group.exceptions[0], BaseExceptionGroup):
            group = error
        raise error from error.__cause__
    output.end_line()
    check.end()
    problem = check.problem()
    if problem and not sent_all:
        # Sending failed: the server reset the connection (closing with
        # unread bytes resets it). Whether the reset reached the client as a
        # failed send or a failed read is a race; it is a reset either way.
        raise trio.BrokenResourceError(f"before the whole message was sent; {problem}")
    return problem


async def _send_and_receive(
    options: ClientOptions,
    endpoint: Endpoint,
    outgoing: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    half_close_after: int | None,
    reply_size: int,
    progress: Progress,
) -> bool:
    """Connect, and exchange; with progress on standard error if it is a terminal.

    Over TLS, the stream's close sends close_notify.
    """
    with trio.fail_after(options.timeout):
        stream = await endpoint.connect()
        async with stream:
            if not sys.stderr.isatty():
                return await exchange(
                    stream,
                    outgoing,
                    sink,
                    half_close_after=half_close_after,
                    reply_size=reply_size,
                )
            failure: Exception | None = None
            sent_all = False
            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress.run)
                try:
                    sent_all = await exchange(
                        stream,
                        outgoing,
                        sink,
                        half_close_after=half_close_after,
                        reply_size=reply_size,
                        on_sent=progress.on_sent,
                    )
                except Exception as error:  # raised below as itself, not in a group
                    failure = error
                nursery.cancel_scope.cancel()
            progress.finish()
            if failure is not None:
                raise failure
            return sent_all


def run_client(options: ClientOptions) -> int:
    """Send the message(s) the command line names; return the exit status."""
    try:
        messages = _messages(options)
    except _UsageError as error:
        return fail(str(error), ExitStatus.USAGE)
    except _InputError as error:
        return fail(str(error), ExitStatus.IO_ERROR)
    try:
        try:
            endpoint = options.endpoint()
        except TLSFileError as error:
            return fail(f"client: {error}", ExitStatus.USAGE)
        return _run_exchange(options, endpoint, messages)
    finally:
        for message in messages:
            message.close()


def _run_exchange(options: ClientOptions, endpoint: Endpoint, messages: list[Message]) -> int:
    where = str(endpoint)
    rules = rules_of(options.mode)
    head = bytearray()
    try:
        output = EchoOutput(quiet=options.quiet)
        problem = trio.run(_client_exchange, options, endpoint, messages, output, head)
    except MessageReadError as error:
        return fail(f"client: cannot read the message: {str(error).lower()}", ExitStatus.IO_ERROR)
    except OutputError as error:
        return output_failed(error.__cause__)
    except EchoMismatchError as error:
        return fail(f"client: {error}", ExitStatus.MISMATCH)
    except trio.TooSlowError:
        return fail(
            f"client: no complete echo from {where} within {options.timeout:g} s",
            ExitStatus.TIMEOUT,
        )
    except HandshakeError as error:
        return handshake_failed(where, error)
    except trio.BrokenResourceError as error:
        if certificate_failure(error):  # over TLS 1.3, after the client's half of the handshake
            return handshake_failed(where, error)
        cause = error.__cause__ or error
        return fail(
            f"client: the connection to {where} was reset ({cause})"
            + (
                certificate_hint(tls=options.tls, cert=options.cert, head=head, cause=cause)
                or size_hint(rules, messages, head)
                or mode_hint(rules, messages, head)
            ),
            ExitStatus.RESET,
        )
    except RemoteProtocolError as error:
        return fail(
            f"client: the answers from {where} break the framing: {error}"
            + mode_hint(rules, messages, head),
            ExitStatus.PROTOCOL,
        )
    except OSError as error:
        return fail(
            f"client: cannot connect to {where}: {connect_failure(error)}", ExitStatus.REFUSED
        )
    if problem is not None:
        return fail(
            f"client: {problem}"
            + (size_hint(rules, messages, head) or mode_hint(rules, messages, head)),
            ExitStatus.MISMATCH,
        )
    return ExitStatus.OK
