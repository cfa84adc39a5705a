# One connection, from its first byte to its close: a pump.
#
# The EchoProtocol decides; the pump moves bytes, through the connection's
# transport (chosen once, from the stream's type: it never asks what kind of
# stream it has). It keeps the cancel scope's deadline at the protocol's, the
# charge on the memory budget, and the log line.
#
# A connection pays only for the structure it uses. What has arrived already
# is served in the accepting task (`serve_ready`): a count message that is
# there ends right there. A connection that has to wait does so in its own
# task (`serve`). Reads go on while the transport has bytes, until the
# protocol says YIELD; answers go out inline while it takes them, and a
# writer (`_writer.py`) starts once one has to wait. Both end in `_finish`.
from __future__ import annotations

from collections.abc import Callable

import trio

from ..protocol import (
    CHECK_UNREAD,
    CLOSE,
    HANDSHAKE,
    PAUSED,
    YIELD,
    Action,
    Chunk,
    Deadline,
    EchoProtocol,
    Receive,
)
from ._budget import ONE_READ, Account, MemoryBudget
from ._config import ServerConfig
from ._report import ConnectionReport, abort_for, debugging, log_ending
from ._transport import TracingTransport, Transport, transport_for
from ._writer import Writer

__all__ = ["Connection"]


class Connection:
    """One connection, served by `serve_ready` and then, if needed, `serve`.

    Args:
        stream: The connection; closed when it ends.
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
        "_scope",
        "_start",
        "_stream",
        "_transport",
        "_writer",
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
        self._account = Account(budget)
        self._peer = peer
        self._scope: trio.CancelScope | None = None
        self._deadline: Deadline | None = None  # the protocol's, as set on the scope
        self._writer: Writer | None = None  # started once an answer has to wait
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

        Returns whether the connection has ended (closed and logged); if not,
        `serve` carries on from where this stopped.
        """
        error: Exception | None = None
        try:
            if self._advance(None) is not CLOSE:
                return False
        except Exception as caught:  # the peer broke the connection, or a bug
            error = caught
        self._transport.close_nowait(self._stream)
        self._finish(error)
        error = None  # its traceback holds this frame: no cycle through it
        return True

    async def serve(self) -> None:
        """Serve the connection until it ends; then close it and log it.

        The peer's faults and bugs end the connection and are logged (a bug
        with its traceback, kept in `failure`), never raised.

        Raises:
            trio.Cancelled: If the surrounding scope was cancelled; the
                connection is closed and logged (``cancelled``) first.
        """
        protocol, account, stream = self._protocol, self._account, self._stream
        transport = self._transport
        error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                # Do what the protocol says until it says CLOSE (inline: a
                # frame less for every waiting connection).
                received: bytes | bytearray | None = None  # the last read's bytes
                while (action := self._advance(nursery, received)) is not CLOSE:
                    received = None
                    if type(action) is Receive:
                        # While bytes are there, read on: the protocol says
                        # YIELD when a step's work is done. (A read that
                        # waits for readiness holds no reservation.)
                        if transport.drained(stream):
                            await transport.wait_receivable(stream)
                        if action.echo and await self._echo(action.max_bytes):
                            continue
                        # A message whose length came is admitted whole first
                        # (`EchoProtocol.need`), then the read has room in it.
                        in_room = (
                            protocol.headers <= protocol.messages
                            or protocol.headers == account.admitted
                            or account.admit_nowait(protocol.need, protocol.headers)
                        )
                        if not (in_room and (size := account.reserve_nowait(action.max_bytes))):
                            size = await self._wait_for_room(action.max_bytes)
                        if size and (received := transport.receive_nowait(stream, size)) is None:
                            # A read that waits for its peer holds no room (a
                            # stream cannot say whether bytes are there without
                            # reading): what comes is charged as it comes.
                            account.settle(protocol.held)
                            received = await transport.receive(stream, size)
                    elif action is YIELD:
                        await trio.lowlevel.checkpoint()
                    elif action is PAUSED:  # what is held waits for the writer
                        assert self._writer is not None  # (what it waits for, see `_advance`)
                        await self._writer.wait_sent()
                    elif action is HANDSHAKE:
                        await transport.do_handshake(stream)
                        protocol.handshake_done(trio.current_time())
                    else:  # SEND_EOF: asked of a half-closeable stream only
                        await transport.send_eof(stream)
                        protocol.eof_sent(trio.current_time())
                nursery.cancel_scope.cancel()  # the writer, if one waits
            if nursery.cancel_scope.cancelled_caught:
                protocol.expired(trio.current_time())  # unless it had ended already
            # The protocol closes (it ended, or gave up on the peer): gracefully.
            await transport.aclose(stream, protocol.limits.linger_timeout)
        except BaseException as caught:
            error = caught
        await transport.aclose_forcefully(stream)  # a no-op once closed
        uncaught = self._finish(error)
        error = None  # its traceback holds this frame: no cycle through it
        if uncaught is not None:
            raise uncaught

    def _advance(
        self, nursery: trio.Nursery | None, received: bytes | bytearray | None = None
    ) -> Action:
        """Do what needs no wait (``received`` first; inline, one read more); return what does."""
        protocol, account = self._protocol, self._account
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
                if size := account.reserve_nowait(action.max_bytes):
                    received = self._transport.receive_nowait(self._stream, size)
                    if received is not None:
                        protocol.receive_data(received, now)
                        continue
            if account.admitted and protocol.messages >= account.admitted:
                account.message_in()  # it keeps no room for the message any more
            account.settle(protocol.held)  # what framing and sending left
            self._sync_deadline()
            return action

    async def _echo(self, size: int) -> bool:
        """Send reads straight back while the protocol lets them go (`Receive.echo`).

        While every byte goes back at once, nothing outlives a read: it
        reserves nothing (there must be room for it, should its send be
        short), and there is nothing to settle or to move. Returns whether
        any was read; the caller then asks the protocol again.
        """
        protocol, account, stream = self._protocol, self._account, self._stream
        transport = self._transport
        drained, wait_receivable = transport.drained, transport.wait_receivable
        receive_nowait, send_nowait = transport.receive_nowait, transport.send_nowait
        current_time = trio.lowlevel.current_clock().current_time  # trio.current_time's
        read = False
        while account.room_now(size) and (data := receive_nowait(stream, size)) is not None:
            read = True
            now = current_time()
            try:
                sent = send_nowait(stream, data) if data else 0
            except BaseException:
                protocol.receive_data(data, now)  # counted in its line, as a read is
                raise
            size = protocol.echoed(data, sent, now)
            data = None  # nothing of the read is held while the next waits
            if not size:
                break
            if drained(stream):
                await wait_receivable(stream)
        return read

    async def _wait_for_room(self, max_bytes: int) -> int:
        """There is no room for a read now: wait, holding none; return the read's size.

        The protocol says what for (`EchoProtocol.budget_short`): for the
        peer to take the answers that wait (returning 0, to look again), or,
        holding nothing, for the budget in turn, once the peer has sent
        something (where the transport can tell): room for the whole
        message under way if it is large, else for the read.
        """
        protocol, account = self._protocol, self._account
        if protocol.data_to_send() is None:
            await self._transport.wait_readable(self._stream)  # under the peer's own timers
        if not protocol.budget_short(trio.current_time()):
            self._sync_deadline()
            assert self._writer is not None  # what was not sent inline, it sends
            await self._writer.wait_sent()
            return 0
        self._sync_deadline()
        if (need := protocol.need) > ONE_READ and protocol.headers != account.admitted:
            await account.admit(need, protocol.headers)
            size = account.reserve_nowait(max_bytes)
        else:
            size = await account.reserve(max_bytes)
        protocol.budget_granted(trio.current_time())
        self._sync_deadline()
        return size

    def _send_ready(self, data: Chunk, nursery: trio.Nursery | None, now: float) -> bool:
        """Send while the transport takes it, the rest by the writer; return whether any went."""
        protocol, writer = self._protocol, self._writer
        sent = False
        if writer is None or not writer.sending:
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
        if writer is not None:
            writer.wake()
        elif nursery is not None:
            self._writer = writer = Writer(
                protocol, self._account, on_sent=self._sync_deadline, nursery=nursery
            )
            nursery.start_soon(writer.run, self._transport, self._stream)
        return sent

    def _sync_deadline(self) -> None:
        if self._scope is None:
            return  # served in the accepting task: nothing waits, no deadline
        deadline = self._protocol.deadline
        if deadline is not self._deadline:
            self._deadline = deadline
            self._scope.deadline = deadline.when

    def _finish(self, error: BaseException | None) -> BaseException | None:
        """The one ending, once the stream is closed; returns what to raise on."""
        protocol = self._protocol
        uncaught = None
        if error is not None:
            self.failure, uncaught = abort_for(protocol, error)
        self._account.close()
        self._duration = trio.current_time() - self._start
        log_ending(protocol, self._peer, self._duration, self.failure)
        if self._on_close is not None:
            self._on_close(self)
        return uncaught
