# One connection of an echo server, as a state machine without I/O.
#
#   count   read one `length SP payload` message, echo its payload as it
#           arrives, and stop reading at its end (the original's EchoCount);
#   echo    echo every byte until the peer ends the stream (the original's
#           Echo); no framing at all;
#   framed  answer each of any number of messages with the same framing,
#           until the peer ends the stream between two messages.
#
# Each mode is a class of its own (`_modes`), with both sides of its rules.
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
#   bytes, not an object each. It never asks for a read that could take
#   `held` past `max_held`. A pump that shares memory with other
#   connections asks for a message's `need` whole, and waits for it only
#   while it holds nothing (`budget_short`): so no wait for memory holds
#   memory that another waits for.
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
#
# The connection is made of parts, each in a module of its own: its phase
# and the table of how it closes (`_state`), its deadlines (`_timers`), the
# answers not yet sent (`_outbox`), the bounds of a step and the size of
# its reads (`_steps`), and its mode's rules (`_modes`). EchoProtocol holds
# them and decides the order in which they act.
from __future__ import annotations

from ._actions import (
    CHECK_UNREAD,
    CLOSE,
    HANDSHAKE,
    PAUSED,
    SEND_EOF,
    Action,
)
from ._errors import LocalProtocolError
from ._framer import CountFramer
from ._limits import Limits, default_max_held
from ._modes import Mode, rules_of
from ._outbox import BUFFER_OVERHEAD, OUTBOX_FIELDS, Chunk, Outbox
from ._state import (
    CLEAN_OUTCOMES,
    DONE,
    ENDING,
    HANDSHAKING,
    LINGERING,
    READING,
    STATE_FIELDS,
    Closing,
    Ending,
    Unread,
)
from ._steps import READ_SIZE_LEAST, READ_SIZE_MAX, READ_SIZE_MIN, STEP_BYTES, STEP_FIELDS, Steps
from ._timers import TIMER_FIELDS, Timers

__all__ = ["EchoProtocol"]

_DEFAULT_LIMITS = Limits()


