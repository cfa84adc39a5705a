# `trio-echo client`: one exchange checked byte for byte, or a load run.
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import attrs
import trio

from ._client import EchoCheck, EchoMismatchError, FramedAnswers, exchange
from ._config import DEFAULT_PORT
from ._errors import RemoteProtocolError
from ._framer import encode_header
from ._load import run_load
from ._protocol import Mode
from ._server import format_address
from ._status import ExitStatus, fail

__all__ = ["LOAD_FLAGS", "ClientOptions", "run_client", "run_load_command"]


@attrs.frozen(kw_only=True)
class ClientOptions:
    """What the client command was asked to do, as typed values.

    The command line's defaults are these.

    Attributes:
        message: The messages to send (``-``: standard input).
        file: A file whose contents to send instead.
        host: The server's host.
        port: The server's port.
        mode: The server's mode.
        timeout: Seconds to give up after (in a load run, per message).
        quiet: Whether to leave the echo out of standard output.
        repeat: In a load run, the messages to send in all; None for one
            exchange.
        concurrency: In a load run, the connections at once.
        size: In a load run, the payload bytes per message.
        json: In a load run, whether to print the figures as JSON.
    """

    message: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    file: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    mode: Mode = attrs.field(default=Mode.COUNT, converter=Mode)
    timeout: float = 60.0
    quiet: bool = False
    repeat: int | None = None
    concurrency: int = 10
    size: int = 100
    json: bool = False


LOAD_FLAGS = ("concurrency", "size", "json")
"""The options that only a load run takes."""


def _read_messages(options: ClientOptions) -> list[bytes]:
    """Return the payloads the client was asked to send.

    Raises:
        _UsageError: If the arguments do not name exactly one source, or
            name several messages outside framed mode.
        OSError: If the input cannot be read.
    """
    sources = len(options.message) + (options.file is not None)
    if sources == 0:
        raise _UsageError("client: give a MESSAGE, --file PATH, or - for standard input")
    if options.file is not None and options.message:
        raise _UsageError("client: give either MESSAGE or --file, not both")
    if sources > 1 and options.mode != Mode.FRAMED:
        raise _UsageError(
            f"client: {options.mode} mode sends one message; framed mode sends several"
        )
    if options.file is not None:
        with open(options.file, "rb") as file:
            return [file.read()]
    messages = []
    for message in options.message:
        if message == "-":
            messages.append(sys.stdin.buffer.read())
        else:
            messages.append(os.fsencode(message))
    return messages


class _UsageError(Exception):
    pass


class _Progress:
    """Bytes sent and echoed, shown on standard error while it is a terminal."""

    INTERVAL = 0.5

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.echoed = 0
        self._start = time.monotonic()
        self._shown = False

    def on_sent(self, count: int) -> None:
        self.sent += count

    def on_echoed(self, count: int) -> None:
        self.echoed += count

    def show(self) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.echoed / elapsed / 1e6
        print(
            f"\rsent {self.sent:,} of {self.total:,} bytes, echoed {self.echoed:,}"
            f" ({rate:,.1f} MB/s)   ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self.show()
            print(file=sys.stderr)

    async def run(self) -> None:
        while True:
            await trio.sleep(self.INTERVAL)
            self.show()


HEAD_SIZE = 64
"""Bytes of the reply kept to say what kind of server sent it."""


async def _client_exchange(
    options: ClientOptions,
    messages: list[bytes],
    write: Callable[[bytes], None],
    head: bytearray,
) -> str | None:
    """Run the client's exchange; return what is wrong with the echo, if anything.

    The first `HEAD_SIZE` bytes received are kept in ``head``.

    Raises:
        EchoMismatchError: At the first byte of the echo that differs.
    """
    mode = Mode(options.mode)
    total = sum(len(message) for message in messages)
    progress = _Progress(0)

    def echoed(data: bytes) -> None:
        write(data)
        progress.on_echoed(len(data))

    def received(data: bytes) -> None:
        if len(head) < HEAD_SIZE:
            head.extend(data[: HEAD_SIZE - len(head)])

    if mode is Mode.FRAMED:
        outgoing = [part for m in messages for part in (encode_header(len(m)), m)]
        answers = FramedAnswers(max_message_size=max(len(m) for m in messages), on_payload=echoed)

        def sink(data: bytes) -> None:
            received(data)
            answers(data)

        half_close_after: int | None = 0
    else:
        header = encode_header(total)
        check = EchoCheck(messages[0], header=header if mode is Mode.COUNT else b"")
        outgoing = [header, messages[0]] if mode is Mode.COUNT else messages

        def sink(data: bytes) -> None:
            received(data)
            check(data)
            echoed(data)

        half_close_after = None if mode is Mode.COUNT else total
    progress.total = sum(len(data) for data in outgoing)  # what goes on the wire
    with trio.fail_after(options.timeout):
        stream = await trio.open_tcp_stream(options.host, options.port)
        async with stream:
            if not sys.stderr.isatty():
                sent_all = await exchange(stream, outgoing, sink, half_close_after=half_close_after)
            else:
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
                            on_sent=progress.on_sent,
                        )
                    except Exception as error:  # raised below as itself, not in a group
                        failure = error
                    nursery.cancel_scope.cancel()
                progress.finish()
                if failure is not None:
                    raise failure
    if mode is Mode.FRAMED:
        answers.end()
        if answers.answers != messages:
            return _framed_problem(answers.answers, messages)
        return None
    problem = check.problem()
    if problem and not sent_all:
        # Sending failed: the server reset the connection (closing with
        # unread bytes resets it). Whether the reset reached the client as a
        # failed send or a failed read is a race; it is a reset either way.
        raise trio.BrokenResourceError(f"before the whole message was sent; {problem}")
    return problem


