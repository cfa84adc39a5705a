# A load run for people comparing servers: N messages over C concurrent
# connections, every echo checked byte for byte, with throughput and latency.
#
# In a mode whose connection carries one message (count), a new connection
# per message (the original's pattern); in the others (echo, framed), C
# persistent connections, one message in flight on each. What each message
# is sent as, how big its reply is and how it is checked are the mode's
# rules (`ModeRules`, `ReplyCheck`). Latency is measured per message, from
# the first byte sent (with a connection per message, from the connect, and
# over TLS the handshake) to the last byte of the echo. Over TLS, a
# connection per message is a new TLS connection (a full handshake each),
# and a persistent connection ends with close_notify where over TCP or a
# unix socket it half-closes. Being Python, this client shares the
# machine's cores with the server; the benchmarks/ harness has a C load
# generator for measurements where the client must not be the limit.
from __future__ import annotations

import math
import random
import ssl
import time

import attrs
import trio

from .._tls import certificate_failure
from ..protocol import Mode, ModeRules, RemoteProtocolError, rules_of
from ._endpoint import Endpoint, HandshakeError
from ._exchange import RECEIVE_SIZE, cut_after_the_reply
from ._replies import EchoMismatchError, ReplyCheck

__all__ = ["LoadReport", "LoadRun", "error_kind", "run_load"]

SEQUENTIAL_LIMIT = 64 * 1024
"""Messages up to this size are sent whole before the echo is read (the
kernel's buffers hold them); larger ones are sent and read at once."""


