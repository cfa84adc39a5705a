# One connection, from its first byte to its close.
#
# The handler moves bytes; the EchoProtocol says what they mean. It reads,
# hands each read to the protocol, queues the echo the protocol returns, and
# sends it. Reading goes on while the echo waits for the peer (a client that
# sends a whole message before it reads must complete), so the echo queue is
# bounded: per connection, and by a budget shared with every connection of
# the server. Past either bound the reader waits, and TCP pushes back.
#
# A connection pays only for the structure it uses:
#
# - What has arrived already is served at once, without waiting
#   (`Connection.serve_ready`), when the stream has the `NowaitStream`
#   calls. A count connection whose message is there when it is accepted
#   ends right there, with no task of its own.
# - A connection that has to wait does so in its own task (`serve`), in a
#   nursery whose cancel scope carries its timeouts.
# - The echo goes out inline while the stream takes it; a writer task is
#   started in the nursery only once an echo has to wait for the peer.
#
# The handler takes any trio.abc.Stream, so tests drive it with memory
# streams, which take the task path only, as well as with socket streams.
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import cast

import trio

from ._config import ServerConfig
from ._errors import Reason, RemoteProtocolError
from ._memory import EchoQueue, MemoryBudget
from ._protocol import EchoProtocol, Mode
from ._report import ConnectionReport, Outcome, log_report
from ._socket_stream import NowaitStream

__all__ = ["Connection", "handle_connection"]

logger = logging.getLogger("trio_echo.server")

READ_SIZE_MIN = 4 * 1024
"""A quiet connection reads (and reserves) this much at a time."""

READ_SIZE_MAX = 256 * 1024
"""A streaming connection doubles its reads up to this much."""

IDLE_GRANULARITY = 0.5
"""Seconds by which the idle deadline may land late (see `Connection`)."""


