# `trio-echo client`: one exchange checked byte for byte, or a load run.
from __future__ import annotations

import contextlib
import errno
import json
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable

import attrs
import trio

from .._messages import Message, MessageReadError
from .._ports import DEFAULT_PORT
from .._status import ExitStatus, fail
from .._tls import TLSFileError, certificate_failure, client_context
from ..client._exchange import (
    EchoCheck,
    EchoMismatchError,
    Endpoint,
    FramedAnswers,
    HandshakeError,
    exchange,
    message_pieces,
)
from ..client._load import run_load
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Mode, RemoteProtocolError, encode_header

__all__ = ["LOAD_FLAGS", "TLS_FLAGS", "ClientOptions", "run_client", "run_load_command"]


@attrs.frozen(kw_only=True)
class ClientOptions:
    """What the client command was asked to do, as typed values.

    The command line's defaults are these.

    Attributes:
        message: The messages to send (``-``: standard input).
        file: A file whose contents to send instead.
        host: The server's host.
        port: The server's port.
        unix: The path of the server's unix socket, instead of a host and a
            port.
        tls: Whether to speak TLS.
        cafile: Over TLS, the certificates of the authorities to trust;
            None for the system's trust store.
        server_name: Over TLS, the name the server's certificate must
            carry; None for the host (over a unix socket, ``localhost``).
        cert: Over TLS, a client certificate (with its key, if ``key`` is
            None), for a server that asks for one.
        key: The client certificate's private key.
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
    unix: str | None = None
    tls: bool = False
    cafile: str | None = None
    server_name: str | None = None
    cert: str | None = None
    key: str | None = None
    mode: Mode = attrs.field(default=Mode.COUNT, converter=Mode)
    timeout: float = 60.0
    quiet: bool = False
    repeat: int | None = None
    concurrency: int = 10
    size: int = 100
    json: bool = False

    def endpoint(self) -> Endpoint:
        """Where the server is, and how to reach it; over TLS, with the context made.

        Raises:
            TLSFileError: If a TLS file cannot be used.
        """
        tls = client_context(self.cafile, self.cert, self.key) if self.tls else None
        return Endpoint(
            host=self.host, port=self.port, unix=self.unix, tls=tls, server_name=self.server_name
        )


LOAD_FLAGS = ("concurrency", "size", "json")
"""The options that only a load run takes."""

TLS_FLAGS = ("cafile", "server_name", "cert", "key")
"""The options that only a TLS client takes."""


def _messages(options: ClientOptions) -> list[Message]:
    """The messages the client was asked to send, none of them read yet.

    Raises:
        _UsageError: If the arguments do not name exactly one source, or
            name several messages outside framed mode.
        _InputError: If the input cannot be read.
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


class _InputError(Exception):
    pass


class _OutputError(Exception):
    """Writing the echo to standard output failed (the cause says how)."""


class _Output:
    """The echo, written to standard output as it arrives.

    Into a pipe or a file, the bytes exactly; on a terminal, a line ends each
    framed answer, and the output ends with a line.
    """

    def __init__(self, *, quiet: bool) -> None:
        if sys.stdout is None and not quiet:
            raise _OutputError from OSError(errno.EBADF, "standard output is closed")
        self._out = sys.stdout.buffer if sys.stdout is not None else None
        self._quiet = quiet
        self._terminal = self._out is not None and not quiet and sys.stdout.isatty()
        self._line_open = False

    def write(self, data: bytes) -> None:
        if self._quiet or not data or self._out is None:
            return
        try:
            self._out.write(data)
            self._out.flush()
        except OSError as error:
            raise _OutputError from error
        self._line_open = not data.endswith(b"\n")

    def end_line(self) -> None:
        """On a terminal, end the line if one is open."""
        if self._terminal and self._line_open:
            self.write(b"\n")


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


MiB = 1024 * 1024

HINT_FROM = 64 * 1024
"""The least message size for which a silent server's limit is hinted at."""

HEAD_SIZE = 64
"""Bytes of the reply kept to say what kind of server sent it."""


