# One connection, from its first byte to its close.
#
# The handler takes any trio.abc.Stream, so tests drive it with memory streams.
# It reads and echoes at once, in the connection's own nursery: the reader
# (the calling task) takes bytes from the peer, frames them, and queues what
# is to be echoed; the echo goes out inline when the stream can send without
# waiting, and otherwise through a writer task, so that reading goes on while
# the echo waits for the peer. Reading ahead while echo bytes wait is what
# lets a client that sends a whole message before reading complete; the queue
# is bounded per connection and by a budget shared with every other
# connection, and the reader reserves its bytes before each read, so memory
# stays within both bounds: past them the reader waits, and TCP pushes back on
# the peer.
#
# Every way a connection can end is an outcome, logged once when it ends.
# Faults of the peer (bad length, timeouts, a reset) end only that connection.
from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
import trio

from ._budget import MemoryBudget
from ._config import Mode, ServerConfig
from ._errors import RemoteProtocolError
from ._events import NEED_DATA, EndOfMessage, Header, Payload
from ._framer import CountFramer, encode_header

__all__ = ["ConnectionReport", "Outcome", "handle_connection"]

logger = logging.getLogger("trio_echo.server")

READ_SIZE_MIN = 4 * 1024
"""A quiet connection reads (and reserves) this much at a time."""

READ_SIZE_MAX = 64 * 1024
"""A streaming connection doubles its reads up to this much."""

SEND_SIZE = 64 * 1024
"""Small queued echo pieces are joined up to this size for one send."""

IDLE_GRANULARITY = 0.5
"""Seconds by which the idle deadline may land late (see `_Connection`)."""


class Outcome:
    """How a connection ended, as it appears in the log.

    Besides these, a connection that broke the protocol ends with the
    `trio_echo.Reason` of its error (``bad-length``, ``too-many-digits``,
    ``length-too-large``, ``eof-in-header``, ``eof-in-payload``).
    """

    COMPLETE = "complete"
    """Count mode: the payload was echoed in full."""
    NO_MESSAGE = "no-message"
    """Count mode: the peer closed before sending a byte."""
    CLOSED = "closed"
    """Echo and framed modes: the peer closed and every answer was sent."""
    HEADER_TIMEOUT = "header-timeout"
    """A length prefix did not arrive within the header timeout."""
    IDLE_TIMEOUT = "idle-timeout"
    """Nothing was received or sent for the idle timeout."""
    RESET = "reset"
    """The peer went away (a reset, or a broken pipe) mid-transfer."""
    CANCELLED = "cancelled"
    """The server cut the connection short (shutdown after the grace period)."""
    INTERNAL_ERROR = "internal-error"
    """A bug in this server; logged with its traceback."""


_CLEAN = frozenset({Outcome.COMPLETE, Outcome.NO_MESSAGE, Outcome.CLOSED})


@attrs.define(weakref_slot=False)  # one per open connection: no weak references
class ConnectionReport:
    """What happened on one connection: the fields of its log line.

    Attributes:
        peer: The peer's address, as text.
        mode: The protocol mode served.
        outcome: How it ended: an `Outcome` value or a `trio_echo.Reason`.
        detail: What went wrong, in words, when something did.
        bytes_in: Bytes received from the peer.
        bytes_out: Bytes echoed to the peer.
        messages: Messages received in full (count and framed modes).
        duration: Seconds from the start of the handler to its end.
    """

    peer: str
    mode: Mode
    outcome: str = ""
    detail: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    messages: int = 0
    duration: float = 0.0

    @property
    def clean(self) -> bool:
        """Whether the connection ended the way the protocol intends."""
        return self.outcome in _CLEAN

    def log_fields(self) -> dict[str, object]:
        """Return the report as the structured fields of a log record."""
        fields = attrs.asdict(self)
        fields["mode"] = str(self.mode)
        fields["duration"] = round(self.duration, 6)
        if not self.detail:
            del fields["detail"]
        return fields


Chunk = bytes | bytearray | memoryview

_NO_CHUNKS: deque[Chunk] = deque(maxlen=0)  # shared, always empty


