# The memory budget that every connection of a server shares.
#
# It cannot deadlock, by construction: no connection holds part of the
# budget while it waits for more of it.
#
# - A connection waits for the budget only while it holds nothing: its
#   answers are out (it waits for its peer to take them first), and what is
#   left is at most a length prefix's few digits, which are charged again
#   with what it is granted.
# - A connection that holds more never waits for the budget: it grows only
#   if the room is free at once, and otherwise waits for its peer to take
#   its answers, as TCP's own backpressure would have it.
# - A message whose length is known (count and framed modes) is admitted
#   whole, all or nothing: once admitted, it has the room to complete
#   whatever its peer does, and never asks again until it is in.
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
#   its peer is slow to take). It may take room only while the budget less
#   its reserve has it. The reserve, the larger of 1 MiB and a sixteenth
#   of the budget, is kept for small requests: a client that needs little
#   is served at once while the budget is full of large messages.
#
# A release hands the freed bytes straight to as many waiters as they
# cover, large ones first: nobody is woken to find the room taken, and a
# small one may pass a large one that does not fit yet.
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
            How many bytes were reserved; 0 if not enough is free.
        """
        if large:
            if self._large:
                return 0
            free = self._total - self._reserve - self._used
        else:
            if self._small:
                return 0
            free = self._total - self._used
        if free < min(minimum, wanted):
            return 0
        granted = wanted if wanted <= free else free
        self._used += granted
        return granted

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
        granted = self.try_reserve(wanted, minimum, large=large)
        if granted:
            await trio.lowlevel.checkpoint()
            return granted
        await trio.lowlevel.checkpoint_if_cancelled()
        waiter = _Waiter(trio.lowlevel.current_task(), wanted, min(minimum, wanted))
        line = self._large if large else self._small
        line.append(waiter)

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            line.remove(waiter)
            self._serve()  # the next one in line may fit now
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return waiter.granted

    def take(self, count: int) -> None:
        """Charge ``count`` bytes at once, without waiting.

        For the few bytes a connection holds beyond what it reserved (a
        read's chunk while answers are made from it, a TLS record); the
        budget may then be exceeded by that much until they are released.
        """
        self._used += count

    def release(self, count: int) -> None:
        """Give back ``count`` reserved bytes, and serve those waiting in turn."""
        self._used -= count
        if self._small or self._large:
            self._serve()

    def _serve(self) -> None:
        self._serve_line(self._large, self._total - self._reserve)
        self._serve_line(self._small, self._total)

    def _serve_line(self, waiters: deque[_Waiter], limit: int) -> None:
        while waiters:
            waiter = waiters[0]
            free = limit - self._used
            if free < waiter.minimum:
                return
            waiter.granted = waiter.wanted if waiter.wanted <= free else free
            self._used += waiter.granted
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

    Args:
        budget: The budget shared with the server's other connections.
        overhead: Bytes charged for a read's buffer, besides its contents.
        minimum: The fewest bytes worth a read when the budget is short.
    """

    __slots__ = ("_budget", "_charged", "_floor", "_held", "_minimum", "_overhead", "admitted")

    def __init__(self, budget: MemoryBudget, *, overhead: int, minimum: int = MIN_GRANT) -> None:
        self._budget = budget
        self._overhead = overhead
        self._minimum = minimum
        self._charged = 0  # what the budget has from this account
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

        Returns:
            How many bytes the read may take; 0 if there is no room.
        """
        charged = self._charged
        room = charged - self._held - self._overhead
        if room >= max_bytes:
            return max_bytes
        least = max_bytes if max_bytes < self._minimum else self._minimum
        if room < least:  # ask the budget for the rest
            wanted = max_bytes - room
            granted = self._budget.try_reserve(wanted, least - room, charged + wanted > ONE_READ)
            if not granted:
                return 0
            self._charged = charged + granted
            room += granted
        return max_bytes if room > max_bytes else room

    async def reserve(self, max_bytes: int) -> int:
        """Make room for a read of at most ``max_bytes``, waiting in turn.

        Only for a connection that holds nothing but a length prefix's
        digits: it gives them back while it waits.

        Returns:
            How many bytes the read may take.
        """
        held, overhead = self._held, self._overhead
        wanted = held + max_bytes + overhead
        least = held + overhead + min(max_bytes, self._minimum)
        wanted = max(least, self._budget.largest(wanted))
        await self._wait(wanted, least)
        return min(max_bytes, self._charged - held - overhead)

    def admit_nowait(self, need: int, message: int) -> bool:
        """Make room for the whole of message number ``message``, if there is room now.

        Args:
            need: The most the connection may hold until the message is in.
            message: The message's number, counted from 1.

        Returns:
            Whether it was admitted.
        """
        need = self._budget.largest(need)
        if (wanted := need - self._charged) > 0:
            if not self._budget.try_reserve(wanted, wanted, large=need > ONE_READ):
                return False
            self._charged = need
        self._admitted(need, message)
        return True

    async def admit(self, need: int, message: int) -> None:
        """Make room for the whole of message number ``message``, waiting in turn.

        Only for a connection that holds nothing but a length prefix's
        digits: it gives them back while it waits.
        """
        need = self._budget.largest(need)
        await self._wait(need, need)
        self._admitted(need, message)

    def message_in(self) -> None:
        """The admitted message is in: keep no room for it any more."""
        self.admitted = self._floor = 0
        self.settle(self._held)

    def settle(self, held: int) -> None:
        """Charge the ``held`` bytes the connection holds, and the admitted room."""
        self._held = held
        target = held if held > self._floor else self._floor
        change = target - self._charged
        if change > 0:
            self._budget.take(change)
        elif change < 0:
            self._budget.release(-change)
        self._charged = target

    def close(self) -> None:
        """The connection has ended: it holds nothing."""
        self.admitted = self._floor = 0
        self.settle(0)

    def _admitted(self, need: int, message: int) -> None:
        self.admitted, self._floor = message, need
        self.settle(self._held)

    async def _wait(self, wanted: int, least: int) -> None:
        """Give back what is charged, then wait in turn for between ``least`` and ``wanted``."""
        budget = self._budget
        budget.release(self._charged)
        self._charged = 0
        self._charged = await budget.reserve(wanted, least, large=least > ONE_READ)