async def _client_exchange(
    options: ClientOptions,
    endpoint: Endpoint,
    messages: list[Message],
    output: _Output,
    head: bytearray,
) -> str | None:
    """Run the client's exchange; return what is wrong with the echo, if anything.

    The first `HEAD_SIZE` bytes received are kept in ``head``.

    Raises:
        EchoMismatchError: At the first byte of the echo that differs.
        _OutputError: If the echo cannot be written.
    """
    mode = Mode(options.mode)
    progress = _Progress(0)

    def echoed(data: bytes) -> None:
        output.write(data)
        progress.on_echoed(len(data))

    def received(data: bytes) -> None:
        if len(head) < HEAD_SIZE:
            head.extend(data[: HEAD_SIZE - len(head)])

    outgoing: list[bytes | Message] = []
    if mode is Mode.FRAMED:
        checks = [EchoCheck(message) for message in messages]

        def answer_ended() -> None:
            index = answers.count - 1
            if index >= len(checks):
                raise EchoMismatchError(f"more answers came back than the {len(checks)} sent")
            if problem := checks[index].problem():
                raise EchoMismatchError(f"answer {index + 1}: {problem}")
            output.end_line()

        def payload(data: bytes) -> None:
            index = answers.count
            if index >= len(checks):
                raise EchoMismatchError(f"more answers came back than the {len(checks)} sent")
            checks[index](data)
            echoed(data)

        answers = FramedAnswers(
            max_message_size=max(m.size for m in messages),
            on_payload=payload,
            on_answer=answer_ended,
            keep=False,
        )

        def sink(data: bytes) -> None:
            received(data)
            answers(data)

        for message in messages:
            outgoing += [encode_header(message.size), message]
        half_close_after: int | None = 0
        reply_size = sum(len(p) if isinstance(p, bytes) else p.size for p in outgoing)
    else:
        (message,) = messages
        header = encode_header(message.size)
        check = EchoCheck(message, header=header if mode is Mode.COUNT else b"")
        outgoing = [header, message] if mode is Mode.COUNT else [message]

        def sink(data: bytes) -> None:
            received(data)
            check(data)
            echoed(data)

        half_close_after = None if mode is Mode.COUNT else message.size
        reply_size = message.size
    progress.total = sum(len(p) if isinstance(p, bytes) else p.size for p in outgoing)

    async def pieces() -> AsyncIterator[bytes]:
        for part in outgoing:
            if isinstance(part, bytes):
                yield part
            else:
                async with contextlib.aclosing(message_pieces(part)) as from_file:
                    async for piece in from_file:
                        yield piece

    try:
        sent_all = await _send_and_receive(
            options,
            endpoint,
            pieces(),
            sink,
            half_close_after=half_close_after,
            reply_size=reply_size,
            progress=progress,
        )
    except* MessageReadError as group:  # from the sending task: raised as itself
        while isinstance(error := group.exceptions[0], BaseExceptionGroup):
            group = error
        raise error from error.__cause__
    output.end_line()
    if mode is Mode.FRAMED:
        answers.end()
        if answers.count != len(messages):
            return f"{answers.count} answers came back for {len(messages)} messages"
        return None
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
    progress: _Progress,
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
    head = bytearray()
    try:
        output = _Output(quiet=options.quiet)
        problem = trio.run(_client_exchange, options, endpoint, messages, output, head)
    except MessageReadError as error:
        return fail(f"client: cannot read the message: {str(error).lower()}", ExitStatus.IO_ERROR)
    except _OutputError as error:
        return _output_failed(error.__cause__)
    except EchoMismatchError as error:
        return fail(f"client: {error}", ExitStatus.MISMATCH)
    except trio.TooSlowError:
        return fail(
            f"client: no complete echo from {where} within {options.timeout:g} s",
            ExitStatus.TIMEOUT,
        )
    except HandshakeError as error:
        return _handshake_failed(where, error)
    except trio.BrokenResourceError as error:
        if certificate_failure(error):  # over TLS 1.3, after the client's half of the handshake
            return _handshake_failed(where, error)
        cause = error.__cause__ or error
        return fail(
            f"client: the connection to {where} was reset ({cause})"
            + (
                _client_certificate_hint(options, head, cause)
                or _size_hint(options.mode, messages, head)
                or _mode_hint(options.mode, messages, head)
            ),
            ExitStatus.RESET,
        )
    except RemoteProtocolError as error:
        return fail(
            f"client: the answers from {where} break the framing: {error}"
            + _mode_hint(options.mode, messages, head),
            ExitStatus.PROTOCOL,
        )
    except OSError as error:
        return fail(
            f"client: cannot connect to {where}: {_connect_failure(error)}", ExitStatus.REFUSED
        )
    if problem is not None:
        return fail(
            f"client: {problem}"
            + (
                _size_hint(options.mode, messages, head) or _mode_hint(options.mode, messages, head)
            ),
            ExitStatus.MISMATCH,
        )
    return ExitStatus.OK


