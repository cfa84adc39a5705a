# A worker per core: N single-threaded trio servers under one supervising
# parent. The parent does no serving: it starts the workers, restarts one that
# dies (logging why, and backing off while workers die at once), replaces one
# that stops answering its heartbeat, hands them the TLS pair it holds in
# use, and passes a drain or a cut on to every worker.
#
# Each worker runs in a session of its own, so that a Ctrl-C in a terminal
# reaches the parent only: the parent then asks each worker to drain once,
# instead of each worker taking the terminal's SIGINT and the parent's
# SIGTERM as two signals (which cuts its connections). Each worker has a
# line to the parent (`_worker_line.py`): the heartbeat and the certificate
# pair go over it, and a worker whose parent was killed outright reads it as
# ended, and drains. A worker gets no NOTIFY_SOCKET: the parent alone speaks
# to systemd, for the whole server.
from __future__ import annotations

import functools
import logging
import math
import os
import signal
import socket
import subprocess
from collections.abc import Collection, Sequence

import trio

from ._metrics import METRICS_FD_VARIABLE, Snapshot, SnapshotChannel
from ._tls import ServerTLS
from ._worker_line import SUPERVISOR_FD_VARIABLE, SupervisorEnd

__all__ = ["Supervisor", "WorkerStartError"]

logger = logging.getLogger("trio_echo.workers")

READY_TIMEOUT = 30.0
"""Seconds a worker has to print its 'listening on' line."""

RESTART_DELAY = 0.5
"""Seconds before restarting a worker that failed; doubled (up to
MAX_RESTART_DELAY) with each failure in a row: a start that fails, or a
worker that exits within QUICK_EXIT seconds of listening."""

MAX_RESTART_DELAY = 30.0

QUICK_EXIT = 1.0

MAX_FAILURES_IN_A_ROW = 5
"""Failures in a row of one worker after which the supervisor gives up: it
drains the other workers and exits with status 1."""

KILL_MARGIN = 5.0
"""Seconds past the grace period (or past a cut) after which a worker that
has not exited is killed (SIGKILL)."""

DRAIN_SIGNAL = signal.SIGTERM
CUT_SIGNAL = getattr(signal, "SIGQUIT", signal.SIGTERM)  # the supervisor runs on POSIX only
"""What the supervisor sends its workers: two different signals, which the
kernel never merges into one (two SIGTERMs sent back to back may be)."""


class WorkerStartError(RuntimeError):
    """A worker did not start listening."""