def percentile(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ordered list (0 if empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@attrs.frozen
class LoadReport:
    """The result of a load run.

    Attributes:
        mode: The protocol mode used.
        size: The payload size of every message, in bytes.
        concurrency: Connections in use at once.
        messages: Messages echoed correctly.
        errors: Messages that failed (refused, reset, wrong echo, timeout).
        seconds: Wall-clock duration of the run.
        errors_by_kind: How many failed of each kind (`error_kind`), in
            the order each kind first failed.
        repeat: Messages the run was asked to send (more than
            ``messages + errors`` if it was interrupted).
        latencies: Per-message latency in seconds, of the successful
            messages, in ascending order.
        first_error: The first failure, in words, if there was one.
        first_failure: The first failure itself (an `EchoMismatchError`,
            `trio.TooSlowError`, `trio.BrokenResourceError`,
            `RemoteProtocolError`, `HandshakeError` or `OSError`), if there
            was one.
    """

    mode: Mode
    size: int
    concurrency: int
    messages: int
    errors: int
    seconds: float
    latencies: list[float] = attrs.field(repr=False)
    first_error: str = ""
    first_failure: BaseException | None = attrs.field(default=None, repr=False, eq=False)
    errors_by_kind: dict[str, int] = attrs.field(factory=dict)
    repeat: int | None = None

    @property
    def messages_per_second(self) -> float:
        """Successful messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        """Payload megabytes (10^6 bytes) echoed per second."""
        return self.messages_per_second * self.size / 1e6

    def summary(self) -> dict[str, object]:
        """Return the figures as a JSON-ready mapping (latencies in ms)."""
        ms = 1000.0
        return {
            "mode": str(self.mode),
            "size": self.size,
            "concurrency": self.concurrency,
            "messages": self.messages,
            "errors": self.errors,
            "seconds": round(self.seconds, 6),
            "messages_per_second": round(self.messages_per_second, 1),
            "megabytes_per_second": round(self.megabytes_per_second, 3),
            "latency_ms": {
                "p50": round(percentile(self.latencies, 0.50) * ms, 3),
                "p90": round(percentile(self.latencies, 0.90) * ms, 3),
                "p99": round(percentile(self.latencies, 0.99) * ms, 3),
                "max": round((self.latencies[-1] if self.latencies else 0.0) * ms, 3),
            },
            "errors_by_kind": dict(self.errors_by_kind),
            "first_error": self.first_error,
        }


FAILURES = (
    EchoMismatchError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    RemoteProtocolError,
    HandshakeError,
    OSError,
)
"""What can make a message of a load run fail."""


def error_kind(error: BaseException) -> str:
    """The kind of a load run's failure, in a word or two.

    ``refused`` (the connection could not be made), ``reset`` (it broke),
    ``timeout``, ``mismatch`` (a wrong echo), ``framing`` (framed answers
    that break it), ``certificate`` or ``handshake`` (TLS).
    """
    if certificate_failure(error):
        return "certificate"
    for kind, word in (
        (HandshakeError, "handshake"),
        (EchoMismatchError, "mismatch"),
        (trio.TooSlowError, "timeout"),
        (trio.BrokenResourceError, "reset"),
        (RemoteProtocolError, "framing"),
        (OSError, "refused"),
    ):
        if isinstance(error, kind):
            return word
    return "other"


@attrs.define
class LoadRun:
    """A load run, whose figures can be read while it runs, or after it was cut short.

    Attributes:
        endpoint: Where the server is.
        rules: The server's mode's rules.
        payload: The payload every message carries: one object, shared.
        timeout: Seconds one message (or, in the persistent modes, one
            connection's share) may take.
        repeat: Messages to send in all.
        concurrency: Connections at once.
        latencies: The latency of each message echoed so far, in seconds.
        errors: Messages failed so far.
        errors_by_kind: Of those, how many of each kind (`error_kind`).
        first_failure: The first failure, if any.
    """

    endpoint: Endpoint
    rules: ModeRules
    payload: bytes
    timeout: float
    repeat: int
    concurrency: int
    latencies: list[float] = attrs.field(factory=list)
    errors: int = 0
    errors_by_kind: dict[str, int] = attrs.field(factory=dict)
    first_failure: BaseException | None = None
    remaining: int = attrs.field(init=False)
    request: tuple[bytes, ...] = attrs.field(init=False)
    """What each message is sent as: its prefix and the shared payload,
    or, for a small one, both in one string (one send)."""
    reply_size: int = attrs.field(init=False)
    until_close: bool = attrs.field(init=False)
    """Whether a reply ends when the server closes: in a mode whose client
    never half-closes, the server closes once it has answered."""
    _start: float | None = attrs.field(init=False, default=None)
    _end: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.remaining = self.repeat
        pieces: list[bytes] = [p for p in self.rules.requests([self.payload], len) if p]
        small = len(self.payload) <= SEQUENTIAL_LIMIT
        self.request = (b"".join(pieces),) if small else tuple(pieces)
        self.reply_size = self.rules.reply_size([len(self.payload)])
        self.until_close = self.rules.half_close_after(self.reply_size) is None

    async def run(self) -> None:
        """Send the messages; return once every one is echoed or failed."""
        self._start = time.perf_counter()
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(min(self.concurrency, self.repeat)):
                    nursery.start_soon(self.worker)
        finally:
            self._end = time.perf_counter()

    @property
    def messages(self) -> int:
        """Messages echoed correctly so far."""
        return len(self.latencies)

    @property
    def seconds(self) -> float:
        """How long the run has taken so far, or took."""
        if self._start is None:
            return 0.0
        return (self._end or time.perf_counter()) - self._start

    def report(self) -> LoadReport:
        """The figures so far: the whole run's, once it has returned."""
        return LoadReport(
            mode=self.rules.mode,
            size=len(self.payload),
            concurrency=self.concurrency,
            messages=self.messages,
            errors=self.errors,
            seconds=self.seconds,
            latencies=sorted(self.latencies),
            first_error=self.describe(self.first_failure) if self.first_failure else "",
            first_failure=self.first_failure,
            errors_by_kind=dict(self.errors_by_kind),
            repeat=self.repeat,
        )

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    def failed(self, error: BaseException) -> None:
        self.errors += 1
        kind = error_kind(error)
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        if self.first_failure is None:
            self.first_failure = error

    def describe(self, error: BaseException) -> str:
        """Say what went wrong with a message, in words."""
        if isinstance(error, trio.TooSlowError):
            return f"no complete echo within {self.timeout:g} s"
        if failure := certificate_failure(error):
            return f"cannot connect over TLS: {failure}"
        if isinstance(error, HandshakeError):
            return f"cannot connect over TLS: {error}"
        if isinstance(error, trio.BrokenResourceError):
            cause = error.__cause__ or error.__context__
            return f"the connection was reset ({cause or error})"
        if isinstance(error, RemoteProtocolError):
            return f"the answers break the framing: {error}"
        if isinstance(error, OSError):
            return f"cannot connect: {(error.strerror or str(error)).lower()}"
        return str(error) or type(error).__name__

    async def worker(self) -> None:
        connection = (
            self._one_message_connection if self.rules.one_message else self._persistent_connection
        )
        while self.take():
            try:
                await connection()
            except* FAILURES as group:
                self.failed(group.exceptions[0])

    async def _one_message_connection(self) -> None:
        start = time.perf_counter()
        with trio.fail_after(self.timeout):
            stream = await self.endpoint.connect()
            async with stream:
                await self._message(stream)
        self.latencies.append(time.perf_counter() - start)

    async def _persistent_connection(self) -> None:
        # Serves the message already taken, then more while there are any;
        # a failure ends the connection and counts against its message.
        with trio.fail_after(self.timeout):
            stream = await self.endpoint.connect()
        async with stream:
            while True:
                start = time.perf_counter()
                with trio.fail_after(self.timeout):
                    await self._message(stream)
                self.latencies.append(time.perf_counter() - start)
                if not self.take():
                    break
            if isinstance(stream, trio.abc.HalfCloseableStream):
                with trio.fail_after(self.timeout):
                    await stream.send_eof()
                    while await stream.receive_some(RECEIVE_SIZE):
                        pass
            # Over TLS, closing the stream (close_notify) ends the connection.

    async def _send(self, stream: trio.abc.Stream) -> None:
        for piece in self.request:
            await stream.send_all(piece)

    async def _message(self, stream: trio.abc.Stream) -> None:
        """Send the message, and check its reply.

        The reply is complete once it has its size, or, in a mode whose
        server closes after its answer, at the end of the stream.

        Raises:
            EchoMismatchError: If the reply differs from the message.
        """
        check = ReplyCheck(self.rules, [self.payload])

        async def receive() -> None:
            received = 0
            while self.until_close or received < self.reply_size:
                try:
                    data = await stream.receive_some(RECEIVE_SIZE)
                except trio.BrokenResourceError as error:
                    if self.until_close and cut_after_the_reply(error, received, self.reply_size):
                        return  # a TLS close without close_notify, after the whole echo
                    raise
                if not data:
                    if self.until_close:
                        return
                    raise trio.BrokenResourceError("the server closed before the echo was complete")
                received += len(data)
                check(bytes(data))

        if len(self.payload) <= SEQUENTIAL_LIMIT:
            await stream.send_all(self.request[0])
            await receive()
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send, stream)
                await receive()
        if problem := check.problem():
            raise EchoMismatchError(problem)


async def run_load(
    host: str,
    port: int,
    *,
    mode: Mode | str = Mode.COUNT,
    repeat: int = 1000,
    concurrency: int = 10,
    size: int = 100,
    timeout: float = 30.0,  # noqa: ASYNC109  (per message, not for the whole call)
    seed: int = 0,
    unix: str | None = None,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> LoadReport:
    """Send ``repeat`` messages of ``size`` bytes over ``concurrency`` connections.

    Args:
        host: The server's host.
        port: The server's port.
        mode: ``count`` (a connection per message), ``echo`` or ``framed``
            (persistent connections): the server's mode.
        repeat: Messages to send in all.
        concurrency: Connections at once.
        size: Payload bytes per message.
        timeout: Seconds one message (or, in the persistent modes, one
            connection's whole share) may take before it counts as an error.
        seed: Seed of the random payload.
        unix: The path of the server's unix socket, instead of ``host``
            and ``port``.
        tls: The context to speak TLS with (``_tls.client_context``), or
            None for none.
        server_name: The name the server's certificate must carry (by
            default the host, and over a unix socket ``localhost``).

    Returns:
        The figures of the run.
    """
    run = LoadRun(
        Endpoint(host=host, port=port, unix=unix, tls=tls, server_name=server_name),
        rules_of(Mode(mode)),
        random.Random(seed).randbytes(size),
        timeout,
        repeat=repeat,
        concurrency=concurrency,
    )
    await run.run()
    return run.report()