def _handshake_failed(where: str, error: Exception) -> ExitStatus:
    """End for a TLS handshake that failed: over a certificate, or otherwise."""
    cannot = f"client: cannot connect to {where} over TLS"
    if failure := certificate_failure(error):
        return fail(f"{cannot}: {failure}", ExitStatus.CERTIFICATE)
    return fail(f"{cannot}: {error}", ExitStatus.RESET)


def _output_failed(cause: BaseException | None) -> ExitStatus:
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
        f"client: cannot write the echo to standard output: {reason.lower()}",
        ExitStatus.OUTPUT_ERROR,
    )


def _size_hint(mode: str, messages: list[Message], head: bytes | bytearray) -> str:
    """Say what the server's silence may mean.

    A count or framed server that refuses a message's length closes before
    it echoes a byte.
    """
    if mode == Mode.ECHO or head or max(m.size for m in messages) < HINT_FROM:
        return ""
    largest = max(message.size for message in messages)
    return (
        f" (nothing came back: a server refuses a message longer than its"
        f" --max-message-size, {_size_text(DEFAULT_MAX_MESSAGE_SIZE)} by default,"
        f" and this one is {largest:,} bytes)"
    )


def _client_certificate_hint(
    options: ClientOptions, head: bytes | bytearray, cause: BaseException
) -> str:
    """Say what a TLS connection cut before any reply may mean.

    Over TLS 1.3 a server checks the client's certificate after the client
    has finished its handshake; one that does not send its alert then (a
    trio server does not) only closes.
    """
    if not options.tls or options.cert is not None or head:
        return ""
    if not isinstance(cause, ssl.SSLEOFError):
        return ""
    return (
        " (nothing came back: a TLS server that requires a client certificate closes"
        " so when it gets none; see --cert)"
    )


def _size_text(size: int) -> str:
    return f"{size // MiB}MiB" if size % MiB == 0 else f"{size:,} bytes"


def _mode_hint(mode: str, messages: list[Message], head: bytes | bytearray) -> str:
    """Say which mode the server seems to be in, when its reply shows it."""
    first = messages[0].read(0, len(head))
    if mode == Mode.FRAMED and head and first == head[: len(first)]:
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
    try:
        endpoint = options.endpoint()
    except TLSFileError as error:
        return fail(f"client: {error}", ExitStatus.USAGE)
    report = trio.run(
        lambda: run_load(
            endpoint.host,
            endpoint.port,
            unix=endpoint.unix,
            tls=endpoint.tls,
            server_name=endpoint.server_name,
            mode=options.mode,
            repeat=repeat,
            concurrency=options.concurrency,
            size=options.size,
            timeout=options.timeout,
        )
    )
    summary = report.summary()
    if not report.messages:
        summary["latency_ms"] = None  # no message completed: there is no latency
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        latency = summary["latency_ms"]
        print(
            f"{report.mode} mode, {report.size} B messages, {report.concurrency} connections: "
            f"{report.messages} echoed, {report.errors} errors in {report.seconds:.2f} s"
        )
        if isinstance(latency, dict):
            print(
                f"throughput: {report.messages_per_second:,.0f} messages/s, "
                f"{report.megabytes_per_second:,.2f} MB/s\n"
                f"latency (ms): p50 {latency['p50']}, p90 {latency['p90']}, "
                f"p99 {latency['p99']}, max {latency['max']}"
            )
        else:
            print("no message completed: no throughput or latency to show")
    if report.errors:
        return fail(
            f"client: {report.errors} of {report.errors + report.messages} messages failed;"
            f" the first: {report.first_error}",
            _status_of(report.first_failure),
        )
    return ExitStatus.OK


def _status_of(failure: BaseException | None) -> ExitStatus:
    """The exit status for a load run, by the cause of its first failure."""
    if failure is not None and certificate_failure(failure):
        return ExitStatus.CERTIFICATE
    for kind, status in (
        (HandshakeError, ExitStatus.RESET),
        (EchoMismatchError, ExitStatus.MISMATCH),
        (trio.TooSlowError, ExitStatus.TIMEOUT),
        (trio.BrokenResourceError, ExitStatus.RESET),
        (RemoteProtocolError, ExitStatus.PROTOCOL),
        (OSError, ExitStatus.REFUSED),
    ):
        if isinstance(failure, kind):
            return status
    return ExitStatus.MISMATCH
