# What the signals mean, for a server and for the supervisor of its workers
# alike:
#
# - SIGINT, SIGTERM and SIGHUP ask for a drain (stop accepting, let open
#   connections finish within the grace period); one that comes after the
#   drain has begun cuts what is left at once.
# - SIGQUIT cuts at once. It is the cut that is never lost: the kernel merges
#   two deliveries of one signal that arrive before either is handled, so a
#   second SIGTERM sent right after the first may never be seen, but a
#   SIGQUIT is a signal of its own.
# - SIGUSR1 loads the TLS certificate and key again (a supervisor reads
#   them, and hands the pair it accepted to its workers). One that comes
#   while the server starts is ignored: the files are read when it starts.
#
# Before the server handles them itself (while it imports, parses and
# binds), the command line records them (`install_early_handlers`), and
# hands them over when it starts handling them.
from __future__ import annotations

import enum
import signal
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio

__all__ = [
    "CUT_SIGNAL",
    "DRAIN_SIGNALS",
    "RELOAD_SIGNAL",
    "SHUTDOWN_SIGNALS",
    "early_signals",
    "handle_reload_signal",
    "handle_shutdown_signals",
    "install_early_handlers",
    "restore_default_handlers",
    "signal_name",
]

DRAIN_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
CUT_SIGNAL = getattr(signal, "SIGQUIT", None)
"""SIGQUIT; None where there is no such signal (Windows)."""
SHUTDOWN_SIGNALS = (*DRAIN_SIGNALS, *([CUT_SIGNAL] if CUT_SIGNAL is not None else []))
RELOAD_SIGNAL = getattr(signal, "SIGUSR1", None)
"""SIGUSR1, which reloads the TLS certificate; None where there is no such
signal (Windows)."""

_early: list[int] = []
_ignored: set[int] = set()
"""Shutdown signals this process was started with ignored (``nohup`` ignores
SIGHUP): they stay ignored."""


def _handled() -> list[int]:
    return [signum for signum in SHUTDOWN_SIGNALS if signum not in _ignored]


def _record(signum: int, _frame: FrameType | None) -> None:
    _early.append(signum)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    pass


def install_early_handlers() -> None:
    """Record the shutdown signals from now on, instead of dying of them.

    Also unblocks them, should this process have been started with them
    blocked (a mask is inherited across ``exec``). A signal the process was
    started with ignored stays ignored (``nohup`` ignores SIGHUP).
    """
    for signum in SHUTDOWN_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_IGN:
            _ignored.add(signum)  # as it was asked to be, by whoever started it
        else:
            signal.signal(signum, _record)
    if RELOAD_SIGNAL is not None and signal.getsignal(RELOAD_SIGNAL) == signal.SIG_DFL:
        signal.signal(RELOAD_SIGNAL, _ignore)  # not SIG_IGN, which a child would inherit
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _handled())


def early_signals() -> list[int]:
    """The shutdown signals recorded so far and not yet handled, oldest first."""
    return list(_early)


def restore_default_handlers() -> None:
    """Let the shutdown signals act as in any program again.

    SIGINT raises `KeyboardInterrupt`, the others end the process; those
    recorded meanwhile are raised again now. For a command that has no
    drain, such as the client.
    """
    for sig in SHUTDOWN_SIGNALS:
        if signal.getsignal(sig) is _record:
            default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, default)
    if RELOAD_SIGNAL is not None and signal.getsignal(RELOAD_SIGNAL) is _ignore:
        signal.signal(RELOAD_SIGNAL, signal.SIG_DFL)
    early = list(_early)
    _early.clear()
    for signum in early:
        signal.raise_signal(signum)


def signal_name(signum: int) -> str:
    """``SIGTERM``, for the signal's number."""
    return signal.Signals(signum).name


class _Stage(enum.Enum):
    SERVING = enum.auto()
    DRAINING = enum.auto()
    CUT = enum.auto()


async def handle_shutdown_signals(
    drain: Callable[[str], object],
    cut: Callable[[str], object],
    *,
    task_status: trio.TaskStatus[None] | None = None,
) -> None:
    """Call ``drain`` on the first drain signal, ``cut`` when it is time to cut.

    Runs until cancelled; start it with ``nursery.start``, which returns once
    the signals are caught. Signals recorded by `install_early_handlers` are
    handled first, in order.

    Args:
        drain: Called with the signal's name (``"SIGTERM"``) when a drain
            begins.
        cut: Called with the signal's name when the connections are to be
            cut: on SIGQUIT, or on a drain signal once draining; once.
        task_status: Started once the signals are caught.
    """
    stage = _Stage.SERVING

    def handle(signals: Iterable[int]) -> None:
        nonlocal stage
        for signum in signals:
            if stage is _Stage.CUT:
                return
            if signum == CUT_SIGNAL or stage is _Stage.DRAINING:
                stage = _Stage.CUT
                cut(signal_name(signum))
            else:
                stage = _Stage.DRAINING
                drain(signal_name(signum))

    import trio  # noqa: PLC0415 (this module is imported before trio: see above)

    if not _handled():  # every one was ignored by whoever started us: nothing to wait for
        if task_status is not None:
            task_status.started()
        await trio.sleep_forever()
    with trio.open_signal_receiver(*_handled()) as received:
        if task_status is not None:
            task_status.started()
        early = list(_early)
        _early.clear()
        handle(early)
        async for signum in received:
            handle([signum])


async def handle_reload_signal(
    reload: Callable[[], Awaitable[object]],
    *,
    task_status: trio.TaskStatus[None] | None = None,
) -> None:
    """Await ``reload()`` on each `RELOAD_SIGNAL`, one at a time.

    Runs until cancelled; start it with ``nursery.start``. Where there is no
    such signal, it only waits.
    """
    import trio  # noqa: PLC0415 (this module is imported before trio: see above)

    if RELOAD_SIGNAL is None:
        if task_status is not None:
            task_status.started()
        await trio.sleep_forever()
    with trio.open_signal_receiver(RELOAD_SIGNAL) as received:
        if task_status is not None:
            task_status.started()
        async for _signum in received:
            await reload()
