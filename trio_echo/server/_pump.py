# One connection, from its first byte to its close: a pump.
#
# The EchoProtocol decides; this module moves bytes. It asks the protocol
# what to do next, does it, and reports back what happened, with the time.
# It owns what the protocol cannot: the stream, the cancel scope (whose
# deadline it keeps at the protocol's), the connection's charge on the
# server's memory budget, and the log line.
#
# A connection pays only for the structure it uses. What has arrived already
# is served in the accepting task (`serve_ready`: one read and one step of
# the protocol), when the stream has the `NowaitStream` calls; a count
# connection whose message is there ends right there. A connection that has
# to wait does so in its own task (`serve`), in a nursery whose scope
# carries the deadline. Reads go on while the stream has bytes, until the
# protocol says YIELD; answers go out inline while the stream takes them; a
# writer task is started only once one has to wait for the peer. Both paths
# end in `_finish`, the one place that turns an exception into an ending.
#
# What differs between kinds of stream (a socket with the nowait calls, any
# trio stream, TLS) is its transport's to answer (`_transport.py`), chosen
# once per connection: this module asks no stream what it is.
from __future__ import annotations

from collections.abc import Callable

import trio

from ..protocol._protocol import (
    BUFFER_OVERHEAD,
    CHECK_UNREAD,
    CLOSE,
    HANDSHAKE,
    PAUSED,
    YIELD,
    Action,
    Chunk,
    Deadline,
    EchoProtocol,
    Outcome,
    Receive,
)
from ._budget import Account, MemoryBudget
from ._config import ServerConfig
from ._report import ConnectionReport, debugging, describe_failure, log_ending, split_failure
from ._transport import TracingTransport, Transport, transport_for

__all__ = ["Connection", "HandlerError", "handle_connection"]


MIN_GRANT = 1024
"""The fewest bytes worth a read when the memory budget is short."""


class HandlerError(Exception):
    """A bug in trio_echo ended a connection; the bug is the ``__cause__``."""


