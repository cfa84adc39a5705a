# A worker per core: N single-threaded trio servers under one supervising
# parent. The parent does no serving: it starts the workers, restarts one that
# dies (logging why, and backing off while workers die at once), and passes a
# drain or a cut on to every worker.
#
# Each worker runs in a session of its own, so that a Ctrl-C in a terminal
# reaches the parent only: the parent then asks each worker to drain once,
# instead of each worker taking the terminal's SIGINT and the parent's
# SIGTERM as two signals (which cuts its connections). So that a worker does
# not outlive a parent that was killed outright, each inherits the read end
# of a pipe whose write end only the parent holds (SUPERVISOR_FD_VARIABLE
# names it): when the parent is gone, the pipe reads as ended, and the
# worker drains.
from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
from collections.abc import Sequence

import trio

__all__ = [
    "SUPERVISOR_FD_VARIABLE",
    "Supervisor",
    "WorkerStartError",
    "supervisor_fd",
    "wait_for_supervisor_exit",
]

logger = logging.getLogger("trio_echo.workers")

READY_TIMEOUT = 30.0
"""Seconds a worker has to print its 'listening on' line."""

RESTART_DELAY = 0.5
"""Seconds before restarting a worker that died; doubled (up to
MAX_RESTART_DELAY) while workers keep dying within a second of their start."""

MAX_RESTART_DELAY = 30.0


SUPERVISOR_FD_VARIABLE = "TRIO_ECHO_SUPERVISOR_FD"
"""The environment variable that tells a worker its supervisor's pipe."""


class WorkerStartError(RuntimeError):
    """A worker did not start listening."""


class Supervisor:
    """Runs ``count`` copies of a server command and keeps them running.

    Start it with ``await nursery.start(supervisor.run)``, which returns once
    every worker listens; `drain` and `cut` pass a shutdown on to them, and
    `run` returns once every worker has exited after one of them.

    Args:
        command: The worker's command line.
        count: How many workers.
        pass_fds: File descriptors the workers inherit (listening sockets).
    """

    def __init__(self, command: Sequence[str], count: int, *, pass_fds: Sequence[int] = ()) -> None:
        self._command = list(command)
        self._count = count
        self._pass_fds = tuple(pass_fds)
        self._parent_alive: int | None = None  # the pipe's read end, while run() runs
        self._processes: dict[int, trio.Process] = {}  # by worker number
        self._stopping = trio.Event()

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers, by worker number."""
        return [
            process.pid
            for _number, process in sorted(self._processes.items())
            if process.returncode is None
        ]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every worker, then keep them running until `drain` or `cut`.

        Args:
            task_status: Started once every worker listens.

        Raises:
            WorkerStartError: If a worker does not start the first time (the
                others are stopped first).
        """
        parent_alive, parent_gone = os.pipe()
        self._parent_alive = parent_alive
        try:
            async with trio.open_nursery() as nursery:
                for number in range(1, self._count + 1):
                    await nursery.start(self._keep_running, number, nursery)
                task_status.started()
        finally:
            os.close(parent_alive)
            os.close(parent_gone)

    def drain(self) -> None:
        """Ask every worker to drain (SIGTERM), and restart none from now on."""
        self._stopping.set()
        self._signal_all()

    def cut(self) -> None:
        """Ask every worker to cut its connections now (a second SIGTERM)."""
        self._stopping.set()
        self._signal_all()

    def _signal_all(self) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)

    async def _keep_running(
        self,
        number: int,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        delay = RESTART_DELAY
        started = False
        while not self._stopping.is_set():
            began = trio.current_time()
            try:
                process = await self._spawn(number, nursery)
            except WorkerStartError as error:
                if not started:
                    raise
                logger.error("%s; trying again in %g s", error, delay)  # noqa: TRY400 (no bug)
            else:
                if not started:
                    started = True
                    task_status.started()
                status = await process.wait()
                if self._stopping.is_set():
                    return
                quick = trio.current_time() - began < 1.0
                delay = min(delay * 2, MAX_RESTART_DELAY) if quick else RESTART_DELAY
                logger.error(
                    "worker %d (pid %d) exited with status %d; restarting it in %g s",
                    number,
                    process.pid,
                    status,
                    delay,
                )
            with trio.move_on_after(delay):
                await self._stopping.wait()

    async def _spawn(self, number: int, nursery: trio.Nursery) -> trio.Process:
        """Start worker ``number`` and wait for its 'listening on' line."""
        parent_alive = self._parent_alive
        assert parent_alive is not None  # set by run()
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=(*self._pass_fds, parent_alive),
                env=dict(os.environ, **{SUPERVISOR_FD_VARIABLE: str(parent_alive)}),
                start_new_session=True,
                check=False,
            )
        )
        self._processes[number] = process
        line = b""
        assert process.stdout is not None
        with trio.move_on_after(READY_TIMEOUT):
            while b"\n" not in line and (data := await process.stdout.receive_some()):
                line += data
        if not line.startswith(b"listening on"):
            process.kill()
            status = await process.wait()
            raise WorkerStartError(f"worker {number} did not start (exit status {status})")
        logger.info("worker %d (pid %d) started", number, process.pid)
        return process


def supervisor_fd(environ: dict[str, str] | None = None) -> int | None:
    """The supervisor's pipe, if this process is a worker (the variable is removed)."""
    env = os.environ if environ is None else environ
    value = env.pop(SUPERVISOR_FD_VARIABLE, None)
    return int(value) if value is not None and value.isdigit() else None


async def wait_for_supervisor_exit(fd: int) -> None:
    """Return once the supervisor holding the other end of ``fd`` has exited."""
    await trio.lowlevel.wait_readable(fd)  # the pipe reads as ended: nobody holds it
