# The memory budget that every connection of a server shares.
#
# It cannot deadlock, by construction: no connection holds part of the
# budget while it waits for more of it.
#
# - A connection waits for the budget only while it holds nothing: its
#   answers are out (it waits for its peer to take them first), and what is
#   left is at most a length prefix's few digits, which it gives back while
#   it waits and are charged again with what it is granted.
# - A connection that holds budget never waits for more: it grows only into
#   room that is free at once, and otherwise waits for its peer to take its
#   answers, as TCP's own backpressure would have it.
# - A message whose length is known (count and framed modes) is admitted
#   whole, all or nothing, on top of what the connection holds: once
#   admitted, it has the room to complete whatever its peer does, and asks
#   nothing more until it is in.
#
# So the room a waiter needs is held only by connections that are not
# waiting for it, and each of those gives it back: its message completes,
# its peer takes its answers, or a timeout ends it.
#
# Requests are of two sizes, each served in the order they came:
#
# - small: the connection will hold at most ONE_READ. It may take room
#   anywhere in the budget, and a read may be granted in part.
# - large: the connection will hold more (a whole large message, or answers
#   its peer is slow to take). What large requests hold together may not
#   take the reserve, the larger of 1 MiB and a sixteenth of the budget: it
#   is kept for small ones, so a client that needs little is served at once
#   while the budget is full of large messages. (What small ones hold does
#   not count against the large ones' room, except beyond the budget.)
#
# A release hands the freed bytes straight to as many waiters as they
# cover, large ones first: nobody is woken to find the room taken, and a
# small one may pass a large one that does not fit yet. Only a large request
# waits to be admitted whole; a small one that does not fit is served read
# by read.
from __future__ import annotations

from collections import deque

import attrs
import trio

from ..protocol import BUFFER_OVERHEAD, READ_SIZE_MAX

__all__ = ["ONE_READ", "Account", "MemoryBudget", "reserve_of"]

MiB = 1024 * 1024

ONE_READ = READ_SIZE_MAX + 4 * BUFFER_OVERHEAD
"""A connection that holds at most this (a full read, and what holding it
costs) needs little: its requests are small."""