class _EchoQueue:
    """Bytes received and not yet echoed, within the connection's bounds.

    The reader reserves room before it reads (`try_reserve`, else
    `reserve`), queues what is to be echoed (`put`) and gives back the rest
    of its reservation (`settle`); whoever sends takes bytes from the front
    (`get`, or `chunks` directly) and reports them sent (`sent`).
    """

    __slots__ = (
        "_budget",
        "_held",
        "_limit",
        "_reader",
        "_reserved",
        "_writer",
        "chunks",
        "finished",
    )

    def __init__(self, limit: int, budget: MemoryBudget) -> None:
        self._limit = limit
        self._budget = budget
        # Made when the first echo is queued: an idle connection does not
        # need the 600-odd bytes of an empty deque.
        self.chunks: deque[Chunk] = _NO_CHUNKS
        self._held = 0  # bytes queued or reserved, charged to the budget
        self._reserved = 0  # of those, reserved and not yet queued
        self.finished = False
        self._writer: trio.lowlevel.ParkingLot | None = None
        self._reader: trio.lowlevel.ParkingLot | None = None

    def try_reserve(self, wanted: int) -> int:
        room = self._limit - self._held
        if room <= 0:
            return 0
        granted = self._budget.try_reserve(wanted if wanted <= room else room)
        self._held += granted
        self._reserved = granted
        return granted

    async def reserve(self, wanted: int) -> int:
        while self._held >= self._limit:
            if self._reader is None:
                self._reader = trio.lowlevel.ParkingLot()
            await self._reader.park()
        granted = await self._budget.reserve_up_to(min(wanted, self._limit - self._held))
        self._held += granted
        self._reserved = granted
        return granted

    def put(self, data: Chunk) -> None:
        if self.chunks is _NO_CHUNKS:
            self.chunks = deque()
        self.chunks.append(data)
        self._reserved -= len(data)

    def settle(self) -> None:
        # Framed mode echoes a header when its space arrives, which may be a
        # read after its digits: then a read queues up to a header's length
        # more than it reserved, and the difference is charged here.
        reserved = self._reserved
        if reserved > 0:
            self._budget.release(reserved)
        elif reserved < 0:
            self._budget.take(-reserved)
        self._held -= reserved
        self._reserved = 0

    def wake_writer(self) -> None:
        if self._writer:
            self._writer.unpark()

    def finish(self) -> None:
        """No more bytes will be queued; `get` returns None once empty."""
        self.finished = True
        self.wake_writer()

    def take(self) -> Chunk:
        """Remove and return the front of the queue, to send as one piece.

        That is one chunk, or small chunks joined up to SEND_SIZE.
        """
        chunks = self.chunks
        first = chunks.popleft()
        if not chunks or len(first) >= SEND_SIZE:
            return first
        pieces, size = [first], len(first)
        while chunks and size + len(chunks[0]) <= SEND_SIZE:
            size += len(chunks[0])
            pieces.append(chunks.popleft())
        return b"".join(pieces)

    async def get(self) -> Chunk | None:
        while not self.chunks:
            if self.finished:
                return None
            if self._writer is None:
                self._writer = trio.lowlevel.ParkingLot()
            await self._writer.park()
        return self.take()

    def sent(self, count: int) -> None:
        self._held -= count
        self._budget.release(count)
        if self._reader:
            self._reader.unpark()

    def discard(self) -> None:
        """Drop everything, and give the budget back."""
        self.chunks.clear()
        self._reserved = 0
        if self._held:
            self._budget.release(self._held)
            self._held = 0