def describe_status(status: int) -> str:
    """How a process ended, in words: ``killed by SIGKILL``, ``exited with status 1``."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with status {status}"


class Supervisor:
    """Runs ``count`` copies of a server command and keeps them running.

    Start it with ``await nursery.start(supervisor.run)``, which returns once
    every worker listens (or a drain came first); `drain` and `cut` pass a
    shutdown on to them, and `run` returns once every worker has exited after
    one of them. A worker still running `KILL_MARGIN` seconds after the grace
    period of a drain, or after a cut, is killed.

    Args:
        command: The worker's command line.
        count: How many workers.
        grace: Seconds the workers' connections get to finish on a drain.
        pass_fds: File descriptors the workers inherit (listening sockets).
        metrics: Whether to give each worker a socket to answer `snapshots`
            on (see `trio_echo.server._metrics`).
        tls: The TLS pair in use, if the workers serve TLS: each worker is
            given its pair, and `reload` reads the files again.
        heartbeat: Seconds a worker may go without answering its heartbeat
            before it is killed and replaced; None for no heartbeat (a
            worker command that does not answer over its line).

    Attributes:
        failure: Why the supervisor gave up, in a sentence, if it did (a
            worker failed `MAX_FAILURES_IN_A_ROW` times in a row; it drained
            the others).
    """

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        *,
        grace: float = 10.0,
        pass_fds: Sequence[int] = (),
        metrics: bool = False,
        tls: ServerTLS | None = None,
        heartbeat: float | None = None,
    ) -> None:
        self._count = count
        self._grace = grace
        self._tls = tls
        self._heartbeat = heartbeat
        self._lines: dict[int, SupervisorEnd] = {}  # by worker number
        self._processes: dict[int, trio.Process] = {}  # by worker number
        self._stopping = trio.Event()
        self._kill_at = math.inf
        self._watches: set[trio.CancelScope] = set()
        self._sent: set[int] = set()  # the signals sent to every worker
        self._ready: set[int] = set()  # the workers listening now, by number
        self.ever_ready = False
        self._metrics = _WorkerMetrics() if metrics else None
        self._launcher = _Launcher(command, tuple(pass_fds), self._metrics)
        self.failure: str | None = None

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
            task_status: Started once every worker listens, or a drain or a
                cut stopped the starting.

        Raises:
            WorkerStartError: If a worker does not start the first time (the
                others are stopped first).
        """
        try:
            async with trio.open_nursery() as nursery:
                for number in range(1, self._count + 1):
                    if self._stopping.is_set():
                        break
                    await nursery.start(self._keep_running, number, nursery)
                task_status.started()
        finally:
            for line in self._lines.values():
                line.close()

    def drain(self) -> None:
        """Ask every worker to drain, and restart none from now on.

        Those still running `KILL_MARGIN` seconds after the grace period are
        killed.
        """
        self._stop(DRAIN_SIGNAL, self._grace + KILL_MARGIN)

    def cut(self) -> None:
        """Ask every worker to cut its connections now.

        Those still running `KILL_MARGIN` seconds later are killed.
        """
        self._stop(CUT_SIGNAL, KILL_MARGIN)

    async def reload(self) -> None:
        """Read and check the TLS files again; pass the pair on if it is accepted.

        One log line either way (see `ServerTLS.reload`); a bad file keeps
        the pair in use, here and in every worker.
        """
        if self._tls is None:
            logger.info("SIGUSR1: not serving TLS, no certificate to reload")
            return
        # Abandoned, not waited for, if a shutdown comes while a file is read.
        if await trio.to_thread.run_sync(self._tls.reload, abandon_on_cancel=True):
            for line in list(self._lines.values()):
                await line.send_pair(self._tls.pair)

    def _stop(self, signum: signal.Signals, kill_after: float) -> None:
        self._stopping.set()
        self._kill_at = min(self._kill_at, trio.current_time() + kill_after)
        for scope in self._watches:
            scope.deadline = self._kill_at
        if signum in self._sent:
            return  # a second drain is no cut: each signal goes once
        self._sent.add(signum)
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(signum)

    async def _keep_running(
        self,
        number: int,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        started = False
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    process = await self._spawn(number, nursery)
                except WorkerStartError as error:
                    if self._stopping.is_set():
                        return  # stopped while it started: not a failure
                    if not started:
                        raise
                    failure = str(error)
                else:
                    ready_at = trio.current_time()
                    if not started:
                        started = True
                        task_status.started()
                    self._ready.add(number)
                    try:
                        status = await self._watch(number, process)
                    finally:
                        self._ready.discard(number)
                    if self._stopping.is_set():
                        return
                    failure = f"worker {number} (pid {process.pid}) {describe_status(status)}"
                    if trio.current_time() - ready_at >= QUICK_EXIT:
                        failures = 0  # it served a while: a crash, not a failing start
                failures += 1
                if failures >= MAX_FAILURES_IN_A_ROW:
                    self.failure = (
                        f"worker {number} failed {failures} times in a row, most recently:"
                        f" {failure}; stopping the server"
                    )
                    logger.error("%s", self.failure)
                    self.drain()
                    return
                delay = min(RESTART_DELAY * 2 ** (failures - 1), MAX_RESTART_DELAY)
                logger.error("%s; restarting it in %g s", failure, delay)
                with trio.move_on_after(delay):
                    await self._stopping.wait()
        finally:
            if not started:
                task_status.started()  # so that run() goes on: to its end

    async def _watch(self, number: int, process: trio.Process) -> int:
        """Wait for a worker to exit; kill it if it stops answering its heartbeat."""
        async with trio.open_nursery() as nursery:
            if self._heartbeat is not None:
                nursery.start_soon(self._kill_if_silent, number, process, self._heartbeat)
            status = await self._wait(number, process)
            nursery.cancel_scope.cancel()
        return status

    async def _kill_if_silent(self, number: int, process: trio.Process, silence: float) -> None:
        await self._lines[number].wait_until_silent(silence)
        logger.error(
            "worker %d (pid %d) has not answered for %g s: killing it (SIGKILL)",
            number,
            process.pid,
            silence,
        )
        process.kill()

    async def _wait(self, number: int, process: trio.Process) -> int:
        """Wait for a worker to exit; kill it if it outlives the kill deadline."""
        with trio.CancelScope(deadline=self._kill_at) as scope:
            self._watches.add(scope)
            try:
                return await process.wait()
            finally:
                self._watches.discard(scope)
        logger.error(
            "worker %d (pid %d) is still running past the grace period: killing it (SIGKILL)",
            number,
            process.pid,
        )
        process.kill()
        return await process.wait()

    async def snapshots(self) -> list[tuple[str | None, Snapshot]]:
        """Each listening worker's metrics snapshot, with its number.

        The workers are asked at once; one that does not answer in time is
        left out.
        """
        if self._metrics is None:
            return []
        return await self._metrics.snapshots(self._ready)

    async def _spawn(self, number: int, nursery: trio.Nursery) -> trio.Process:
        """Start worker ``number`` and wait for its 'listening on' line."""
        if (old := self._lines.pop(number, None)) is not None:
            old.close()
        self._lines[number] = SupervisorEnd()
        process = await self._launcher.start(number, self._lines[number], nursery)
        self._processes[number] = process
        if self._tls is not None:
            await self._lines[number].send_pair(self._tls.pair)  # the first thing it reads
        for signum in sorted(self._sent):  # stopped while it was starting: it must stop too
            process.send_signal(signum)
        line = b""
        assert process.stdout is not None
        with trio.move_on_after(READY_TIMEOUT):
            while b"\n" not in line and (data := await process.stdout.receive_some()):
                line += data
        if not line.startswith(b"listening on"):
            process.kill()
            status = await process.wait()
            raise WorkerStartError(f"worker {number} did not start ({describe_status(status)})")
        logger.info("worker %d (pid %d) started", number, process.pid)
        self.ever_ready = True
        return process


class _Launcher:
    """How a worker is started.

    Its command, its environment, and what it inherits: the listening
    sockets, its line, its metrics socket.
    """

    def __init__(
        self, command: Sequence[str], pass_fds: tuple[int, ...], metrics: _WorkerMetrics | None
    ) -> None:
        self._command = list(command)
        self._pass_fds = pass_fds
        self._metrics = metrics

    async def start(self, number: int, line: SupervisorEnd, nursery: trio.Nursery) -> trio.Process:
        """Start worker ``number`` in ``nursery``, with ``line`` to its supervisor."""
        env = dict(os.environ, **{SUPERVISOR_FD_VARIABLE: str(line.theirs.fileno())})
        env.pop("NOTIFY_SOCKET", None)  # systemd hears the supervisor only
        pass_fds = (*self._pass_fds, line.theirs.fileno())
        theirs = None
        if self._metrics is not None:
            theirs = self._metrics.connect(number)
            env[METRICS_FD_VARIABLE] = str(theirs.fileno())
            pass_fds += (theirs.fileno(),)
        try:
            process: trio.Process = await nursery.start(
                functools.partial(
                    trio.run_process,
                    self._command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    pass_fds=pass_fds,
                    env=env,
                    start_new_session=True,
                    check=False,
                    deliver_cancel=functools.partial(self._cancelled, number),
                )
            )
        finally:
            line.close_theirs()  # the worker's ends: the worker holds them now
            if theirs is not None:
                theirs.close()
        return process

    @staticmethod
    async def _cancelled(number: int, process: trio.Process) -> None:
        """Stop a worker whose supervisor is cancelled: a cut, then a kill."""
        process.send_signal(CUT_SIGNAL)
        with trio.move_on_after(KILL_MARGIN):
            await process.wait()
            return
        logger.error(
            "worker %d (pid %d) is still running after a cut: killing it (SIGKILL)",
            number,
            process.pid,
        )
        process.kill()


class _WorkerMetrics:
    """The sockets over which the supervisor asks each worker for its metrics."""

    def __init__(self) -> None:
        self._channels: dict[int, SnapshotChannel] = {}  # by worker number

    def connect(self, number: int) -> socket.socket:
        """Make worker ``number``'s socket (a new one for a replacement); return its end."""
        ours, theirs = socket.socketpair()
        old = self._channels.pop(number, None)
        if old is not None:
            old.channel.close()
        self._channels[number] = SnapshotChannel(trio.socket.from_stdlib_socket(ours))
        return theirs

    async def snapshots(self, ready: Collection[int]) -> list[tuple[str | None, Snapshot]]:
        """Ask each worker in ``ready`` at once; leave out one that does not answer in time."""
        answers: dict[int, Snapshot] = {}

        async def ask(number: int, channel: SnapshotChannel) -> None:
            snapshot = await channel.ask()
            if snapshot is not None:
                answers[number] = snapshot

        async with trio.open_nursery() as nursery:
            for number, channel in self._channels.items():
                if number in ready:
                    nursery.start_soon(ask, number, channel)
        return [(str(number), answers[number]) for number in sorted(answers)]