def reserve_of(total: int) -> int:
    """The room of a budget of ``total`` bytes that only small requests may take.

    The larger of 1 MiB and a sixteenth of the budget, and at most half of it.
    """
    return min(total // 2, max(MiB, total // 16))


@attrs.define(eq=False)
class _Waiter:
    task: trio.lowlevel.Task
    wanted: int
    minimum: int
    granted: int = 0


class MemoryBudget:
    """A number of bytes shared by every connection of a server.

    Args:
        total: The bytes available in all; at least 1.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a memory budget needs at least one byte, not {total}")
        self._total = total
        self._reserve = reserve_of(total)
        self._used = 0
        self._large_used = 0  # of which, granted to large requests
        self._small: deque[_Waiter] = deque()
        self._large: deque[_Waiter] = deque()

    @property
    def total(self) -> int:
        """The bytes available in all."""
        return self._total

    @property
    def kept(self) -> int:
        """The bytes that only small requests may take (`reserve_of`)."""
        return self._reserve

    @property
    def used(self) -> int:
        """The bytes reserved now."""
        return self._used

    @property
    def large_used(self) -> int:
        """The bytes reserved now by large requests."""
        return self._large_used

    @property
    def waiting(self) -> int:
        """How many requests are waiting for room."""
        return len(self._small) + len(self._large)

    def largest(self, wanted: int) -> int:
        """The most of ``wanted`` that one request could ever be granted.

        A small request may have the whole budget; a large one, the budget
        less its reserve (where that is no more than a read, a large request
        is made small: one read, within the budget).
        """
        large_room = self._total - self._reserve
        if wanted > ONE_READ and large_room > ONE_READ:
            return min(wanted, large_room)
        return min(wanted, ONE_READ, self._total)

    def try_reserve(self, wanted: int, minimum: int = 1, large: bool = False) -> int:
        """Reserve between ``minimum`` and ``wanted`` bytes, if that is free now.

        Nothing is granted while others of the same size wait: they are
        served first.

        Args:
            wanted: The most bytes to reserve; at least 1.
            minimum: The fewest bytes worth having (at most ``wanted``).
            large: Whether the request is large: it may not take the reserve.

        Returns:
            How many bytes were reserved; 0 if not enough is free. Release
            them with ``release(count, large)``.
        """
        if not self.fits(minimum if minimum < wanted else wanted, large):
            return 0
        if large:
            return self._grant(wanted, True)
        free = self._total - self._used
        granted = wanted if wanted <= free else free
        self._used += granted
        return granted

    def fits(self, size: int, large: bool = False) -> bool:
        """Whether ``size`` bytes could be reserved now, without waiting.

        Args:
            size: The bytes wanted.
            large: Whether the request is large: it may not take the reserve.

        Returns:
            Whether they are free, and nobody of the same size waits (they
            are served first).
        """
        if large:
            return not self._large and self._free(True) >= size
        return not self._small and self._total - self._used >= size

    async def reserve(self, wanted: int, minimum: int = 1, *, large: bool = False) -> int:
        """Reserve between ``minimum`` and ``wanted`` bytes, waiting in turn.

        Args:
            wanted: The most bytes to reserve; at least 1, and at most
                `largest` of itself (or it waits for ever).
            minimum: The fewest bytes worth having (at most ``wanted``).
            large: Whether the request is large: it may not take the reserve.

        Returns:
            How many bytes were reserved.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if granted := self.try_reserve(wanted, minimum, large):
            await trio.lowlevel.cancel_shielded_checkpoint()  # what is granted is kept
            return granted
        waiter = _Waiter(trio.lowlevel.current_task(), wanted, min(minimum, wanted))
        line = self._large if large else self._small
        line.append(waiter)

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            line.remove(waiter)
            self._serve()  # the next one in line may fit now
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return waiter.granted

    def take(self, count: int, large: int = 0) -> None:
        """Charge ``count`` bytes at once, without waiting (``large`` of them as large).

        For the bytes a connection holds beyond what it reserved (a read's
        chunk while answers are made from it; what a read that could not
        reserve brought in); the budget may then be exceeded by that much
        until they are released.
        """
        self._used += count
        self._large_used += large

    def release(self, count: int, large: int = 0) -> None:
        """Give back ``count`` reserved bytes (``large`` of them granted as large)."""
        self._used -= count
        self._large_used -= large
        if self._small or self._large:
            self._serve()

    def _free(self, large: bool) -> int:
        free = self._total - self._used
        if large:
            return min(free, self._total - self._reserve - self._large_used)
        return free

    def _grant(self, wanted: int, large: bool) -> int:
        free = self._free(large)
        granted = wanted if wanted <= free else free
        self._used += granted
        if large:
            self._large_used += granted
        return granted

    def _serve(self) -> None:
        self._serve_line(self._large, True)
        self._serve_line(self._small, False)

    def _serve_line(self, waiters: deque[_Waiter], large: bool) -> None:
        while waiters:
            waiter = waiters[0]
            if self._free(large) < waiter.minimum:
                return
            waiter.granted = self._grant(waiter.wanted, large)
            waiters.popleft()
            trio.lowlevel.reschedule(waiter.task)


MIN_GRANT = 1024
"""The fewest bytes worth a read when the memory budget is short."""


class Account:
    """One connection's charge on a `MemoryBudget`.

    It charges what the connection holds (`settle`, with the connection's
    own count), and besides:

    - before each read, room for what the read may bring in
      (`reserve_nowait`, else `reserve`), each read's bytes and the
      overhead of the buffer that will hold them;
    - for a message whose length is known, room for all of it
      (`admit_nowait`, else `admit`), kept until `message_in`.

    A read's buffer is charged `BUFFER_OVERHEAD` besides its contents, as
    the protocol charges what it holds; a read is worth making with
    `MIN_GRANT` bytes at least.

    Args:
        budget: The budget shared with the server's other connections.
    """

    __slots__ = ("_budget", "_charged", "_floor", "_held", "_large", "admitted")

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self._charged = 0  # what the budget has from this account
        self._large = 0  # of which, granted as large
        self._held = 0  # what the connection holds, as last settled
        self._floor = 0  # room kept for the admitted message, whatever it holds
        self.admitted = 0
        """The number of the message admitted whole (counted from 1); 0 if none."""

    @property
    def charged(self) -> int:
        """What the budget has from this account."""
        return self._charged

    def reserve_nowait(self, max_bytes: int) -> int:
        """Make room for a read of at most ``max_bytes``, if there is room now.

        Within an admitted message's room, this asks nothing of the budget.
        A read that takes the charge past one read is large: all of it, or
        nothing.

        Returns:
            How many bytes the read may take; 0 if there is no room.
        """
        charged = self._charged
        room = charged - self._held - BUFFER_OVERHEAD
        if room >= max_bytes:
            return max_bytes
        least = max_bytes if max_bytes < MIN_GRANT else MIN_GRANT
        if room < least:  # ask the budget for the rest
            wanted = max_bytes - room
            if charged + wanted > ONE_READ:
                if not self._budget.try_reserve(wanted, wanted, True):
                    return 0
                self._charged = charged + wanted
                self._reclass(wanted)
                return max_bytes
            if not (granted := self._budget.try_reserve(wanted, least - room)):
                return 0
            self._charged = charged + granted
            room += granted
        return max_bytes if room > max_bytes else room

    def room_now(self, max_bytes: int) -> bool:
        """Whether a read of ``max_bytes`` would find room now, taking none.

        For a read whose bytes go straight back (`Receive.echo`): nothing of
        it outlives the step unless its send is short, and `settle` charges
        what is left then, before any other task runs, into the room seen
        here. As `reserve_nowait`, it leaves room for those waiting in line.
        """
        room = self._charged - self._held - BUFFER_OVERHEAD
        if room >= max_bytes:
            return True
        wanted = max_bytes - room
        return self._budget.fits(wanted, self._charged + wanted > ONE_READ)

    async def reserve(self, max_bytes: int) -> int:
        """Make room for a read of at most ``max_bytes``, waiting in turn.

        Only for a connection that holds nothing but a length prefix's
        digits: it gives them back while it waits.

        Returns:
            How many bytes the read may take.
        """
        held = self._held
        least = held + BUFFER_OVERHEAD + min(max_bytes, MIN_GRANT)
        wanted = max(least, self._budget.largest(held + max_bytes + BUFFER_OVERHEAD))
        await self._wait(wanted, least)
        return min(max_bytes, self._charged - held - BUFFER_OVERHEAD)

    def admit_nowait(self, need: int, message: int) -> bool:
        """Make room for the whole of message number ``message``, if there is room now.

        Args:
            need: The most the connection may hold until the message is in.
            message: The message's number, counted from 1.

        Returns:
            Whether it was admitted.
        """
        need = self._budget.largest(need)
        wanted = need - self._charged
        large = need > ONE_READ
        if wanted > 0 and not self._budget.try_reserve(wanted, wanted, large):
            return False
        self.admitted, self._floor = message, need
        if wanted > 0:
            self._charged = need
            self._reclass(wanted if large else 0)
        self.settle(self._held)
        return True

    async def admit(self, need: int, message: int) -> None:
        """Make room for the whole of message number ``message``, waiting in turn.

        Only for a connection that holds nothing but a length prefix's
        digits: it gives them back while it waits.
        """
        need = self._budget.largest(need)
        await self._wait(need, need)
        self.admitted, self._floor = message, need
        self.settle(self._held)

    def message_in(self) -> None:
        """The admitted message is in: keep no room for it any more."""
        self.admitted = self._floor = 0
        self.settle(self._held)

    def settle(self, held: int) -> None:
        """Charge the ``held`` bytes the connection holds, and the admitted room."""
        self._held = held
        floor = self._floor
        target = held if held > floor else floor
        # its large part (`_large_part`, inline: this runs for every read)
        large = target if floor > ONE_READ else target - ONE_READ if target > ONE_READ else 0
        charged = self._charged
        if target != charged or large != self._large:
            if target > charged or (target == charged and large > self._large):
                self._budget.take(target - charged, large - self._large)
            else:
                self._budget.release(charged - target, self._large - large)
            self._charged, self._large = target, large

    def close(self) -> None:
        """The connection has ended: it holds nothing."""
        self.admitted = self._floor = 0
        self.settle(0)

    def _large_part(self, charge: int) -> int:
        """The part of ``charge`` that is large.

        All of it while a large message is admitted, else what is past one read.
        """
        if self._floor > ONE_READ:
            return charge
        return charge - ONE_READ if charge > ONE_READ else 0

    def _reclass(self, granted_large: int) -> None:
        """After a grant of which ``granted_large`` counted as large, count its large part."""
        large = self._large_part(self._charged)
        if (change := large - self._large - granted_large) != 0:
            self._budget.take(0, change)
        self._large = large

    async def _wait(self, wanted: int, least: int) -> None:
        """Give back what is charged, then wait in turn for between ``least`` and ``wanted``."""
        self._budget.release(self._charged, self._large)
        self._charged = self._large = 0
        large = least > ONE_READ
        self._charged = await self._budget.reserve(wanted, least, large=large)
        self._large = self._charged if large else 0