class _Connection:
    """The state of one connection while `handle_connection` serves it.

    The reader runs in the handler's own task. The echo is sent inline by
    the reader when the stream can send without waiting (`send_nowait`, which
    trio_echo's own socket stream has); a writer task is started in the
    connection's nursery only once an echo has to wait for the peer, so a
    connection whose echo never waits costs one task, not two.

    One cancel scope carries both timeouts: its deadline is the earlier of
    the header deadline and the idle deadline. The idle deadline moves
    forward at most once per `_granularity` seconds (and lands that much
    later), so progress costs a clock read, not a deadline update per chunk:
    an idle connection is closed between ``idle_timeout`` and
    ``idle_timeout + _granularity`` seconds after its last byte.

    A connection with an ``on_end`` callback is a server's: it absorbs
    errors other than a cancellation (they are logged), and calls
    ``on_end`` once it is closed and logged.
    """

    __slots__ = (
        "_awaiting_header",
        "_config",
        "_debug",
        "_failure",
        "_framer",
        "_granularity",
        "_header_deadline",
        "_idle_deadline",
        "_lingering",
        "_nursery",
        "_on_end",
        "_queue",
        "_report",
        "_stream",
        "_writer_busy",
        "_writer_started",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        config: ServerConfig,
        budget: MemoryBudget,
        report: ConnectionReport,
        *,
        on_end: Callable[[], object] | None = None,
    ) -> None:
        self._stream = stream
        self._config = config
        self._report = report
        self._queue = _EchoQueue(config.connection_buffer, budget)
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._nursery: trio.Nursery | None = None
        self._awaiting_header = True
        self._writer_started = False
        self._writer_busy = False
        self._granularity = min(IDLE_GRANULARITY, config.idle_timeout / 16)
        self._idle_deadline = math.inf
        self._header_deadline = math.inf
        self._lingering = False
        self._failure: BaseException | None = None
        self._on_end = on_end
        self._framer: CountFramer | None = None
        if config.mode is not Mode.ECHO:
            self._framer = CountFramer(max_message_size=config.max_message_size)

    def _fail(self, outcome: str, detail: str = "") -> None:
        """End the connection now, with ``outcome`` (the first one counts)."""
        if not self._report.outcome:
            self._report.outcome = outcome
            self._report.detail = detail
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _progress(self) -> None:
        now = trio.current_time()
        # The deadline was set _granularity or more ago: move it.
        if now + self._config.idle_timeout >= self._idle_deadline:
            self._idle_deadline = now + self._config.idle_timeout + self._granularity
            self._update_deadline()

    def _update_deadline(self) -> None:
        """Move the connection's deadline to the earlier of its two."""
        deadline = min(self._idle_deadline, self._header_deadline)
        if self._nursery is not None and self._nursery.cancel_scope.deadline != deadline:
            self._nursery.cancel_scope.deadline = deadline

    async def serve(self) -> ConnectionReport:
        """Serve the connection to its end; close it, log it, report it.

        The reader runs here, in the handler's own frame: an idle connection
        waits in as few frames as it can.
        """
        report, queue, stream, framer = self._report, self._queue, self._stream, self._framer
        start = self._begin()
        try:
            # The nursery's own cancel scope carries the timeouts (one scope
            # per connection, not two): a cancellation with no outcome
            # recorded by _fail is a deadline.
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._update_deadline()
                read_size = READ_SIZE_MIN
                try:
                    while True:
                        granted = queue.try_reserve(read_size) or await queue.reserve(read_size)
                        try:
                            data = await stream.receive_some(granted)
                            if data:
                                self._received(data)
                            if framer is None:
                                if not data:
                                    break
                                queue.put(data)
                                done = False
                            else:
                                done = self._frame(framer, data)
                        finally:
                            queue.settle()
                        if queue.chunks:
                            self._echo()
                        if done:
                            break
                        if len(data) == granted:
                            read_size = min(read_size * 2, READ_SIZE_MAX)
                        else:
                            read_size = READ_SIZE_MIN
                except RemoteProtocolError as error:
                    self._fail(error.reason, error.detail)
                except trio.BrokenResourceError as error:
                    self._fail(Outcome.RESET, _describe(error))
                finally:
                    queue.finish()
                if not self._writer_started:
                    await self._end()
            self._settle_outcome(nursery.cancel_scope)
        except BaseException as error:
            self._note_error(error)
            if self._on_end is not None and not _is_cancellation(error):
                # Logged below, with its traceback; the caller (a server)
                # must not go down with one connection.
                return report
            raise
        finally:
            queue.discard()
            if not self._close_nowait():
                # Forceful, so it cannot block; shielded, so that a
                # cancellation (which is why we may be here) cannot cut the
                # cleanup short.
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
            report.duration = trio.current_time() - start
            _log_report(report, self._failure)
            if self._on_end is not None:
                self._on_end()
        return report

    def _close_nowait(self) -> bool:
        """Close the stream if it can be closed without waiting."""
        close_nowait = getattr(self._stream, "close_nowait", None)
        if close_nowait is None:
            return False
        close_nowait()
        return True

    def _begin(self) -> float:
        """Set the first deadlines; return the start time."""
        config = self._config
        now = trio.current_time()
        self._idle_deadline = now + config.idle_timeout + self._granularity
        if config.mode is Mode.COUNT:
            self._header_deadline = now + config.header_timeout
        return now

    def _received(self, data: Chunk) -> None:
        self._progress()
        report = self._report
        report.bytes_in += len(data)
        if self._debug:
            logger.debug(
                "%s: received data with len %d (total received=%d)",
                report.peer,
                len(data),
                report.bytes_in,
            )

    def _settle_outcome(self, scope: trio.CancelScope) -> None:
        """Name how a connection that raised nothing ended."""
        config, report = self._config, self._report
        if report.outcome:
            return
        if not scope.cancelled_caught or self._lingering:
            report.outcome = self._clean_outcome()
        elif self._header_deadline <= self._idle_deadline:
            self._fail(
                Outcome.HEADER_TIMEOUT,
                f"no complete length prefix within {config.header_timeout:g} s",
            )
        else:
            self._fail(
                Outcome.IDLE_TIMEOUT,
                f"nothing received or sent for {config.idle_timeout:g} s",
            )

    def _note_error(self, error: BaseException) -> None:
        report = self._report
        if report.outcome:
            return
        if _is_cancellation(error):
            report.outcome = Outcome.CANCELLED
        else:
            report.outcome = Outcome.INTERNAL_ERROR
            report.detail = f"{type(error).__name__}: {error}"
            self._failure = error

    def _clean_outcome(self) -> str:
        if self._config.mode is not Mode.COUNT:
            return Outcome.CLOSED
        return Outcome.COMPLETE if self._report.messages else Outcome.NO_MESSAGE

    def _frame(self, framer: CountFramer, data: Chunk) -> bool:
        """Frame ``data`` and queue its echo; return whether reading is done."""
        framer.receive_data(data)
        mode, queue, report = self._config.mode, self._queue, self._report
        header_deadline = self._header_deadline
        while True:
            event = framer.next_event()
            if event is NEED_DATA:
                break
            if type(event) is Payload:
                queue.put(event.data)
            elif type(event) is Header:
                self._awaiting_header = False
                self._header_deadline = math.inf  # the scope follows below
                if self._debug:
                    logger.debug("%s: extracted content length=%d", report.peer, event.length)
                if mode is Mode.FRAMED:
                    queue.put(encode_header(event.length))
            elif type(event) is EndOfMessage:
                self._awaiting_header = True
                report.messages += 1
                if mode is Mode.COUNT:
                    return True
            else:  # EndOfStream
                return True
        if self._awaiting_header and framer.in_message and self._header_deadline == math.inf:
            # A header has begun (in framed mode, the next message's): it has
            # the header timeout to arrive in full.
            self._header_deadline = trio.current_time() + self._config.header_timeout
        if self._header_deadline != header_deadline:
            self._update_deadline()
        return False

    def _echo(self) -> None:
        """Send what is queued, as far as the stream can without waiting.

        What is left goes to the writer task, started the first time it is
        needed.
        """
        queue = self._queue
        # Looked up per echo rather than kept: a bound method on every idle
        # connection would cost more than the lookup.
        send_nowait = getattr(self._stream, "send_nowait", None)
        if send_nowait is not None and not self._writer_busy:
            chunks, report = queue.chunks, self._report
            while chunks:
                data = queue.take()
                sent = send_nowait(data)
                if sent:  # progress: the reader, which calls this, just noted it
                    queue.sent(sent)
                    report.bytes_out += sent
                    if self._debug:
                        self._log_echoed(sent)
                if sent < len(data):
                    chunks.appendleft(memoryview(data)[sent:])
                    break
            if not chunks:
                return
        if not self._writer_started:
            assert self._nursery is not None
            self._writer_started = True
            self._nursery.start_soon(self._write)
        queue.wake_writer()

    def _log_echoed(self, count: int) -> None:
        logger.debug(
            "%s: echoed data with len %d (total sent=%d)",
            self._report.peer,
            count,
            self._report.bytes_out,
        )

    async def _write(self) -> None:
        queue, report, stream = self._queue, self._report, self._stream
        try:
            while (chunk := await queue.get()) is not None:
                self._writer_busy = True
                await stream.send_all(chunk)
                self._writer_busy = False
                queue.sent(len(chunk))
                report.bytes_out += len(chunk)
                self._progress()
                if self._debug:
                    self._log_echoed(len(chunk))
        except trio.BrokenResourceError as error:
            self._fail(Outcome.RESET, _describe(error))
            return
        await self._end()

    async def _end(self) -> None:
        """Once every echo byte is sent: end a count connection well.

        Closing a TCP socket with unread bytes in it sends a reset, and a
        reset can destroy echo bytes the peer has not read yet. When the
        stream can tell without waiting that nothing more has arrived (and
        the framer holds nothing after the message), closing at once is
        safe. Otherwise the server sends its end of stream, and discards
        what the peer still sends until the peer closes or the linger time
        ends.
        """
        report = self._report
        if self._config.mode is not Mode.COUNT or not report.messages or report.outcome:
            return
        stream = self._stream
        receive_nowait = getattr(stream, "receive_nowait", None)
        framer = self._framer
        try:
            # None: nothing unread; b"": the peer has closed. Either way,
            # closing now sends no reset.
            if (
                receive_nowait is not None
                and framer is not None
                and not framer.buffered
                and not receive_nowait(READ_SIZE_MAX)
            ):
                return
            if not isinstance(stream, trio.abc.HalfCloseableStream):
                return
            self._lingering = True
            assert self._nursery is not None
            scope = self._nursery.cancel_scope
            scope.deadline = min(scope.deadline, trio.current_time() + self._config.linger_timeout)
            await stream.send_eof()
            while await stream.receive_some(READ_SIZE_MAX):
                pass
        except trio.BrokenResourceError:
            pass  # the peer is gone, which is all the linger waits for