class Connection:
    """One connection, served by `serve_ready` and then, if needed, `serve`.

    The idle deadline moves forward at most once per granularity (half a
    second, or a sixteenth of the idle timeout if that is less), so that
    progress costs a clock read rather than a deadline update per read: an
    idle connection is closed between ``idle_timeout`` and ``idle_timeout``
    plus the granularity after its last byte.

    Args:
        stream: The connection; the handler closes it when it ends.
        config: How to serve it.
        budget: The memory budget shared with the server's other
            connections.
        peer: The peer's address, for the log.
        on_close: Called once the connection is closed and logged, however
            it ended (a server frees its slot there).
    """

    __slots__ = (
        "_config",
        "_expiry",
        "_granularity",
        "_idle_deadline",
        "_lingering",
        "_nowait",
        "_on_close",
        "_protocol",
        "_queue",
        "_read_size",
        "_scope",
        "_start",
        "_stream",
        "_writer_sending",
        "_writer_started",
        "failure",
        "report",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        config: ServerConfig,
        budget: MemoryBudget,
        peer: str,
        *,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        now = trio.current_time()
        self.report = ConnectionReport(peer=peer, mode=config.mode)
        """What happened, as logged when the connection ends."""
        self._stream = stream
        self._nowait = cast("NowaitStream", stream) if _has_nowait_calls(type(stream)) else None
        self._config = config
        self._protocol = EchoProtocol(
            config.mode, max_message_size=config.max_message_size, now=now
        )
        self._queue = EchoQueue(config.connection_buffer, budget)
        self._start = now
        self._granularity = min(IDLE_GRANULARITY, config.idle_timeout / 16)
        self._idle_deadline = now + config.idle_timeout + self._granularity
        self._read_size = READ_SIZE_MIN
        self._scope: trio.CancelScope | None = None
        self._expiry = Outcome.IDLE_TIMEOUT  # what the scope's deadline means
        self._lingering = False
        self._writer_started = False
        self._writer_sending = False
        self._on_close = on_close
        self.failure: BaseException | None = None
        """A bug in the handler that ended the connection, if one did."""

    def serve_ready(self) -> bool:
        """Serve what has arrived already, without waiting.

        One read and its echo, through the stream's `NowaitStream` calls (a
        stream without them is left to `serve`).

        Returns:
            True if the connection has ended: it is closed and logged. If
            False, `serve` carries on from where this stopped.
        """
        nowait, queue, protocol = self._nowait, self._queue, self._protocol
        if nowait is None:
            return False
        try:
            granted = queue.reserve_nowait(self._read_size)
            if not granted:
                return False
            try:
                data = nowait.receive_nowait(granted)
                if data is None:
                    return False
                self._received(data, granted)
            finally:
                queue.end_read()
            self._echo_nowait(nowait)
            if queue or not protocol.reading_done or not self._may_close_now():
                return False
            self.report.end(self._clean_outcome())
        except RemoteProtocolError as error:
            self.report.end(error.reason, error.detail)
        except trio.BrokenResourceError as error:
            self.report.end(Outcome.RESET, _describe(error))
        except Exception as error:  # a bug: logged, with its traceback, below
            self._note_error(error)
        queue.discard()
        nowait.close_nowait()
        self._closed()
        return True

    async def serve(self) -> None:
        """Serve the connection until it ends; then close it and log it.

        Faults of the peer end the connection and are recorded in `report`;
        a bug in the handler is logged with its traceback and kept in
        `failure`. Neither is raised: one connection cannot take its server
        down.

        Raises:
            trio.Cancelled: If the surrounding scope was cancelled; the
                connection is closed and logged (``cancelled``) first.
        """
        queue, stream, protocol = self._queue, self._stream, self._protocol
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self._update_deadline()
                if queue:  # serve_ready left echo the stream did not take
                    self._start_writer(nursery)
                try:
                    while not protocol.reading_done:
                        read_size = self._read_size
                        granted = queue.reserve_nowait(read_size) or await queue.reserve(read_size)
                        try:
                            data = await stream.receive_some(granted)
                            self._received(data, granted)
                        finally:
                            queue.end_read()
                        if queue:
                            self._echo(nursery)
                except RemoteProtocolError as error:
                    self._fail(error.reason, error.detail)
                except trio.BrokenResourceError as error:
                    self._fail(Outcome.RESET, _describe(error))
                finally:
                    queue.finish()
                if not self._writer_started:
                    await self._end()
            if nursery.cancel_scope.cancelled_caught:
                self.report.end(self._expiry, self._expiry_detail())
        except BaseException as error:
            self._note_error(error)
            if not _is_bug(error):
                raise  # a cancellation, or KeyboardInterrupt: not the connection's to absorb
        finally:
            queue.discard()
            if self._nowait is not None:
                self._nowait.close_nowait()
            else:
                # Forceful, so it cannot block; shielded, so that a
                # cancellation (which is why we may be here) cannot cut the
                # cleanup short.
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
            self._closed()

    def _received(self, data: bytes | bytearray, granted: int) -> None:
        """Hand one read to the protocol, and queue its echo."""
        now = trio.current_time()
        report, protocol = self.report, self._protocol
        if data:
            report.bytes_in += len(data)
            self._progress(now)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s: received data with len %d (total received=%d)",
                    report.peer,
                    len(data),
                    report.bytes_in,
                )
        headers = protocol.headers
        for piece in protocol.receive_data(data, now):
            self._queue.put(piece)
        report.messages = protocol.messages
        if protocol.headers != headers:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: extracted content length=%d", report.peer, protocol.length)
            self._update_deadline()
        elif protocol.header_since == now:  # a framed header began: it is now due
            self._update_deadline()
        # A read that filled its reservation suggests a stream: read more.
        self._read_size = min(granted * 2, READ_SIZE_MAX) if len(data) == granted else READ_SIZE_MIN

    def _echo(self, nursery: trio.Nursery) -> None:
        """Send the queued echo: inline while the stream takes it, else through the writer."""
        if self._nowait is not None and not self._writer_sending:
            self._echo_nowait(self._nowait)
            if not self._queue:
                return
        if self._writer_started:
            self._queue.wake_writer()
        else:
            self._start_writer(nursery)

    def _echo_nowait(self, nowait: NowaitStream) -> None:
        """Send the queued echo as far as the stream takes it without waiting."""
        queue = self._queue
        while queue:
            piece = queue.next_piece()
            sent = nowait.send_nowait(piece)
            if sent:
                self._sent(sent)
            if sent < len(piece):
                queue.put_back(memoryview(piece)[sent:])
                return

    def _start_writer(self, nursery: trio.Nursery) -> None:
        self._writer_started = True
        nursery.start_soon(self._write)

    async def _write(self) -> None:
        """The writer task: send the echo as the peer takes it, then end."""
        queue, stream = self._queue, self._stream
        try:
            while (piece := await queue.wait_piece()) is not None:
                self._writer_sending = True
                await stream.send_all(piece)
                self._writer_sending = False
                self._sent(len(piece))
                self._progress(trio.current_time())
        except trio.BrokenResourceError as error:
            self._fail(Outcome.RESET, _describe(error))
            return
        await self._end()

    def _sent(self, count: int) -> None:
        self._queue.sent(count)
        report = self.report
        report.bytes_out += count
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: echoed data with len %d (total sent=%d)", report.peer, count, report.bytes_out
            )

    async def _end(self) -> None:
        """Once every echo byte is sent, end a connection that read to its end.

        Closing a TCP socket with unread bytes in it sends a reset, and a
        reset can destroy echo bytes the peer has not read yet. So a count
        connection closes at once only if the peer sent nothing after its
        message. Otherwise the server sends its end of stream, and discards
        what the peer still sends until the peer closes or the linger time
        ends.
        """
        if self.report.outcome is not None or not self._protocol.reading_done:
            return  # it failed: there is nothing to end well
        self.report.end(self._clean_outcome())
        stream = self._stream
        try:
            if self._may_close_now() or not isinstance(stream, trio.abc.HalfCloseableStream):
                return
            self._lingering = True
            assert self._scope is not None
            self._scope.deadline = min(
                self._scope.deadline, trio.current_time() + self._config.linger_timeout
            )
            await stream.send_eof()
            while await stream.receive_some(READ_SIZE_MAX):
                pass
        except trio.BrokenResourceError:
            pass  # the peer is gone, which is all the linger waits for

    def _may_close_now(self) -> bool:
        """Whether closing now cannot reset the connection: nothing is unread."""
        protocol = self._protocol
        if protocol.mode is not Mode.COUNT or not protocol.messages:
            return True
        if self._nowait is None or protocol.trailing:
            return False
        # None: nothing unread; b"": the peer has closed. Either way,
        # closing now sends no reset.
        return not self._nowait.receive_nowait(READ_SIZE_MAX)

    def _clean_outcome(self) -> Outcome:
        outcome = self._protocol.outcome
        assert outcome is not None
        return outcome

    def _progress(self, now: float) -> None:
        """Note that bytes moved: push the idle deadline on, now and then."""
        if now + self._config.idle_timeout >= self._idle_deadline:
            self._idle_deadline = now + self._config.idle_timeout + self._granularity
            self._update_deadline()

    def _update_deadline(self) -> None:
        """Set the scope's deadline to the earlier timeout, and say which it is."""
        scope = self._scope
        if scope is None or self._lingering:
            return
        header_since = self._protocol.header_since
        if header_since is not None and (
            header_since + self._config.header_timeout <= self._idle_deadline
        ):
            scope.deadline = header_since + self._config.header_timeout
            self._expiry = Outcome.HEADER_TIMEOUT
        else:
            scope.deadline = self._idle_deadline
            self._expiry = Outcome.IDLE_TIMEOUT

    def _expiry_detail(self) -> str:
        if self._expiry is Outcome.HEADER_TIMEOUT:
            return f"no complete length prefix within {self._config.header_timeout:g} s"
        return f"nothing received or sent for {self._config.idle_timeout:g} s"

    def _fail(self, outcome: Outcome | Reason, detail: str) -> None:
        """End the connection now, with ``outcome`` (if it is the first)."""
        self.report.end(outcome, detail)
        if self._scope is not None:
            self._scope.cancel()

    def _note_error(self, error: BaseException) -> None:
        if self.report.outcome is not None:
            return
        if _is_bug(error):
            self.report.end(Outcome.INTERNAL_ERROR, f"{type(error).__name__}: {error}")
            self.failure = error
        else:
            self.report.end(Outcome.CANCELLED)

    def _closed(self) -> None:
        """Log the connection's line, and tell whoever waits for its end."""
        self.report.duration = trio.current_time() - self._start
        log_report(self.report, self.failure)
        if self._on_close is not None:
            self._on_close()