def _framed_problem(answers: list[bytes], messages: list[bytes]) -> str:
    for index, (answer, message) in enumerate(zip(answers, messages, strict=False)):
        if answer != message:
            return f"answer {index + 1} differs from message {index + 1}"
    return f"{len(answers)} answers came back for {len(messages)} messages"


def run_client(options: ClientOptions) -> int:
    """Send the message(s) the command line names; return the exit status."""
    try:
        messages = _read_messages(options)
    except _UsageError as error:
        return fail(str(error), ExitStatus.USAGE)
    except OSError as error:
        return fail(
            f"client: cannot read {error.filename or 'the input'}: "
            f"{(error.strerror or str(error)).lower()}",
            ExitStatus.IO_ERROR,
        )
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        if not options.quiet:
            out.write(data)
            out.flush()

    where = format_address(options.host, options.port)
    head = bytearray()
    try:
        problem = trio.run(_client_exchange, options, messages, write, head)
    except EchoMismatchError as error:
        return fail(f"client: {error}", ExitStatus.MISMATCH)
    except trio.TooSlowError:
        return fail(
            f"client: no complete echo from {where} within {options.timeout:g} s",
            ExitStatus.TIMEOUT,
        )
    except trio.BrokenResourceError as error:
        cause = error.__cause__ or error
        return fail(
            f"client: the connection to {where} was reset ({cause})"
            + _mode_hint(options.mode, messages, bytes(head)),
            ExitStatus.RESET,
        )
    except RemoteProtocolError as error:
        return fail(
            f"client: the answers from {where} break the framing: {error}"
            + _mode_hint(options.mode, messages, bytes(head)),
            ExitStatus.PROTOCOL,
        )
    except OSError as error:
        return fail(
            f"client: cannot connect to {where}: {_connect_failure(error)}", ExitStatus.REFUSED
        )
    if problem is not None:
        return fail(
            f"client: {problem}" + _mode_hint(options.mode, messages, bytes(head)),
            ExitStatus.MISMATCH,
        )
    return ExitStatus.OK


def _mode_hint(mode: str, messages: list[bytes], head: bytes) -> str:
    """Say which mode the server seems to be in, when its reply shows it."""
    if mode == Mode.FRAMED and head and messages[0][: len(head)] == head[: len(messages[0])]:
        return " (a bare payload came back: the server seems to be in count mode)"
    if mode == Mode.ECHO and not head:
        return (
            " (nothing came back: a server in count or framed mode closes at once"
            " on a message that does not begin with a length)"
        )
    return ""


def _connect_failure(error: OSError) -> str:
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


def run_load_command(options: ClientOptions) -> int:
    """Run a load run as the command line asked; return the exit status."""
    repeat = options.repeat
    assert repeat is not None, "a load run has --repeat"
    if options.message or options.file is not None:
        return fail(
            "client: a load run (--repeat) makes its own messages; give no MESSAGE or --file",
            ExitStatus.USAGE,
        )
    report = trio.run(
        lambda: run_load(
            options.host,
            options.port,
            mode=options.mode,
            repeat=repeat,
            concurrency=options.concurrency,
            size=options.size,
            timeout=options.timeout,
        )
    )
    summary = report.summary()
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        latency = summary["latency_ms"]
        assert isinstance(latency, dict)
        print(
            f"{report.mode} mode, {report.size} B messages, {report.concurrency} connections: "
            f"{report.messages} echoed, {report.errors} errors in {report.seconds:.2f} s\n"
            f"throughput: {report.messages_per_second:,.0f} messages/s, "
            f"{report.megabytes_per_second:,.2f} MB/s\n"
            f"latency (ms): p50 {latency['p50']}, p90 {latency['p90']}, "
            f"p99 {latency['p99']}, max {latency['max']}"
        )
    if report.errors:
        return fail(
            f"client: {report.errors} of {report.errors + report.messages} messages failed;"
            f" the first: {report.first_error}",
            _status_of(report.first_failure),
        )
    return ExitStatus.OK


def _status_of(failure: BaseException | None) -> ExitStatus:
    """The exit status for a load run, by the cause of its first failure."""
    for kind, status in (
        (EchoMismatchError, ExitStatus.MISMATCH),
        (trio.TooSlowError, ExitStatus.TIMEOUT),
        (trio.BrokenResourceError, ExitStatus.RESET),
        (RemoteProtocolError, ExitStatus.PROTOCOL),
        (OSError, ExitStatus.REFUSED),
    ):
        if isinstance(failure, kind):
            return status
    return ExitStatus.MISMATCH