def _describe(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    text = str(cause) if cause is not None else str(error)
    return text or type(error).__name__


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, trio.Cancelled):
        return True
    if isinstance(error, BaseExceptionGroup):
        _cancelled, rest = error.split(trio.Cancelled)
        return rest is None
    return False


def handle_connection(
    stream: trio.abc.Stream,
    config: ServerConfig | None = None,
    *,
    budget: MemoryBudget | None = None,
    peer: str = "-",
) -> Coroutine[Any, Any, ConnectionReport]:
    """Serve one connection until it ends, then close it and log one line.

    Use it as ``report = await handle_connection(stream, config)`` (or hand it
    to ``nursery.start_soon``). It is a plain function that returns the
    coroutine doing the work, which saves the memory of one coroutine frame
    on every open connection.

    Faults of the peer end the connection and are reported in the returned
    `ConnectionReport`, never raised. The stream is closed on return.

    Args:
        stream: The connection.
        config: How to serve it; the defaults if None.
        budget: The memory budget shared with the server's other
            connections; a budget of this connection's own if None.
        peer: The peer's address, for the log.

    Returns:
        A coroutine whose result is what happened, as logged.

    Raises:
        trio.Cancelled: (From the coroutine) if the surrounding scope was
            cancelled; the connection is closed and logged first.
    """
    config = config if config is not None else ServerConfig()
    if budget is None:
        budget = MemoryBudget(config.memory_budget)
    report = ConnectionReport(peer=peer, mode=config.mode)
    return _Connection(stream, config, budget, report).serve()


