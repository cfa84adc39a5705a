# One connection of an echo server, as a state machine without I/O.
#
#   count   read one `length SP payload` message, echo its payload as it
#           arrives, and stop reading at its end (the original's EchoCount);
#   echo    echo every byte until the peer ends the stream (the original's
#           Echo); no framing at all;
#   framed  answer each of any number of messages with the same framing,
#           until the peer ends the stream between two messages.
#
# EchoProtocol decides everything about a connection, as h11's Connection
# does for HTTP: what to send, whether to read and how much it may hold,
# which deadline applies and what its expiry means, when to half-close and
# when to close, and what the ending is called. The code that does the I/O
# (a trio task, an asyncio protocol, a thread) is a pump: it feeds in what
# happened (bytes received, bytes sent, the time) and does what
# `next_action` says. The protocol reads no clock: every input carries the
# caller's time.
#
# Three promises hold by construction, whatever the peer sends:
#
# - Memory. `held` is what the connection really keeps alive: the received
#   chunks the framer holds, whole, and the answers not yet sent, each
#   buffer charged BUFFER_OVERHEAD on top of its bytes. Small answers are
#   joined into one buffer per step, so a flood of 2-byte messages costs its
#   bytes, not an object each. It never
#   asks for a read that could take `held` past `max_held`.
# - Work between checkpoints. Bytes are taken in O(1) by `receive_data`;
#   they are framed by `next_action`. A step (what lies between two YIELDs)
#   frames at most MAX_MESSAGES_PER_STEP messages and takes in at most
#   STEP_BYTES and one read more, a read counting as READ_SIZE_MIN bytes at
#   least (so at most STEP_BYTES / READ_SIZE_MIN reads): past either,
#   `next_action` says YIELD, and
#   the pump lets others run. So a pump may read again at once while its
#   transport has bytes, without a checkpoint of its own per read.
# - Endings. Closing a TCP socket that has unread bytes sends a reset (as
#   do bytes that arrive after the close), which destroys echo bytes the
#   peer has not read yet. So a connection closes at once only when it knows
#   nothing is unread and every byte it sent has arrived; otherwise it
#   half-closes, reads and discards (counted) until the peer closes or the
#   linger time ends, and then closes. Bytes read on the way are never
#   dropped unseen. A transport that cannot half-close (TLS) reads and
#   discards the same way, without the half-close, and then closes
#   gracefully (TLS sends close_notify).
#
# A TLS connection begins with its handshake (HANDSHAKE), under a deadline
# of its own; the header timer starts when it ends, and a transport failure
# meanwhile is the handshake's (`Outcome.TLS_HANDSHAKE`).
from __future__ import annotations

import enum
import math
from collections import deque

import attrs

from ._errors import LocalProtocolError, Reason, RemoteProtocolError
from ._events import NEED_DATA, EndOfMessage, Header, Payload, _SentinelBase
from ._framer import CountFramer
from ._limits import Limits

__all__ = [
    "BUFFER_OVERHEAD",
    "CHECK_UNREAD",
    "CLOSE",
    "HANDSHAKE",
    "MAX_MESSAGES_PER_STEP",
    "PAUSED",
    "SEND_EOF",
    "STEP_BYTES",
    "YIELD",
    "Action",
    "Chunk",
    "Deadline",
    "EchoProtocol",
    "Expiry",
    "Limits",
    "Mode",
    "Outcome",
    "Receive",
    "Unread",
]

Chunk = bytes | bytearray | memoryview
"""A piece of bytes received or to send."""

MAX_MESSAGES_PER_STEP = 256
"""Messages framed in one step (between two `YIELD`), at most.

A step of 256 of the smallest messages costs about half a millisecond on the
machine this was measured on (0.43 ms for ``0 ``, 0.62 ms for one-byte
payloads, medians), so a peer that pipelines tiny messages cannot hold its
task, or the accepting task, for much longer than that between
checkpoints."""

STEP_BYTES = 1024 * 1024
"""Bytes taken in by one step (between two `YIELD`), at most, besides the
step's last read: about a millisecond of copying, to and from the kernel,
on the machine MAX_MESSAGES_PER_STEP was measured on. A read shorter than
READ_SIZE_MIN counts as that much: a step makes 257 reads at most."""