@functools.cache
def _has_nowait_calls(stream_type: type) -> bool:
    return issubclass(stream_type, NowaitStream)


def _describe(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    text = str(cause) if cause is not None else str(error)
    return text or type(error).__name__


def _is_bug(error: BaseException) -> bool:
    """Whether ``error`` is a bug: Exceptions, perhaps among cancellations.

    A cancellation or a KeyboardInterrupt is not: it is the program's, not
    one connection's, to handle.
    """
    if isinstance(error, BaseExceptionGroup):
        _cancelled, rest = error.split(trio.Cancelled)
        return rest is not None and rest.split(Exception)[1] is None
    return isinstance(error, Exception)


async def handle_connection(
    stream: trio.abc.Stream,
    config: ServerConfig | None = None,
    *,
    budget: MemoryBudget | None = None,
    peer: str = "-",
) -> ConnectionReport:
    """Serve one connection until it ends, then close it and log one line.

    Faults of the peer end the connection and are reported in the returned
    `ConnectionReport`, never raised. The stream is closed on return.

    Args:
        stream: The connection.
        config: How to serve it; the defaults if None.
        budget: The memory budget shared with the server's other
            connections; a budget of this connection's own if None.
        peer: The peer's address, for the log.

    Returns:
        What happened, as logged.

    Raises:
        trio.Cancelled: If the surrounding scope was cancelled; the
            connection is closed and logged first.
        Exception: A bug in the handler, after the connection is closed and
            logged with its traceback.
    """
    config = config if config is not None else ServerConfig()
    if budget is None:
        budget = MemoryBudget(config.memory_budget)
    connection = Connection(stream, config, budget, peer)
    if not connection.serve_ready():
        await connection.serve()
    if connection.failure is not None:
        raise connection.failure
    return connection.report
