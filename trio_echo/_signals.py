# What SIGINT and SIGTERM mean, for a server and for the supervisor of its
# workers alike: the first asks for a drain (stop accepting, let open
# connections finish), every later one cuts what is left at once.
from __future__ import annotations

import signal
from collections.abc import Callable

import trio

__all__ = ["SHUTDOWN_SIGNALS", "handle_shutdown_signals"]

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def handle_shutdown_signals(
    drain: Callable[[str], object],
    cut: Callable[[str], object],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``drain`` on the first shutdown signal, ``cut`` on each later one.

    Runs until cancelled; start it with ``nursery.start``, which returns once
    the signals are caught.

    Args:
        drain: Called with the signal's name (``"SIGTERM"``) the first time.
        cut: Called with the signal's name every time after that.
        task_status: Started once the signals are caught.
    """
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:
        task_status.started()
        received = 0
        async for signum in signals:
            received += 1
            name = signal.Signals(signum).name
            if received == 1:
                drain(name)
            else:
                cut(name)