BUFFER_OVERHEAD = 64
"""Bytes charged for each buffer held, besides its contents: a bytes
object's header (33 bytes), its slot in a deque (8) and the allocator's
rounding."""

READ_SIZE_MIN = 4 * 1024
"""A quiet connection reads this much at a time."""

READ_SIZE_MAX = 256 * 1024
"""A streaming connection doubles its reads up to this much."""

READ_SIZE_LEAST = 512
"""While answers wait to be sent, no read is asked for with less room than
this: the connection waits for the answers to go out instead."""

COALESCE_LIMIT = 4 * 1024
"""Answers shorter than this are joined into one buffer, instead of being
queued as objects of their own."""


class Mode(enum.StrEnum):
    """What the server does with the bytes of a connection."""

    COUNT = "count"
    """Read ``length SP payload``, echo the payload, close (the original's
    EchoCount)."""

    ECHO = "echo"
    """Echo every byte until the peer closes (the original's Echo)."""

    FRAMED = "framed"
    """Answer each of any number of messages with the same framing, until the
    peer half-closes."""


class Outcome(enum.StrEnum):
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
    TOO_SLOW = "too-slow"
    """A message's payload came in slower than the minimum data rate."""
    BUDGET_TIMEOUT = "budget-timeout"
    """The server's memory budget stayed full for the idle timeout while the
    connection waited for room to read: the server's limit, not the peer's
    fault."""
    RESET = "reset"
    """The peer went away (a reset, or a broken pipe) mid-transfer."""
    TLS_HANDSHAKE = "tls-handshake"
    """The TLS handshake failed (the detail gives the ssl library's words),
    or did not end within the handshake timeout."""
    CANCELLED = "cancelled"
    """The server cut the connection short (shutdown after the grace period)."""
    INTERNAL_ERROR = "internal-error"
    """A bug in this server; logged with its traceback."""


CLEAN_OUTCOMES = frozenset({Outcome.COMPLETE, Outcome.NO_MESSAGE, Outcome.CLOSED})
"""The endings the protocol intends."""


class Expiry(enum.Enum):
    """What it means when the current deadline passes."""

    HEADER = "header"
    """The length prefix in progress is late: `Outcome.HEADER_TIMEOUT`."""
    IDLE = "idle"
    """Nothing moved for the idle timeout: `Outcome.IDLE_TIMEOUT`."""
    BUDGET = "budget"
    """Nothing moved while the server held the connection up for want of
    budget: `Outcome.BUDGET_TIMEOUT`."""
    TOO_SLOW = "too-slow"
    """The payload in progress fell below the minimum data rate:
    `Outcome.TOO_SLOW`."""
    HANDSHAKE = "handshake"
    """The TLS handshake is late: `Outcome.TLS_HANDSHAKE`."""
    LINGER = "linger"
    """The linger time after a half-close is over: close (the outcome stays
    what it was)."""


@attrs.frozen
class Deadline:
    """When the connection must end unless something happens first, and why.

    Attributes:
        when: The time, in the caller's clock (``math.inf`` for never).
        expiry: What its passing means.
    """

    when: float
    expiry: Expiry


class Unread(enum.Enum):
    """Whether closing now could reset the connection, as the transport knows.

    A close resets the connection if bytes of the peer's wait unread, or
    arrive later while answers are still on their way (the reset then
    destroys them).
    """

    YES = "yes"
    """Bytes wait unread."""
    NO = "no"
    """Nothing waits unread, and every byte sent has been acknowledged."""
    UNKNOWN = "unknown"
    """The transport cannot tell, or answers are still on their way."""


@attrs.frozen
class Receive:
    """Read at most ``max_bytes``, waiting for them.

    Pass them (``b""`` at the end of the stream) to `EchoProtocol.receive_data`.
    A read that need not wait need not be a checkpoint either: the protocol
    says `YIELD` when a step's work is done.

    Attributes:
        max_bytes: The most bytes to read: what the protocol can hold.
    """

    max_bytes: int


class YIELD(metaclass=_SentinelBase):
    """A step's work is done: let other tasks run, then ask again.

    Said when framing work is left after MAX_MESSAGES_PER_STEP messages,
    and before a read once STEP_BYTES were taken in since the last one.
    """


