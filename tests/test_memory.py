"""The memory budget: exact, in order, a reserve for small requests, and no herd."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_echo import MemoryBudget
from trio_echo.server._budget import ONE_READ

MiB = 1024 * 1024


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


async def test_a_large_request_may_not_take_the_reserve_and_a_small_one_may() -> None:
    budget = MemoryBudget(4 * MiB)  # its reserve: 1 MiB
    assert budget.kept == MiB
    assert budget.try_reserve(3 * MiB, 3 * MiB, large=True) == 3 * MiB
    assert budget.try_reserve(1, 1, large=True) == 0  # the rest is the reserve
    assert budget.try_reserve(64 * 1024) == 64 * 1024  # small: it may
    budget.release(3 * MiB, 3 * MiB)  # what was granted as large
    assert budget.try_reserve(3 * MiB, 1, large=True) == 3 * MiB  # small ones hold the reserve


async def test_a_small_request_passes_a_large_one_that_does_not_fit_yet() -> None:
    budget = MemoryBudget(4 * MiB)
    assert budget.try_reserve(2 * MiB, large=True) == 2 * MiB
    order: list[str] = []

    async def wait(name: str, wanted: int, *, large: bool) -> None:
        await budget.reserve(wanted, wanted, large=large)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(wait, "large", 2 * MiB, large=True))
        await trio.testing.wait_all_tasks_blocked()
        assert budget.waiting == 1
        await wait("small", 4096, large=False)  # at once, from the reserve
        assert order == ["small"]
        budget.release(2 * MiB, 2 * MiB)  # room for the large one: served first
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["small", "large"]
        assert budget.used == 2 * MiB + 4096


async def test_a_release_serves_large_waiters_before_small_ones() -> None:
    budget = MemoryBudget(4 * MiB)
    assert budget.try_reserve(4 * MiB) == 4 * MiB  # full
    order: list[str] = []

    async def wait(name: str, wanted: int, *, large: bool) -> None:
        await budget.reserve(wanted, wanted, large=large)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(wait, "small", MiB, large=False))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(functools.partial(wait, "large", MiB, large=True))
        await trio.testing.wait_all_tasks_blocked()
        budget.release(2 * MiB)  # room for one of them outside the reserve, and one in it
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(order) == ["large", "small"]
        assert budget.used == 4 * MiB


def test_the_most_one_request_could_have() -> None:
    budget = MemoryBudget(4 * MiB)
    assert budget.largest(100) == 100
    assert budget.largest(100 * MiB) == 3 * MiB  # a large one: never the reserve
    assert MemoryBudget(64 * 1024).largest(MiB) == 64 * 1024  # a tiny budget: all of it
    assert MemoryBudget(MiB // 2).largest(MiB) == ONE_READ  # its reserve leaves less than a read


async def test_a_request_cancelled_before_it_waits_takes_nothing() -> None:
    budget = MemoryBudget(100)
    with trio.CancelScope() as scope:
        scope.cancel()
        await budget.reserve(10)  # there is room: granted, then cancelled at the checkpoint?
    assert scope.cancelled_caught
    assert budget.used == 0  # never granted


def test_a_budget_needs_a_byte() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        MemoryBudget(0)
