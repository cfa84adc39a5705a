# Every deadline of one connection, and what its expiry means.
#
# The timers run in the caller's clock: each input carries the time, and
# nothing here reads a clock. One deadline applies at a time, the earliest
# of those that run, and `Timers.deadline` says when and why:
#
#   handshake   a TLS handshake, from the connection's start;
#   header      a length prefix, from the connection's start (count mode) or
#               from its first byte (framed mode);
#   too-slow    a payload, once it falls below the minimum data rate;
#   idle        anything received or sent; while answers wait to be sent,
#               only the peer's taking them (a peer that sends and never
#               reads is idle: its answers would be held for ever);
#   budget      the idle timer, while the server holds the connection up for
#               want of memory budget (the server's limit, not the peer's);
#   linger      the peer's close, after a half-close.
#
# While the server holds a connection up (it stops reading for want of room),
# the peer's own timers (header, data rate) stop, and go on where they
# stopped when it reads again.
from __future__ import annotations

import enum
import math
from collections import deque
from typing import TYPE_CHECKING

import attrs

from ._limits import Limits
from ._state import Outcome

__all__ = ["EXPIRY_OUTCOMES", "Deadline", "Expiry", "Timers"]


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


EXPIRY_OUTCOMES: dict[Expiry, tuple[Outcome, str]] = {
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
"""What each expiry ends a connection with, and says; a linger's expiry only
closes (the connection ended well already)."""

_NOT_TAKEN = (
    Outcome.IDLE_TIMEOUT,
    "the peer took none of its answers for {limits.idle_timeout:g} s",
)
"""An idle expiry while answers wait: the peer may have sent, but read nothing."""

_NEVER = Deadline(math.inf, Expiry.IDLE)


TIMER_FIELDS = (
    "_deadline",
    "_deadline_stale",
    "_fixed_deadline",
    "_header_due",
    "_held_up_since",
    "_idle_deadline",
    "_payload_bytes",
    "_payload_since",
    "_waiting_for_budget",
)
"""The slots of `EchoProtocol` that this part keeps."""


class Timers:
    """The deadlines of a connection: a part of `EchoProtocol`.

    The idle deadline moves forward at most once per granularity
    (`Limits.idle_granularity`), so that a pump need not move its timer on
    every read: an idle connection is closed between ``idle_timeout`` and
    ``idle_timeout`` plus the granularity after its last byte.

    The payload timer is the framing step's to set (`_payload_since`,
    `_payload_bytes`), message by message; the rest moves through the
    methods here. Its fields are `TIMER_FIELDS`, slots of the protocol.
    """

    if not TYPE_CHECKING:  # its fields are the protocol's slots
        __slots__ = ()

    _limits: Limits
    _out: deque[bytes] | None  # the answers not yet sent (`Outbox`)
    _deadline: Deadline
    _deadline_stale: bool
    _fixed_deadline: Deadline | None  # overrides the others: the handshake's or the linger's
    _header_due: float | None  # when the length prefix in progress began, if one is due
    _held_up_since: float | None
    _idle_deadline: float
    _payload_bytes: int  # bytes of the payload in progress received so far
    _payload_since: float | None  # when the payload in progress began, if one has
    _waiting_for_budget: bool

    def _start_timers(self, now: float, *, handshake: bool, header_from_start: bool) -> None:
        limits = self._limits
        self._idle_deadline = now + limits.idle_timeout + limits.idle_granularity
        self._header_due = now if header_from_start and not handshake else None
        self._payload_since = None
        self._payload_bytes = 0
        self._fixed_deadline = (
            Deadline(now + limits.handshake_timeout, Expiry.HANDSHAKE) if handshake else None
        )
        self._held_up_since = None
        self._waiting_for_budget = False
        self._deadline = _NEVER
        self._deadline_stale = True  # worked out when asked for: a pump may never ask

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

    def budget_short(self, now: float) -> bool:
        """Report that the memory budget the pump shares has no room for the read asked for.

        Waiting for the budget while holding part of it could deadlock: so
        a connection waits for it only when it holds nothing but a length
        prefix's digits.

        Returns:
            True: wait for the budget, and report `budget_granted` (as
            `budget_wait`). False: answers wait to be sent; wait for the
            peer to take some, then ask `next_action` again. The server
            holds the connection up meanwhile: its header and data-rate
            timers stop, and its idle timer goes on (a peer that does not
            read is idle).
        """
        if self._out:
            self._hold_up(now)
            return False
        self.budget_wait(now)
        return True

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

    def _expiry_ending(self) -> tuple[Outcome, str] | None:
        """What the passing of `deadline` ends the connection with, and says."""
        expiry = self.deadline.expiry
        if expiry is Expiry.IDLE and self._out:
            return _NOT_TAKEN  # what it received while they waited did not count
        return EXPIRY_OUTCOMES.get(expiry)

    def _received(self, now: float) -> None:
        """Bytes came in: progress, unless answers wait for the peer to take them.

        A peer that sends but never reads would otherwise keep its answers
        held for ever, a message now and then keeping the idle timer away.
        """
        if not self._out:
            self._progress(now)

    def _progress(self, now: float) -> None:
        """Bytes moved: push the idle deadline on, now and then."""
        limits = self._limits
        if now + limits.idle_timeout >= self._idle_deadline:
            self._idle_deadline = now + limits.idle_timeout + limits.idle_granularity
            self._deadline_stale = True

    def _handshake_timer_done(self, now: float, *, header_due: bool) -> None:
        """The handshake ended well; a length prefix is due from now if ``header_due``."""
        self._fixed_deadline = None
        if header_due:
            self._header_due = now
        self._deadline_stale = True

    def _framing_timers(self, now: float, *, header_begun: bool) -> None:
        """A step of framing ended; part of a length prefix is in if ``header_begun``."""
        if header_begun and self._header_due is None:
            self._header_due = now  # a framed message's prefix has begun
        self._deadline_stale = True

    def _reading_timers_over(self) -> None:
        """Reading for the protocol is over: no prefix or payload is due."""
        self._header_due = self._payload_since = None
        self._deadline_stale = True

    def _linger_timer(self, now: float) -> None:
        """The connection lingers: only the linger time applies from now."""
        self._fixed_deadline = Deadline(now + self._limits.linger_timeout, Expiry.LINGER)
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

    def _update_deadline(self) -> None:
        """Set `deadline` to the earliest timer that applies, and say which."""
        if self._fixed_deadline is not None:
            self._deadline = self._fixed_deadline
            return
        limits = self._limits
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