class PAUSED(metaclass=_SentinelBase):
    """Nothing to do until bytes are sent (`EchoProtocol.sent`).

    The connection holds all it may, or its last answers must go out first.
    """


class CHECK_UNREAD(metaclass=_SentinelBase):  # noqa: N801
    """Say, without waiting, whether closing now could reset the connection.

    Pass bytes that wait unread to `EchoProtocol.receive_data`, or call
    `EchoProtocol.report_unread`: `Unread.NO` only if nothing waits and
    everything sent is acknowledged, `Unread.UNKNOWN` if the transport
    cannot tell.
    """


class SEND_EOF(metaclass=_SentinelBase):  # noqa: N801
    """Half-close (send the end of stream), then call `EchoProtocol.eof_sent`."""


class HANDSHAKE(metaclass=_SentinelBase):
    """Do the TLS handshake, then call `EchoProtocol.handshake_done`."""


class CLOSE(metaclass=_SentinelBase):
    """Close the connection: `EchoProtocol.outcome` says how it ended."""


_RECEIVES = {size: Receive(size) for size in (READ_SIZE_MIN << i for i in range(7))}
"""The reads of the usual sizes, made once (up to READ_SIZE_MAX)."""

Action = (
    Receive
    | type[YIELD]
    | type[PAUSED]
    | type[CHECK_UNREAD]
    | type[SEND_EOF]
    | type[HANDSHAKE]
    | type[CLOSE]
)

_HANDSHAKING = "handshaking"  # the TLS handshake comes first
_READING = "reading"  # the protocol wants the peer's bytes
_ENDING = "ending"  # reading is over (a count message, or the end of stream)
_LINGERING = "lingering"  # discarding until the peer closes (half-closed, if it can)
_DONE = "done"  # the outcome is known and the connection must close

_NEVER = Deadline(math.inf, Expiry.IDLE)

# What each expiry ends a connection with, and says (a linger's expiry only
# closes: the connection ended well already).
_EXPIRY_OUTCOMES = {
    Expiry.HEADER: (
        Outcome.HEADER_TIMEOUT,
        "no complete length prefix within {limits.header_timeout:g} s",
    ),
    Expiry.HANDSHAKE: (
        Outcome.TLS_HANDSHAKE,
        "no TLS handshake within {limits.handshake_timeout:g} s",
    ),
    Expiry.IDLE: (Outcome.IDLE_TIMEOUT, "nothing received or sent for {limits.idle_timeout:g} s"),
    Expiry.BUDGET: (
        Outcome.BUDGET_TIMEOUT,
        "the server's memory budget stayed full for {limits.idle_timeout:g} s",
    ),
    Expiry.TOO_SLOW: (
        Outcome.TOO_SLOW,
        "the payload came slower than {limits.min_data_rate:g} bytes/s",
    ),
}


