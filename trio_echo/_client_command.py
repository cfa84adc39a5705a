# `trio-echo client`: one exchange checked byte for byte, or a load run.
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import trio

from ._client import EchoCheck, EchoMismatchError, FramedAnswers, exchange
from ._errors import RemoteProtocolError
from ._framer import encode_header
from ._load import run_load
from ._protocol import Mode
from ._server import format_address
from ._status import ExitStatus, fail

__all__ = ["run_client", "run_load_command"]


def _read_messages(args: argparse.Namespace) -> list[bytes]:
    """Return the payloads the client was asked to send.

    Raises:
        _UsageError: If the arguments do not name exactly one source, or
            name several messages outside framed mode.
        OSError: If the input cannot be read.
    """
    sources = len(args.message) + (args.file is not None)
    if sources == 0:
        raise _UsageError("client: give a MESSAGE, --file PATH, or - for standard input")
    if args.file is not None and args.message:
        raise _UsageError("client: give either MESSAGE or --file, not both")
    if sources > 1 and args.mode != Mode.FRAMED:
        raise _UsageError(f"client: {args.mode} mode sends one message; framed mode sends several")
    if args.file is not None:
        with open(args.file, "rb") as file:
            return [file.read()]
    messages = []
    for message in args.message:
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
    args: argparse.Namespace,
    messages: list[bytes],
    write: Callable[[bytes], None],
    head: bytearray,
) -> str | None:
    """Run the client's exchange; return what is wrong with the echo, if anything.

    The first `HEAD_SIZE` bytes received are kept in ``head``.

    Raises:
        EchoMismatchError: At the first byte of the echo that differs.
    """
    mode = Mode(args.mode)
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
    with trio.fail_after(args.timeout):
        stream = await trio.open_tcp_stream(args.host, args.port)
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


def run_client(args: argparse.Namespace) -> int:
    """Send the message(s) the command line names; return the exit status."""
    try:
        messages = _read_messages(args)
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
        if not args.quiet:
            out.write(data)
            out.flush()

    where = format_address(args.host, args.port)
    head = bytearray()
    try:
        problem = trio.run(_client_exchange, args, messages, write, head)
    except EchoMismatchError as error:
        return fail(f"client: {error}", ExitStatus.MISMATCH)
    except trio.TooSlowError:
        return fail(
            f"client: no complete echo from {where} within {args.timeout:g} s", ExitStatus.TIMEOUT
        )
    except trio.BrokenResourceError as error:
        cause = error.__cause__ or error
        return fail(
            f"client: the connection to {where} was reset ({cause})"
            + _mode_hint(args.mode, messages, bytes(head)),
            ExitStatus.RESET,
        )
    except RemoteProtocolError as error:
        return fail(
            f"client: the answers from {where} break the framing: {error}"
            + _mode_hint(args.mode, messages, bytes(head)),
            ExitStatus.PROTOCOL,
        )
    except OSError as error:
        return fail(
            f"client: cannot connect to {where}: {_connect_failure(error)}", ExitStatus.REFUSED
        )
    if problem is not None:
        return fail(
            f"client: {problem}" + _mode_hint(args.mode, messages, bytes(head)),
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


def run_load_command(args: argparse.Namespace) -> int:
    """Run a load run as the command line asked; return the exit status."""
    if args.message or args.file is not None:
        return fail(
            "client: a load run (--repeat) makes its own messages; give no MESSAGE or --file",
            ExitStatus.USAGE,
        )
    report = trio.run(
        lambda: run_load(
            args.host,
            args.port,
            mode=args.mode,
            repeat=args.repeat,
            concurrency=args.concurrency,
            size=args.size,
            timeout=args.timeout,
        )
    )
    summary = report.summary()
    if args.json:
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