class EchoProtocol(Ending, Timers, Outbox, Steps):
    """One connection's state machine, in one `Mode`.

    The pump feeds it what happens and does what it says:

    - `receive_data(data, now)` for each read (``b""`` at the end of the
      stream);
    - `data_to_send()` for the next bytes to send, and `sent(count, now)`
      once some were; or, for a read whose bytes may go straight back
      (`Receive.echo`), `echoed(data, sent, now)` for both at once;
    - `next_action(now)` for what to do next: `HANDSHAKE` (first, on a TLS
      connection), a `Receive`, `YIELD`, `PAUSED`, `CHECK_UNREAD`,
      `SEND_EOF` or `CLOSE`;
    - `deadline` for when the connection must end if nothing happens, and
      what that means; `expired(now)` once it has passed;
    - `need` for the room to admit the message under way whole, and
      `budget_short(now)` when a memory budget the pump shares with other
      connections has no room for a read (then `budget_granted` after a
      wait for it); `abort` when the transport breaks or the server cuts
      the connection.

    Once `next_action` says `CLOSE`, `outcome` says how it ended. (Its parts
    say more: `Timers` on the deadlines, `Outbox`, `Steps`, `Ending`.)

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
        # What it is, and how it ends (`_state`)
        "_limits",
        "_rules",
        "mode",
        *STATE_FIELDS,
        # What it takes in, and how much (`_steps`, and the mode's framer)
        "_framer",
        "_work",
        "bytes_in",
        "headers",
        "length",
        "messages",
        *STEP_FIELDS,
        # What it sends (`_outbox`)
        *OUTBOX_FIELDS,
        # When it must end (`_timers`)
        *TIMER_FIELDS,
    )

    def __init__(
        self,
        mode: Mode,
        *,
        limits: Limits = _DEFAULT_LIMITS,
        now: float = 0.0,
        can_half_close: bool = True,
        handshake: bool = False,
        max_read: int = READ_SIZE_MAX,
    ) -> None:
        self._rules = rules = rules_of(mode)
        self.mode = rules.mode
        self._limits = limits
        # The parts' fields start here (a call each would cost every connection).
        # Ending:
        self._phase = HANDSHAKING if handshake else READING
        self._can_half_close = can_half_close
        self._peer_closed = False
        self._unread = None
        self.outcome = None
        """How the connection ended (or is ending); None while it is open."""
        self.detail = ""
        """What went wrong, in words, when something did."""
        # Steps, and what it takes in:
        self._yield_at = STEP_BYTES
        self._read_size = READ_SIZE_MIN
        self._read_max = max_read
        self._step_messages = 0
        self._framer: CountFramer | None = rules.new_framer(limits)
        self._work = False  # received bytes (or an end of stream) not yet framed
        # Outbox:
        self._out = None
        self._out_held = 0
        self._out_offset = 0
        self.bytes_out = 0
        """Bytes sent."""
        # Timers:
        self._start_timers(now, handshake=handshake, header_from_start=rules.header_from_start)
        self.bytes_in = 0
        """Bytes received: every byte, including those discarded."""
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
    def need(self) -> int:
        """The most the connection may hold until the message under way is in.

        What it holds now (answers to earlier messages not yet sent, say),
        and a whole message and what holding it costs (`default_max_held` of
        its length), within `Limits.max_held`; 0 while no message whose
        length is known is under way (echo mode, or between messages). A
        pump that shares memory with other connections admits this much at
        once, all or nothing, so that the message completes whatever its
        peer does.
        """
        if self.headers > self.messages and self._phase is READING:
            assert self.length is not None
            return min(self.held + default_max_held(self.length), self._limits.max_held)
        return 0

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
        if self._peer_closed or self._phase is DONE:
            raise LocalProtocolError("the connection takes no more bytes")
        if size := len(data):
            self.bytes_in += size
            self._took(size)
            self._received(now)
        else:
            self._peer_closed = True
        if self._phase is READING:
            self._rules.take(self, data)
        elif size:
            self._unread = Unread.YES  # discarded: the message is over

    def echoed(self, data: Chunk, sent: int, now: float) -> int:
        """Take the bytes of a read that `Receive.echo` allowed, of which ``sent`` went back.

        As `receive_data` and then `sent`, in one call; what was not sent is
        queued (`data_to_send`), and held.

        Returns:
            The size of the next read, if the pump may make it the same way
            at once: every byte went back, so nothing is held, the step goes
            on, and `deadline` has not moved. 0 otherwise: ask `next_action`
            (and see `deadline` and `held`) before the next read.

        Raises:
            LocalProtocolError: If the last `Receive` did not allow it.
        """
        if self._out or self._phase is not READING or not self._rules.answers_itself:
            raise LocalProtocolError("only a Receive.echo read may be echoed at once")
        size = len(data)
        if sent < size or not size:
            self.receive_data(data, now)
            self.sent(sent, now)
            return 0
        self.bytes_in += size
        self.bytes_out += size
        self._took(size)
        self._progress(now)
        read = self._read_size
        if self._deadline_stale or self.bytes_in >= self._yield_at or read > self._read_room():
            return 0
        return read

    def _read_room(self) -> int:
        """The most a read may take with the answers waiting now, a framer's chunks aside.

        What `max_held` leaves after the answers waiting, less three
        buffers' overhead (`BUFFER_OVERHEAD` each). `next_action` and
        `echoed` both size reads by it.
        """
        return self._limits.max_held - self._out_held - 3 * BUFFER_OVERHEAD

    def handshake_done(self, now: float) -> None:
        """Report that the TLS handshake (`HANDSHAKE`) ended well.

        The header timer of a count connection starts.
        """
        if self._phase is HANDSHAKING:
            self._phase = READING
            self._handshake_timer_done(now, header_due=self._rules.header_from_start)

    def eof_sent(self, now: float) -> None:
        """Report that the end of stream was sent (`SEND_EOF` done).

        The linger time starts.
        """
        self._linger(now)

    def expired(self, now: float) -> None:
        """Report that `deadline` has passed: the connection must close."""
        if (ending := self._expiry_ending()) is not None:
            outcome, words = ending
            self._end(outcome, words.format(limits=self._limits))
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
        if self._work and self._rules.frame(self, now):
            return self._yield()
        phase = self._phase
        if phase is READING:
            room = self._read_room()
            if (framer := self._framer) is not None:
                # A read's chunk is held whole while answers are made from
                # it, over several steps: a read of n bytes may cost 2n, and
                # an overhead per answer buffer of at least 4 KiB (n/32 in all).
                room = (room - framer.held - framer.chunks * BUFFER_OVERHEAD) * 32 // 65
            if room < READ_SIZE_LEAST and self._out:
                self._hold_up(now)
                return PAUSED
            if self._held_up_since is not None:
                self._resume(now)
            return self._read(room, echo=self._rules.answers_itself and not self._out)
        if phase is HANDSHAKING:
            return HANDSHAKE
        if phase is DONE:
            return CLOSE
        if self._out:
            return PAUSED  # the last answers go out before the ending
        if phase is LINGERING:
            return self._close() if self._peer_closed else self._discard()
        return self._ending(now)

    # -- What the mode's rules call -----------------------------------------

    def _end_reading(self) -> None:
        """Reading for the protocol is over: a count message, or the end of stream."""
        self._phase = ENDING
        self._work = False
        self._reading_timers_over()
        framer = self._framer
        if framer is not None:
            if framer.held:  # bytes after a count message: read, and unread by it
                self._unread = Unread.YES
            self._framer = None  # what it still holds goes with it

    # -- Inside -------------------------------------------------------------

    def _ending(self, now: float) -> Action:
        """Every answer is out and reading is over: close, or say how to."""
        if self.outcome is None:
            self._end(self._rules.ending(self.messages))
        elif self.outcome not in CLEAN_OUTCOMES:
            return self._close()  # the peer broke the protocol: its answers are out
        closing = self._closing()
        if closing is CHECK_UNREAD:
            return CHECK_UNREAD
        if closing is Closing.NOW:
            return self._close()
        if closing is Closing.HALF_CLOSE:
            return SEND_EOF
        self._linger(now)  # discard what comes, then close gracefully
        return self._discard()

    def _linger(self, now: float) -> None:
        """Read and discard until the peer closes, or the linger time ends."""
        self._phase = LINGERING
        self._linger_timer(now)

    def _close(self) -> type[CLOSE]:
        """Nothing more is read or sent: drop what is held."""
        self._phase = DONE
        self._work = False
        self._framer = None
        self._drop_answers()
        return CLOSE
