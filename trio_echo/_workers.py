# A worker per core: N single-threaded trio servers under one supervising
# parent. The parent does no serving and runs no event loop: it starts the
# workers, restarts one that dies (logging why, and backing off if it dies at
# once), passes SIGINT/SIGTERM on to every worker (each drains as a single
# server does), and exits when they all have.
#
# Workers share the port either through SO_REUSEPORT (each binds its own
# socket and the kernel spreads connections over them) or, where sockets were
# handed over (systemd, --fd), by inheriting the same listening sockets.
from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = ["Supervisor"]

logger = logging.getLogger("trio_echo.workers")

READY_TIMEOUT = 30.0
"""Seconds a worker has to print its 'listening on' line."""

RESTART_DELAY = 0.5
"""Seconds before restarting a worker that died; doubled (up to 30 s) while
workers keep dying within a second of their start."""


class WorkerStartError(RuntimeError):
    """A worker did not start listening."""


class _Worker:
    def __init__(self, number: int) -> None:
        self.number = number
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.delay = RESTART_DELAY
        self.restart_at: float | None = None


class Supervisor:
    """Runs ``count`` copies of a server command and keeps them running.

    Args:
        command: The worker's command line.
        count: How many workers.
        pass_fds: File descriptors the workers inherit (listening sockets).
    """

    def __init__(self, command: Sequence[str], count: int, *, pass_fds: Sequence[int] = ()) -> None:
        self._command = list(command)
        self._workers = [_Worker(number) for number in range(1, count + 1)]
        self._pass_fds = tuple(pass_fds)
        self._signals: list[int] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [w.process.pid for w in self._workers if w.process and w.process.poll() is None]

    def start(self) -> None:
        """Start every worker and wait until each listens.

        Raises:
            WorkerStartError: If a worker exits or stays silent instead.
        """
        for worker in self._workers:
            self._spawn(worker)

    def _spawn(self, worker: _Worker) -> None:
        process = subprocess.Popen(
            self._command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            pass_fds=self._pass_fds,
        )
        worker.process = process
        worker.started = time.monotonic()
        worker.restart_at = None
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
        line = process.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith("listening on"):
            process.kill()
            process.wait()
            raise WorkerStartError(
                f"worker {worker.number} did not start (exit status {process.returncode})"
            )
        logger.info("worker %d (pid %d) started", worker.number, process.pid)

    def run(self, on_signal: Callable[[int, int], None] | None = None) -> int:
        """Supervise until a signal stops every worker; return 0.

        SIGINT and SIGTERM are passed on to every worker: the first asks
        them to drain, a second to stop at once.

        Args:
            on_signal: Called with the signal number and how many signals
                have come so far, before they are passed on.
        """

        def record(signum: int, _frame: FrameType | None) -> None:
            self._signals.append(signum)

        previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
        received = 0
        try:
            while True:
                while self._signals:
                    signum = self._signals.pop(0)
                    received += 1
                    self._stopping = True
                    if on_signal is not None:
                        on_signal(signum, received)
                    for pid in self.pids:
                        os.kill(pid, signal.SIGTERM if received == 1 else signal.SIGINT)
                self._reap()
                if self._stopping and not self.pids:
                    return 0
                time.sleep(0.05)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _reap(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            process = worker.process
            if process is None or self._stopping:
                continue
            status = process.poll()
            if status is None:
                continue
            if worker.restart_at is None:
                quick = now - worker.started < 1.0
                worker.delay = min(worker.delay * 2, 30.0) if quick else RESTART_DELAY
                worker.restart_at = now + worker.delay
                logger.error(
                    "worker %d (pid %d) exited with status %d; restarting it in %g s",
                    worker.number,
                    process.pid,
                    status,
                    worker.delay,
                )
            elif now >= worker.restart_at:
                failure = None
                try:
                    self._spawn(worker)
                except WorkerStartError as error:
                    failure = error
                if failure is not None:
                    logger.error("%s; trying again", failure)
                    worker.started = time.monotonic()
                    worker.restart_at = None

    def stop(self) -> None:
        """Kill every worker at once (for cleanup after a failed start)."""
        for worker in self._workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