class Connection:
    """One connection, served by `serve_ready` and then, if needed, `serve`.

    Args:
        stream: The connection; it is closed when the connection ends.
        config: How to serve it.
        budget: The memory budget shared with the server's other connections.
        peer: The peer's address, for the log.
        on_close: Called once the connection is closed and logged.
    """

    __slots__ = (
        "_account",
        "_deadline",
        "_duration",
        "_on_close",
        "_peer",
        "_protocol",
        "_reader_lot",
        "_scope",
        "_start",
        "_stream",
        "_transport",
        "_writer_lot",
        "_writer_sending",
        "failure",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        config: ServerConfig,
        budget: MemoryBudget,
        peer: str,
        *,
        on_close: Callable[[Connection], object] | None = None,
    ) -> None:
        self._start = now = trio.current_time()
        self._stream = stream
        transport = transport_for(stream)
        self._protocol = protocol = EchoProtocol(
            config.mode,
            limits=config.limits,
            now=now,
            can_half_close=transport.can_half_close,
            handshake=transport.handshake,
            max_read=transport.max_read,
        )
        if debugging():  # the original's per-chunk lines
            transport = TracingTransport(transport, protocol, peer)
        self._transport: Transport[trio.abc.Stream] = transport
        self._account = Account(budget, overhead=BUFFER_OVERHEAD, minimum=MIN_GRANT)
        self._peer = peer
        self._scope: trio.CancelScope | None = None
        self._deadline: Deadline | None = None  # the protocol's, as set on the scope
        self._writer_lot: trio.lowlevel.ParkingLot | None = None  # made with the writer
        self._reader_lot: trio.lowlevel.ParkingLot | None = None
        self._writer_sending = False
        self._on_close = on_close
        self._duration: float | None = None  # set when it has ended
        self.failure: BaseException | None = None
        """A bug that ended the connection, if one did."""

    @property
    def report(self) -> ConnectionReport | None:
        """What happened, as logged, once the connection has ended."""
        if self._duration is None:
            return None
        return ConnectionReport.of(self._protocol, self._peer, self._duration)

    @property
    def messages(self) -> int:
        """Messages received in full so far."""
        return self._protocol.messages

    def serve_ready(self) -> bool:
        """Serve what has arrived already, without waiting.

        Returns:
            True if the connection has ended (it is closed and logged); if
            False, `serve` carries on from where this stopped.
        """
        error: Exception | None = None
        try:
            if self._advance(None) is not CLOSE:
                return False
        except Exception as caught:  # the peer broke the connection, or a bug
            error = caught
        self._transport.close_nowait(self._stream)
        self._finish(error)
        return True

    async def serve(self) -> None:
        """Serve the connection until it ends; then close it and log it.

        The peer's faults and bugs in the handler end the connection, and
        are logged (a bug with its traceback, and kept in `failure`); neither
        is raised: one connection cannot take its server down.

        Raises:
            trio.Cancelled: If the surrounding scope was cancelled; the
                connection is closed and logged (``cancelled``) first.
        """
        protocol, account, stream = self._protocol, self._account, self._stream
        transport = self._transport
        drained, wait_receivable = transport.drained, transport.wait_receivable
        receive_nowait = transport.receive_nowait
        error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                # Do what the protocol says until it says CLOSE. (Inline, not
                # in a method of its own: a frame less for every waiting
                # connection.)
                received: bytes | bytearray | None = None  # what the last read brought
                while (action := self._advance(nursery, received)) is not CLOSE:
                    received = None
                    if type(action) is Receive:
                        # While bytes are there, read on: the protocol says
                        # YIELD when a step's work is done. (A read that
                        # waits for readiness holds no reservation.)
                        if drained(stream):
                            await wait_receivable(stream)
                        if not (size := account.reserve_nowait(action.max_bytes)):
                            protocol.budget_wait(trio.current_time())
                            self._sync_deadline()
                            size = await account.reserve(action.max_bytes)
                            protocol.budget_granted(trio.current_time())
                            self._sync_deadline()
                        if (received := receive_nowait(stream, size)) is None and (
                            received := await transport.receive(stream, size)
                        ) is None:
                            account.settle(protocol.held)  # not there after all
                    elif action is YIELD:
                        await trio.lowlevel.checkpoint()
                    elif action is PAUSED:
                        if self._reader_lot is None:
                            self._reader_lot = trio.lowlevel.ParkingLot()
                        await self._reader_lot.park()  # until the writer has sent some
                    elif action is HANDSHAKE:
                        await transport.do_handshake(stream)
                        protocol.handshake_done(trio.current_time())
                    else:  # SEND_EOF: asked of a half-closeable stream only
                        await transport.send_eof(stream)
                        protocol.eof_sent(trio.current_time())
                nursery.cancel_scope.cancel()  # the writer, if one waits
            if nursery.cancel_scope.cancelled_caught:
                protocol.expired(trio.current_time())  # unless it had ended already
            # The protocol closes (it ended, or gave up on the peer): say so
            # gracefully. A broken stream or a cancellation is closed
            # forcefully below.
            await transport.aclose(stream, protocol.limits.linger_timeout)
        except BaseException as caught:
            error = caught
        await transport.aclose_forcefully(stream)  # a no-op once closed
        if (uncaught := self._finish(error)) is not None:
            raise uncaught

    def _advance(
        self, nursery: trio.Nursery | None, received: bytes | bytearray | None = None
    ) -> Action:
        """Do what the protocol asks while that needs no wait; return what does.

        First the protocol takes ``received``, the bytes of the read just
        made, if any. In the accepting task (no nursery) that includes one
        read, if bytes are there.
        """
        protocol = self._protocol
        now = trio.current_time()  # nothing here waits: one reading serves
        if received is not None:
            protocol.receive_data(received, now)
        read_once = nursery is None
        while True:
            action = protocol.next_action(now)
            data = protocol.data_to_send()
            if data is not None and self._send_ready(data, nursery, now) and action is PAUSED:
                continue
            if action is CHECK_UNREAD:
                protocol.report_unread(self._transport.would_reset(self._stream))
                continue
            if read_once and type(action) is Receive:
                read_once = False
                size = self._account.reserve_nowait(action.max_bytes)
                if (
                    size
                    and (received := self._transport.receive_nowait(self._stream, size)) is not None
                ):
                    protocol.receive_data(received, now)
                    continue
            self._account.settle(protocol.held)  # what framing and sending left
            self._sync_deadline()
            return action

    def _send_ready(self, data: Chunk, nursery: trio.Nursery | None, now: float) -> bool:
        """Send ``data``, and what follows, while the stream takes them.

        The rest is left to the writer; the caller settles the budget.

        Returns:
            Whether any bytes were sent.
        """
        protocol = self._protocol
        sent = False
        if not self._writer_sending:
            send_nowait, stream = self._transport.send_nowait, self._stream
            following: Chunk | None = data
            while following is not None:
                if count := send_nowait(stream, following):
                    protocol.sent(count, now)
                    sent = True
                if count < len(following):
                    break
                following = protocol.data_to_send()
            else:
                return sent
        if nursery is not None:  # in the accepting task, the rest waits for the task
            if self._writer_lot is None:
                self._writer_lot = trio.lowlevel.ParkingLot()
                nursery.start_soon(self._write)
            self._writer_lot.unpark()
        return sent

    async def _write(self) -> None:
        """The writer task: send the answers as the peer takes them."""
        protocol, transport, stream = self._protocol, self._transport, self._stream
        lot = self._writer_lot
        assert lot is not None
        while True:
            if (data := protocol.data_to_send()) is None:
                await lot.park()
                continue
            self._writer_sending = True
            await transport.send_all(stream, data)
            self._writer_sending = False
            protocol.sent(len(data), trio.current_time())
            self._account.hold(protocol.held)
            self._sync_deadline()
            if self._reader_lot is not None:
                self._reader_lot.unpark()

    def _sync_deadline(self) -> None:
        if self._scope is None:
            return  # served in the accepting task: nothing waits, no deadline
        deadline = self._protocol.deadline
        if deadline is not self._deadline:
            self._deadline = deadline
            self._scope.deadline = deadline.when

    def _finish(self, error: BaseException | None) -> BaseException | None:
        """The one ending, once the stream is closed: what ended it, the log line.

        Returns:
            What of ``error`` is not the connection's to absorb (a
            cancellation, an interrupt), to be raised on.
        """
        protocol = self._protocol
        bugs = uncaught = None
        if error is not None:
            bugs, uncaught = split_failure(error)
            if bugs is not None:
                self.failure = bugs
                protocol.abort(Outcome.INTERNAL_ERROR, f"{type(bugs).__name__}: {bugs}")
            elif uncaught is not None:
                protocol.abort(Outcome.CANCELLED)
            else:
                protocol.abort(Outcome.RESET, describe_failure(error))
        self._account.settle(0)
        self._duration = trio.current_time() - self._start
        log_ending(protocol, self._peer, self._duration, self.failure)
        if self._on_close is not None:
            self._on_close(self)
        return uncaught


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
        budget: The memory budget shared with other connections; one of
            its own if None.
        peer: The peer's address, for the log.

    Returns:
        What happened, as logged.

    Raises:
        HandlerError: A bug in the handler, after the connection is closed
            and logged with its traceback.
        trio.Cancelled: If the surrounding scope was cancelled; the
            connection is closed and logged first.
    """
    config = config if config is not None else ServerConfig()
    connection = Connection(stream, config, budget or MemoryBudget(config.memory_budget), peer)
    ended = connection.serve_ready()
    # What serve_ready did was a step of work: let others run before the
    # next (not a cancel point: only `serve` can close what is left open).
    await trio.lowlevel.cancel_shielded_checkpoint()
    if not ended:
        await connection.serve()
    if connection.failure is not None:
        # A bug may end a connection before its stream could be closed
        # without waiting (`Transport.close_nowait`): close it now.
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise HandlerError(f"a bug ended the connection from {peer}") from connection.failure
    assert connection.report is not None
    return connection.report
