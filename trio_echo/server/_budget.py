# The memory budget that every connection of a server shares.
#
# A connection reserves bytes before it reads, so the bytes a read returns
# are always paid for, and gives back what it no longer holds (its
# EchoProtocol says how much that is): its Account keeps that charge. Past
# the budget, readers wait, and TCP pushes back on their peers.
#
# Waiters are served in the order they came, and a release hands the freed
# bytes straight to as many waiters as they cover: nobody is woken to find
# the room taken (no thundering herd), and a newcomer cannot take room ahead
# of those already waiting.
from __future__ import annotations

from collections import deque

import attrs
import trio

__all__ = ["Account", "MemoryBudget"]


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
        self._used = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def total(self) -> int:
        """The bytes available in all."""
        return self._total

    @property
    def used(self) -> int:
        """The bytes reserved now."""
        return self._used

    @property
    def waiting(self) -> int:
        """How many reservations are waiting for room."""
        return len(self._waiters)

    def try_reserve(self, wanted: int, minimum: int = 1) -> int:
        """Reserve between ``minimum`` and ``wanted`` bytes, if that is free now.

        Nothing is granted while others wait: they are served first.

        Returns:
            How many bytes were reserved; 0 if not enough is free.
        """
        free = self._total - self._used
        if self._waiters or free < min(minimum, wanted):
            return 0
        granted = wanted if wanted <= free else free
        self._used += granted
        return granted

    async def reserve(self, wanted: int, minimum: int = 1) -> int:
        """Reserve between ``minimum`` and ``wanted`` bytes, waiting in turn.

        Args:
            wanted: The most bytes to reserve; at least 1.
            minimum: The fewest bytes worth having (at most ``wanted``).

        Returns:
            How many bytes were reserved.
        """
        granted = self.try_reserve(wanted, minimum)
        if granted:
            await trio.lowlevel.checkpoint()
            return granted
        await trio.lowlevel.checkpoint_if_cancelled()
        waiter = _Waiter(trio.lowlevel.current_task(), wanted, min(minimum, wanted))
        self._waiters.append(waiter)

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            self._waiters.remove(waiter)
            self._serve()  # the next one in line may fit now
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return waiter.granted

    def take(self, count: int) -> None:
        """Charge ``count`` bytes at once, without waiting.

        For the few bytes a connection holds beyond what it reserved (a
        buffer's overhead, a length prefix carried over); the budget may then
        be exceeded by that much until they are released.
        """
        self._used += count

    def release(self, count: int) -> None:
        """Give back ``count`` reserved bytes, and serve those waiting in turn."""
        self._used -= count
        if self._waiters:
            self._serve()

    def _serve(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            free = self._total - self._used
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
    own count) and, before each read, what the read may bring in
    (`reserve_nowait`, else `reserve`), each read's bytes and the overhead
    of the buffer that will hold them.

    Args:
        budget: The budget shared with the server's other connections.
        overhead: Bytes charged for a read's buffer, besides its contents.
        minimum: The fewest bytes worth a read when the budget is short.
    """

    __slots__ = ("_budget", "_charged", "_minimum", "_overhead", "_reserved")

    def __init__(self, budget: MemoryBudget, *, overhead: int, minimum: int = MIN_GRANT) -> None:
        self._budget = budget
        self._overhead = overhead
        self._minimum = minimum
        self._charged = 0  # what is held, and the reservation
        self._reserved = 0  # of which, for the read under way

    def reserve_nowait(self, max_bytes: int) -> int:
        """Reserve for a read of at most ``max_bytes``, if the budget has room now.

        Returns:
            How many bytes the read may take; 0 if there is no room.
        """
        overhead = self._overhead
        granted = self._budget.try_reserve(max_bytes + overhead, overhead + self._minimum)
        return self._granted(granted)

    async def reserve(self, max_bytes: int) -> int:
        """Reserve for a read of at most ``max_bytes``, waiting in turn for room.

        Returns:
            How many bytes the read may take.
        """
        granted = await self._budget.reserve(*self._wanted(max_bytes))
        return self._granted(granted)

    def settle(self, held: int) -> None:
        """Charge exactly ``held`` bytes (and no reservation any more)."""
        self._reserved = 0
        self.hold(held)

    def hold(self, held: int) -> None:
        """Charge ``held`` bytes besides the reservation of the read under way."""
        target = held + self._reserved
        change = target - self._charged
        if change > 0:
            self._budget.take(change)
        elif change < 0:
            self._budget.release(-change)
        self._charged = target

    def _wanted(self, max_bytes: int) -> tuple[int, int]:
        return max_bytes + self._overhead, self._overhead + min(max_bytes, self._minimum)

    def _granted(self, granted: int) -> int:
        if not granted:
            return 0
        self._reserved = granted
        self._charged += granted
        return granted - self._overhead