def serve_connection(
    stream: trio.abc.Stream,
    config: ServerConfig,
    budget: MemoryBudget,
    peer: str,
    on_end: Callable[[], object],
) -> Coroutine[Any, Any, ConnectionReport]:
    """`handle_connection` for a server's connection task.

    The coroutine raises nothing but a cancellation: a bug in the handler is
    logged (as ``internal-error``, with its traceback) and ends only its
    connection. It calls ``on_end`` once the connection is closed and logged,
    however it ended. Taking the place of a wrapper coroutine around
    `handle_connection`, it saves a frame on every open connection.
    """
    report = ConnectionReport(peer=peer, mode=config.mode)
    connection = _Connection(stream, config, budget, report, on_end=on_end)
    return connection.serve()


def _log_report(report: ConnectionReport, failure: BaseException | None) -> None:
    if report.clean:
        level = logging.INFO
    elif report.outcome == Outcome.INTERNAL_ERROR:
        level = logging.ERROR
    else:
        level = logging.WARNING
    if not logger.isEnabledFor(level):
        return
    text = (
        f"connection from {report.peer} ended: {report.outcome}"
        f" (mode={report.mode} in={report.bytes_in} out={report.bytes_out}"
        f" messages={report.messages} duration={report.duration:.3f}s)"
    )
    if report.detail:
        text += f": {report.detail}"
    logger.log(level, text, exc_info=failure, extra={"fields": report.log_fields()})
