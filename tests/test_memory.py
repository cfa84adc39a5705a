"""The memory budget: exact, served in order, and woken without a herd."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_echo import MemoryBudget


class Wakeups(trio.abc.Instrument):
    """Counts the tasks trio schedules to run."""

    def __init__(self) -> None:
        self.count = 0

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def test_a_release_wakes_only_the_waiters_it_can_serve() -> None:
    budget = MemoryBudget(1000 * 4096)
    assert budget.try_reserve(1000 * 4096) == 1000 * 4096  # full
    joined: list[int] = []  # the order of the line (trio starts tasks in any order)
    served: list[int] = []

    async def wait(index: int) -> None:
        joined.append(index)
        await budget.reserve(4096, 4096)
        served.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(1000):
            nursery.start_soon(wait, index)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.waiting == 1000
        wakeups = Wakeups()
        trio.lowlevel.add_instrument(wakeups)
        budget.release(3 * 4096)  # room for three
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.remove_instrument(wakeups)
        # The first three in line, and nobody else (at most the one next in
        # line may be woken in vain). trio runs the woken in any order.
        assert sorted(served) == sorted(joined[:3])
        assert wakeups.count <= 3 + 1
        assert budget.used == 1000 * 4096
        nursery.cancel_scope.cancel()


async def test_waiters_are_served_in_order_and_newcomers_wait_their_turn() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(100) == 100
    order: list[str] = []

    async def wait(name: str, wanted: int) -> None:
        await budget.reserve(wanted, wanted)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, "big", 80)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wait, "small", 10)
        await trio.testing.wait_all_tasks_blocked()
        budget.release(20)  # enough for "small", but "big" is first in line
        assert budget.try_reserve(10) == 0  # nor may a newcomer jump the queue
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
        assert budget.waiting == 2
        budget.release(80)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order) == ["big", "small"]
        assert budget.used == 90


async def test_a_grant_is_at_least_the_minimum_and_at_most_what_is_wanted() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(70) == 70
    assert budget.try_reserve(50, 40) == 0  # 30 free: less than the minimum
    assert budget.try_reserve(50, 20) == 30
    budget.release(100)
    assert await budget.reserve(500) == 100


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    budget = MemoryBudget(10)
    budget.try_reserve(10)
    got: list[int] = []

    async def wait() -> None:
        got.append(await budget.reserve(5, 5))

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as first:
            nursery.start_soon(wait)  # runs outside the scope: a waiter that stays
            await trio.testing.wait_all_tasks_blocked()
        first.cancel()
        with trio.move_on_after(0) as scope:
            await budget.reserve(8, 8)
        assert scope.cancelled_caught
        assert budget.waiting == 1
        budget.release(5)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [5]


def test_a_budget_needs_a_byte() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        MemoryBudget(0)