class EchoProtocol:
    """One connection's state machine, in one `Mode`.

    The pump feeds it what happens and does what it says:

    - `receive_data(data, now)` for each read (``b""`` at the end of the
      stream);
    - `data_to_send()` for the next bytes to send, and `sent(count, now)`
      once some were;
    - `next_action(now)` for what to do next: `HANDSHAKE` (first, on a TLS
      connection), a `Receive`, `YIELD`, `PAUSED`, `CHECK_UNREAD`,
      `SEND_EOF` or `CLOSE`;
    - `deadline` for when the connection must end if nothing happens, and
      what that means; `expired(now)` once it has passed;
    - `budget_wait`/`budget_granted` around a wait for a memory budget the
      pump shares with other connections, and `abort` when the transport
      breaks or the server cuts the connection.

    Once `next_action` says `CLOSE`, `outcome` says how it ended.

    The idle deadline moves forward at most once per granularity (half a
    second, or a sixteenth of the idle timeout if that is less), so that a
    pump need not move its timer on every read: an idle connection is closed
    between ``idle_timeout`` and ``idle_timeout`` plus the granularity after
    its last byte.

    Args:
        mode: The mode to serve.
        limits: The connection's bounds.
        now: The time the connection started, in the caller's clock.
        can_half_close: Whether the transport can send an end of stream and
            go on reading. Without it, a connection that must linger reads
            and discards without a half-close, then closes gracefully.
        handshake: Whether the connection begins with a TLS handshake.
        max_read: The largest read worth asking for: `READ_SIZE_MAX`, or less
            where the transport never returns more at once (a TLS stream
            returns one record, 16 KiB at most, and a larger buffer asked
            for is allocated whole, then shrunk).
    """

    __slots__ = (
        "_can_half_close",
        "_deadline",
        "_deadline_stale",
        "_framer",
        "_handshake_deadline",
        "_header_due",
        "_held_up_since",
        "_idle_deadline",
        "_limits",
        "_linger_deadline",
        "_out",
        "_out_held",
        "_out_offset",
        "_payload_bytes",
        "_payload_since",
        "_peer_closed",
        "_read_max",
        "_read_size",
        "_state",
        "_step_messages",
        "_unread",
        "_waiting_for_budget",
        "_work",
        "_yield_at",
        "bytes_in",
        "bytes_out",
        "detail",
        "headers",
        "length",
        "messages",
        "mode",
        "outcome",
    )

    def __init__(
        self,
        mode: Mode,
        *,
        limits: Limits = Limits(),
        now: float = 0.0,
        can_half_close: bool = True,
        handshake: bool = False,
        max_read: int = READ_SIZE_MAX,
    ) -> None:
        self.mode = mode if type(mode) is Mode else Mode(mode)
        self._limits = limits
        self._can_half_close = can_half_close
        self._framer = (
            None
            if self.mode is Mode.ECHO
            else CountFramer(max_message_size=limits.max_message_size)
        )
        self._state = _HANDSHAKING if handshake else _READING
        self._work = False  # received bytes (or an end of stream) not yet framed
        self._step_messages = 0  # messages framed since the last YIELD
        self._yield_at = STEP_BYTES  # bytes_in at which the step is over
        self._peer_closed = False
        self._unread: Unread | None = None  # asked for once a count message ends
        self._read_size = READ_SIZE_MIN
        self._read_max = max_read
        # The answers not yet sent, the first of which may be partly sent.
        self._out: deque[bytes] | None = None
        self._out_offset = 0
        self._out_held = 0  # what they cost
        # Timers, in the caller's clock.
        self._idle_deadline = now + limits.idle_timeout + limits.idle_granularity
        self._header_due: float | None = now if self.mode is Mode.COUNT and not handshake else None
        self._handshake_deadline = now + limits.handshake_timeout if handshake else math.inf
        self._payload_since: float | None = None
        self._payload_bytes = 0
        self._held_up_since: float | None = None
        self._waiting_for_budget = False
        self._linger_deadline = math.inf
        self._deadline = _NEVER
        self._deadline_stale = True  # worked out when asked for: a pump may never ask
        self.outcome: Outcome | Reason | None = None
        """How the connection ended (or is ending); None while it is open."""
        self.detail = ""
        """What went wrong, in words, when something did."""
        self.bytes_in = 0
        """Bytes received: every byte, including those discarded."""
        self.bytes_out = 0
        """Bytes sent."""
        self.messages = 0
        """Messages received in full (count and framed modes)."""
        self.headers = 0
        """Length prefixes received in full."""
        self.length: int | None = None
        """The length the last length prefix announced."""

    # -- What the pump reads ------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The connection's bounds."""
        return self._limits

    @property
    def held(self) -> int:
        """The bytes the connection keeps alive.

        Unframed input and unsent answers, each buffer charged with
        `BUFFER_OVERHEAD` besides.
        """
        framer = self._framer
        if framer is None:
            return self._out_held
        return self._out_held + framer.held + framer.chunks * BUFFER_OVERHEAD

    @property
    def clean(self) -> bool:
        """Whether the connection ended the way the protocol intends."""
        return self.outcome in CLEAN_OUTCOMES

    def data_to_send(self) -> Chunk | None:
        """Return the next bytes to send, or None if there are none.

        They stay queued until `sent` reports them: ask again after each
        send. A pump that sends from two places must send from one at a
        time, in order.
        """
        out = self._out
        if not out:
            return None
        front = out[0]
        return memoryview(front)[self._out_offset :] if self._out_offset else front

    # -- What the pump reports ----------------------------------------------

    def receive_data(self, data: Chunk, now: float) -> None:
        """Take the bytes of one read (``b""`` when the peer ended the stream).

        This only takes them; `next_action` frames them. Every byte is
        counted in `bytes_in`, including those read after a count message
        (which are discarded, but mean that closing now would reset the
        connection).

        Raises:
            LocalProtocolError: If the stream had already ended, or the
                connection is done.
        """
        if self._peer_closed or self._state is _DONE:
            raise LocalProtocolError("the connection takes no more bytes")
        size = len(data)
        if not size:
            self._peer_closed = True
        else:
            self.bytes_in += size
            if size < READ_SIZE_MIN:
                # A read costs a step as much as READ_SIZE_MIN bytes at
                # least: small reads, all full, are no cheaper to make.
                self._yield_at -= READ_SIZE_MIN - size
            self._progress(now)
            if size == self._read_size and size < self._read_max:
                self._read_size = size * 2  # a full read suggests a stream
            elif size < READ_SIZE_MIN:
                self._read_size = READ_SIZE_MIN
        if self._state is not _READING:
            if size:
                self._unread = Unread.YES  # discarded: the message is over
            return
        framer = self._framer
        if framer is None:
            if size:
                # The caller may reuse a buffer that is not bytes: copy it.
                self._append(data if type(data) is bytes else bytes(data))
            else:
                self._end_reading()
            return
        framer.receive_data(data)
        self._work = True

    def sent(self, count: int, now: float) -> None:
        """Report that ``count`` bytes of `data_to_send` were sent."""
        if not count:
            return
        self.bytes_out += count
        out = self._out
        if not out:
            return  # it closed while these were under way
        self._progress(now)
        offset = self._out_offset + count
        while out and offset >= len(out[0]):
            front = out.popleft()
            offset -= len(front)
            self._out_held -= len(front) + BUFFER_OVERHEAD
        self._out_offset = offset

    def report_unread(self, unread: Unread) -> None:
        """Answer `CHECK_UNREAD`: whether bytes wait unread (none came with it)."""
        if self._unread is None or unread is Unread.YES:
            self._unread = unread

    def handshake_done(self, now: float) -> None:
        """Report that the TLS handshake (`HANDSHAKE`) ended well.

        The header timer of a count connection starts.
        """
        if self._state is _HANDSHAKING:
            self._state = _READING
            if self.mode is Mode.COUNT:
                self._header_due = now
            self._deadline_stale = True

    def eof_sent(self, now: float) -> None:
        """Report that the end of stream was sent (`SEND_EOF` done).

        The linger time starts.
        """
        self._linger(now)

    def budget_wait(self, now: float) -> None:
        """Report that reading waits for a memory budget shared with others.

        The server holds the connection up, so its header and data-rate
        timers stop; its idle timer goes on, and its expiry is the budget's
        (`Outcome.BUDGET_TIMEOUT`).
        """
        self._waiting_for_budget = True
        self._hold_up(now)

    def budget_granted(self, now: float) -> None:
        """Report that the wait of `budget_wait` is over."""
        self._waiting_for_budget = False
        self._resume(now)

    def expired(self, now: float) -> None:
        """Report that `deadline` has passed: the connection must close."""
        if (ending := _EXPIRY_OUTCOMES.get(self.deadline.expiry)) is not None:
            outcome, words = ending
            self._end(outcome, words.format(limits=self._limits))
        self._close()

    def abort(self, outcome: Outcome, detail: str = "") -> None:
        """Report that the connection cannot go on.

        Args:
            outcome: Why: the transport broke (`Outcome.RESET`; during a TLS
                handshake, `Outcome.TLS_HANDSHAKE`), the server cut the
                connection (`Outcome.CANCELLED`), or a bug
                (`Outcome.INTERNAL_ERROR`). An outcome already decided stays,
                except that a bug is always told.
            detail: What happened, in words.
        """
        if outcome is Outcome.INTERNAL_ERROR:
            self.outcome = None
        elif outcome is Outcome.RESET and self._state is _HANDSHAKING:
            outcome = Outcome.TLS_HANDSHAKE
        self._end(outcome, detail)
        self._close()

    # -- What the pump does -------------------------------------------------

    def next_action(self, now: float) -> Action:
        """Do the next step of framing, if any is due; say what to do next.

        Returns:
            One of: `HANDSHAKE`; `Receive`; `YIELD` (call again after a
            checkpoint); `PAUSED` (call again after `sent`); `CHECK_UNREAD`;
            `SEND_EOF`; `CLOSE`. Whatever it returns, send what
            `data_to_send` has.
        """
        if self._work and self._frame(now):
            return self._yield()
        state = self._state
        if state is _HANDSHAKING:
            return HANDSHAKE
        if state is _READING:
            room = self._limits.max_held - self.held - 3 * BUFFER_OVERHEAD
            if self._framer is not None:
                # A read's chunk is held whole while answers are made from it,
                # over several steps: a read of n bytes may cost 2n, and an
                # overhead per answer buffer of at least 4 KiB (n/32 in all).
                room = room * 32 // 65
            if room < READ_SIZE_LEAST and self._out:
                self._hold_up(now)
                return PAUSED
            self._resume(now)
            if self.bytes_in >= self._yield_at:
                return self._yield()
            size = self._read_size if room >= self._read_size else max(1, room)
            return _RECEIVES.get(size) or Receive(size)
        if state is _DONE:
            return CLOSE
        if self._out:
            return PAUSED  # the last answers go out before the ending
        if state is _LINGERING:
            if self._peer_closed:
                return self._close()
            if self.bytes_in >= self._yield_at:
                return self._yield()
            return _RECEIVES[READ_SIZE_MIN]  # to discard: no need to hold much
        if self.outcome is not None and not self.clean:
            return self._close()  # the peer broke the protocol: its answers are out
        # Every answer is out: the protocol's part went as it intends.
        if self.mode is not Mode.COUNT:
            self._end(Outcome.CLOSED)
            return self._close()
        self._end(Outcome.COMPLETE if self.messages else Outcome.NO_MESSAGE)
        if self._peer_closed or self._unread is Unread.NO:
            return self._close()  # nothing unread: closing cannot reset
        if self._unread is None:
            return CHECK_UNREAD
        if not self._can_half_close:
            if self._unread is not Unread.YES:
                return self._close()  # nothing known unread: close gracefully now
            self._linger(now)  # discard what comes, then close gracefully
            return _RECEIVES[READ_SIZE_MIN]
        return SEND_EOF

    # -- Inside -------------------------------------------------------------

    def _frame(self, now: float) -> bool:
        """Frame one step of received bytes; return whether more is left."""
        framer = self._framer
        assert framer is not None
        framed = self.mode is Mode.FRAMED
        messages = self._step_messages
        small: list[bytes] = []  # this step's small answers, joined at its end
        try:
            while (event := framer.next_event()) is not NEED_DATA:
                if type(event) is Payload:
                    data = event.data
                    self._payload_bytes += len(data)
                    if len(data) < COALESCE_LIMIT:
                        small.append(data)
                    else:
                        if small:
                            self._append(b"".join(small))
                            small.clear()
                        self._append(data)
                elif type(event) is Header:
                    self.headers += 1
                    self.length = event.length
                    self._header_due = None
                    self._payload_since = now
                    self._payload_bytes = 0
                    if framed:
                        small.append(b"%d " % event.length)
                elif type(event) is EndOfMessage:
                    self.messages += 1
                    self._payload_since = None
                    messages += 1
                    if not framed or messages == MAX_MESSAGES_PER_STEP:
                        break
                else:  # EndOfStream
                    break
            else:  # NEED_DATA: every byte received is framed
                self._work = False
        except RemoteProtocolError as error:
            # Reading is over; what was answered before the fault still
            # goes out, and then the connection closes.
            self._end(error.reason, error.detail)
            faulted = True
        else:
            faulted = False
        self._step_messages = messages
        if small:
            self._append(small[0] if len(small) == 1 else b"".join(small))
        if faulted or (self._work and (not framed or type(event) is not EndOfMessage)):
            self._end_reading()  # a fault, a count message, or the end of the stream
        elif self._header_due is None and framer.in_header:
            self._header_due = now  # a framed message's prefix has begun
        self._deadline_stale = True
        return self._work

    def _yield(self) -> type[YIELD]:
        """End the step: the pump lets others run before the next."""
        self._step_messages = 0
        self._yield_at = self.bytes_in + STEP_BYTES
        return YIELD

    def _end_reading(self) -> None:
        """Reading for the protocol is over: a count message, or the end of stream."""
        self._state = _ENDING
        self._work = False
        self._header_due = self._payload_since = None
        framer = self._framer
        if framer is not None:
            if framer.held:  # bytes after a count message: read, and unread by it
                self._unread = Unread.YES
            self._framer = None  # what it still holds goes with it

    def _append(self, buffer: bytes) -> None:
        """Queue a buffer of answers; a small one joins the small one before it.

        The first buffer may be being sent, so it is never joined: a join
        copies at most COALESCE_LIMIT bytes, and leaves one object where
        there were two.
        """
        out = self._out
        if out is None:
            out = self._out = deque()
        elif len(buffer) < COALESCE_LIMIT and len(out) > 1 and len(out[-1]) < COALESCE_LIMIT:
            last = out.pop()
            self._out_held -= len(last) + BUFFER_OVERHEAD
            buffer = last + buffer
        out.append(buffer)
        self._out_held += len(buffer) + BUFFER_OVERHEAD

    def _linger(self, now: float) -> None:
        """Read and discard until the peer closes, or the linger time ends."""
        self._state = _LINGERING
        self._linger_deadline = now + self._limits.linger_timeout
        self._deadline_stale = True

    def _end(self, outcome: Outcome | Reason, detail: str = "") -> None:
        """Record how the connection ended, unless that is decided already."""
        if self.outcome is None:
            self.outcome = outcome
            self.detail = detail

    def _close(self) -> type[CLOSE]:
        """Nothing more is read or sent: drop what is held."""
        self._state = _DONE
        self._work = False
        self._framer = None
        self._out = None
        self._out_held = 0
        self._out_offset = 0
        return CLOSE

    def _progress(self, now: float) -> None:
        """Bytes moved: push the idle deadline on, now and then."""
        limits = self._limits
        if now + limits.idle_timeout >= self._idle_deadline:
            self._idle_deadline = now + limits.idle_timeout + limits.idle_granularity
            self._deadline_stale = True

    def _hold_up(self, now: float) -> None:
        """The server stops reading: the peer's timers stop."""
        if self._held_up_since is None:
            self._held_up_since = now
            self._deadline_stale = True

    def _resume(self, now: float) -> None:
        """The server reads again: the peer's timers go on where they stopped."""
        since = self._held_up_since
        if since is None or self._waiting_for_budget:
            return
        self._held_up_since = None
        if self._header_due is not None:
            self._header_due += now - since
        if self._payload_since is not None:
            self._payload_since += now - since
        self._deadline_stale = True

    @property
    def deadline(self) -> Deadline:
        """When the connection must end if nothing happens first, and why.

        A new object whenever it changes, so that a pump can tell by
        identity whether to move its timer.
        """
        if self._deadline_stale:
            self._deadline_stale = False
            self._update_deadline()
        return self._deadline

    def _update_deadline(self) -> None:
        """Set `deadline` to the earliest timer that applies, and say which."""
        limits = self._limits
        if self._state is _LINGERING:
            when, expiry = self._linger_deadline, Expiry.LINGER
        elif self._state is _HANDSHAKING:
            when, expiry = self._handshake_deadline, Expiry.HANDSHAKE
        else:
            when = self._idle_deadline
            expiry = Expiry.BUDGET if self._waiting_for_budget else Expiry.IDLE
            if self._held_up_since is None:
                if self._header_due is not None:
                    header = self._header_due + limits.header_timeout
                    if header <= when:
                        when, expiry = header, Expiry.HEADER
                if self._payload_since is not None and limits.min_data_rate > 0:
                    rate = self._payload_since + max(
                        limits.min_data_rate_grace, self._payload_bytes / limits.min_data_rate
                    )
                    if rate < when:
                        when, expiry = rate, Expiry.TOO_SLOW
        deadline = self._deadline
        if when != deadline.when or expiry is not deadline.expiry:
            self._deadline = Deadline(when, expiry)
