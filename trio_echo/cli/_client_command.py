# `trio-echo client`: one exchange, checked byte for byte.
#
# What is sent, when the client half-closes, how big the reply is and how it
# is checked are the mode's rules (`ModeRules`, `ReplyCheck`); this module
# reads the messages, writes the echo as it arrives, and names the failures
# (cli/_client_failures.py) with an exit status. A load run is
# cli/_load_command.py.
from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from .._messages import Message, MessageReadError
from .._status import ExitStatus, fail
from .._tls import TLSFileError, certificate_failure
from ..client._endpoint import Endpoint, HandshakeError
from ..client._exchange import exchange, message_pieces
from ..client._replies import EchoMismatchError, ReplyCheck
from ..client._streamed import StreamedMessage, exchange_streamed
from ..protocol import RemoteProtocolError, rules_of
from ._client_failures import (
    HEAD_SIZE,
    certificate_refused,
    connect_failure,
    handshake_failed,
    mode_hint,
    output_failed,
    size_hint,
    tls_hint,
)
from ._client_input import InputError, UsageError, messages_of
from ._client_options import ClientOptions
from ._client_output import EchoOutput, OutputError, Progress

__all__ = ["run_client"]


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
    streamed = messages[0] if isinstance(messages[0], StreamedMessage) else None
    progress = Progress(None if streamed else sum(_size(piece) for piece in outgoing))

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

    async def transfer(stream: trio.abc.Stream, on_sent: Callable[[int], None] | None) -> bool:
        if streamed is not None:  # its size is known once it has ended
            return await exchange_streamed(stream, streamed, sink, on_sent=on_sent)
        return await exchange(
            stream,
            pieces(),
            sink,
            half_close_after=rules.half_close_after(reply_size),
            reply_size=reply_size,
            on_sent=on_sent,
        )

    try:
        try:
            sent_all = await _send_and_receive(options, endpoint, transfer, progress)
        except* MessageReadError as group:  # from the sending task: raised as itself
            while isinstance(error := group.exceptions[0], BaseExceptionGroup):
                group = error
            raise error from error.__cause__
    except trio.TooSlowError:
        if check.problem() is not None or (streamed is not None and not streamed.ended):
            raise
        # The whole reply came back; the server only did not close. Nothing
        # is missing: the exchange is complete.
        sent_all = True
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
    transfer: Callable[[trio.abc.Stream, Callable[[int], None] | None], Awaitable[bool]],
    progress: Progress,
) -> bool:
    """Connect, and ``transfer``; with progress on standard error if it is a terminal.

    Over TLS, the stream's close sends close_notify.
    """
    with trio.fail_after(options.timeout):
        stream = await endpoint.connect()
        async with stream:
            if not sys.stderr.isatty():
                return await transfer(stream, None)
            failure: Exception | None = None
            sent_all = False
            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress.run)
                try:
                    sent_all = await transfer(stream, progress.on_sent)
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
        messages = messages_of(options)
    except UsageError as error:
        return fail(str(error), ExitStatus.USAGE)
    except InputError as error:
        return fail(str(error), ExitStatus.IO_ERROR)
    try:
        try:
            endpoint = options.endpoint()
        except TLSFileError as error:
            return fail(str(error), ExitStatus.USAGE)
        return _run_exchange(options, endpoint, messages)
    finally:
        for message in messages:
            message.close()


def _run_exchange(options: ClientOptions, endpoint: Endpoint, messages: list[Message]) -> int:
    where = str(endpoint)
    tls = endpoint.tls is not None
    rules = rules_of(options.mode)
    head = bytearray()
    try:
        output = EchoOutput(quiet=options.quiet, lines=options.lines)
        problem = trio.run(_client_exchange, options, endpoint, messages, output, head)
    except MessageReadError as error:
        return fail(f"cannot read the message: {str(error).lower()}", ExitStatus.IO_ERROR)
    except OutputError as error:
        return output_failed(error.__cause__)
    except EchoMismatchError as error:
        return fail(str(error) + tls_hint(tls=tls, head=head), ExitStatus.MISMATCH)
    except trio.TooSlowError:
        return fail(
            f"no complete echo from {where} within {options.timeout:g} s",
            ExitStatus.TIMEOUT,
        )
    except HandshakeError as error:
        return handshake_failed(where, error)
    except trio.BrokenResourceError as error:
        if certificate_failure(error):  # over TLS 1.3, after the client's half of the handshake
            return handshake_failed(where, error)
        hint = size_hint(rules, messages, head)
        if not hint and (refused := certificate_refused(tls=tls, cert=options.cert, head=head)):
            return fail(f"cannot connect to {where} over TLS: {refused}", ExitStatus.CERTIFICATE)
        cause = error.__cause__ or error
        return fail(
            f"the connection to {where} was reset ({cause})"
            + (hint or mode_hint(rules, messages, head) or tls_hint(tls=tls, head=head)),
            ExitStatus.RESET,
        )
    except RemoteProtocolError as error:
        return fail(
            f"the answers from {where} break the framing: {error}"
            + mode_hint(rules, messages, head),
            ExitStatus.PROTOCOL,
        )
    except OSError as error:
        return fail(f"cannot connect to {where}: {connect_failure(error)}", ExitStatus.REFUSED)
    if problem is not None:
        return fail(
            problem
            + (
                size_hint(rules, messages, head)
                or mode_hint(rules, messages, head)
                or tls_hint(tls=tls, head=head)
            ),
            ExitStatus.MISMATCH,
        )
    return ExitStatus.OK
