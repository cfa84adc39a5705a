# `trio-echo server`: its listening sockets, then one server, or a supervisor
# of workers, until the shutdown signals end it.
#
# Listening sockets are handed over (`_handed_over`) or made where asked
# (`_open`: TCP and a unix socket), both by server/_listeners.py, each with
# its one sentence when it fails. A unix socket file is removed on exit by
# the process that made it, never by one it was handed to. With TLS, the
# certificate is loaded before anything listens, and loaded again on SIGUSR1;
# a worker is handed the pair its supervisor holds in use, and never reads
# the files itself.
# Workers are started with the parent's own arguments, followed by what only
# the parent knows (`--workers 1`, and how to reach the listening sockets):
# later flags override earlier ones, so no copy of the flag list is kept here.
from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterable, Sequence

import trio

from .._status import ExitStatus, fail
from .._tls import TLSFileError
from ..server._listeners import (
    ActivationError,
    CannotListenError,
    ListenAddress,
    format_address,
    handed_over,
    listen_on,
    open_listeners,
)
from ..server._metrics import Snapshot, answer_snapshots, serve_metrics, worker_channel
from ..server._server import EchoServer
from ..server._signals import (
    early_signals,
    handle_reload_signal,
    handle_shutdown_signals,
    signal_name,
)
from ..server._supervisor import Supervisor, WorkerStartError
from ..server._systemd import notify
from ..server._tls import ServerTLS
from ..server._unix import UnixSocketFile
from ..server._worker_line import LineError, WorkerEnd
from ._server_options import ServerOptions

__all__ = ["ServerOptions", "run_server"]

logger = logging.getLogger("trio_echo.server")
workers_logger = logging.getLogger("trio_echo.workers")


class _UsageError(Exception):
    """Options that contradict each other; the message says how, in a sentence."""


SUPERVISOR_AVAILABLE = os.name == "posix"
"""Whether --workers can run here: the supervisor puts each worker in a
session of its own and passes the shutdown signals on, which are POSIX."""


def run_server(options: ServerOptions, argv: Sequence[str]) -> ExitStatus:
    """Serve as ``options`` say until a signal ends it; return the exit status.

    Args:
        options: The server command's options.
        argv: The command line's arguments as given, for the workers.
    """
    if early := early_signals():
        return _stopped_before_listening(early[0])
    line = WorkerEnd.inherited()  # a worker's line to its supervisor
    try:
        tls = _server_tls(options, line)  # loaded before anything listens
    except TLSFileError as error:
        return fail(f"server: {error}", ExitStatus.USAGE)
    except LineError as error:
        return fail(f"server: {error}", ExitStatus.WORKER_FAILED)
    try:
        if options.workers > 1:
            if not SUPERVISOR_AVAILABLE:
                return fail(
                    "server: --workers needs POSIX process sessions and signals, which this"
                    " platform does not have; run one server per process instead",
                    ExitStatus.USAGE,
                )
            return _run_workers(options, argv, tls)
        channel = worker_channel()  # a worker whose supervisor serves the metrics
        metrics_socket = None if channel is not None else _metrics_listener(options)
        socket_file = None
        if not (listeners := _handed_over(options, worker=line is not None)):
            listeners, socket_file = _open(options, reuse_port=options.reuse_port)
    except CannotListenError as error:
        return fail(str(error), ExitStatus.CANNOT_LISTEN)
    except _UsageError as error:
        return fail(str(error), ExitStatus.USAGE)
    try:
        server = EchoServer(
            options.config,
            listeners,
            metrics=bool(options.metrics) or channel is not None,
            tls=tls,
        )
        trio.run(_serve_until_signalled, server, options.grace, metrics_socket, channel, line)
    finally:
        if socket_file is not None:
            socket_file.remove()
    return ExitStatus.OK


def _server_tls(options: ServerOptions, line: WorkerEnd | None) -> ServerTLS | None:
    """The TLS pair to serve, if any.

    Read from the files; in a worker, as its supervisor read them (the
    first message on its line).
    """
    if options.tls_files is None:
        return None
    return ServerTLS(options.tls_files, line.receive_pair() if line is not None else None)


def _metrics_listener(options: ServerOptions) -> socket.socket | None:
    """The listening socket for --metrics, if asked for."""
    if options.metrics is None:
        return None
    host, port = options.metrics
    try:
        (sock, *others) = open_listeners(host, port)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise CannotListenError(
            f"cannot listen for metrics on {format_address(host, port)}: {reason}"
        ) from None
    for other in others:  # one address is enough for a scraper
        other.close()
    return sock


def _stopped_before_listening(signum: int) -> ExitStatus:
    """End for a signal that came before anything listened.

    There is nothing to drain. A Ctrl-C ends with the status of an
    interrupted program.
    """
    logger.info("%s before listening: not starting", signal_name(signum))
    return ExitStatus.INTERRUPTED if signum == signal.SIGINT else ExitStatus.OK


def _handed_over(options: ServerOptions, *, worker: bool = False) -> list[socket.socket] | None:
    """The listening sockets handed over with --fd or by systemd, if any."""
    try:
        listeners = handed_over(options.fds)
    except ActivationError as error:
        raise CannotListenError(f"server: {error}") from None
    # A worker is handed its supervisor's sockets, --unix among them.
    if listeners and options.unix is not None and not worker:
        raise _UsageError(
            "server: --unix makes a socket of its own, but sockets were handed over"
            " (--fd, or systemd's LISTEN_FDS): give one or the other"
        )
    return listeners


def _open(
    options: ServerOptions, *, reuse_port: bool
) -> tuple[list[socket.socket], UnixSocketFile | None]:
    """Listen where ``options`` say: TCP, a unix socket, or both.

    Returns:
        The listening sockets, and the unix socket's file to remove on exit.
    """
    return listen_on(
        options.host,
        options.port,
        tcp=options.tcp,
        unix=options.unix,
        unix_mode=options.unix_mode,
        reuse_port=reuse_port,
    )


async def _serve_until_signalled(
    server: EchoServer,
    grace: float,
    metrics_socket: socket.socket | None = None,
    channel: socket.socket | None = None,
    line: WorkerEnd | None = None,
) -> None:
    stopped = False  # by a signal, or by the supervisor's exit
    async with trio.open_nursery() as nursery:

        def drain(name: str) -> None:
            nonlocal stopped
            stopped = True
            notify("STOPPING=1")
            logger.info("%s: not accepting; open connections have %g s to finish", name, grace)
            server.shutdown(grace)

        def cut(name: str) -> None:
            nonlocal stopped
            stopped = True
            logger.warning("%s: cutting %d open connection(s) now", name, server.connections)
            server.abort()

        async def serve(
            *, task_status: trio.TaskStatus[list[ListenAddress]] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await server.serve(task_status=task_status)
            nursery.cancel_scope.cancel()  # served to the end: stop watching signals

        await nursery.start(handle_shutdown_signals, drain, cut)
        await nursery.start(handle_reload_signal, functools.partial(_reload, server, line))
        if line is not None:  # a worker: answer its supervisor, and drain once it exits

            async def answer_supervisor(line: WorkerEnd) -> None:
                await line.answer(lambda pair: server.tls is not None and server.tls.use(pair))
                drain("the supervisor exited")

            nursery.start_soon(answer_supervisor, line)
        addresses: list[ListenAddress] = await nursery.start(serve)
        if stopped:
            return  # a signal came first: nothing to announce
        metrics = server.metrics
        if metrics is not None and channel is not None:
            nursery.start_soon(answer_snapshots, channel, metrics)
        elif metrics is not None and metrics_socket is not None:

            async def collect() -> list[tuple[str | None, Snapshot]]:
                assert metrics is not None
                return [(None, metrics.snapshot())]

            _log_metrics_address(metrics_socket)
            nursery.start_soon(serve_metrics, metrics_socket, collect)
        _announce(f"listening on {address} mode={server.config.mode}" for address in addresses)
        notify("READY=1")


def _announce(lines: Iterable[str]) -> None:
    """Print the 'listening on' lines; an unwritable standard output is one warning.

    Standard output then goes to the null device, so that nothing is
    written to it again, not even what is left in its buffer at exit.
    """
    try:
        for line in lines:
            print(line, flush=True)
    except OSError as error:
        logger.warning(
            "cannot write to standard output (%s): serving without the 'listening on' line",
            (error.strerror or str(error)).lower(),
        )
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)


async def _reload(server: EchoServer, line: WorkerEnd | None = None) -> None:
    """Load the TLS certificate and key again (on `RELOAD_SIGNAL`)."""
    if server.tls is None:
        logger.info("SIGUSR1: not serving TLS, no certificate to reload")
        return
    if line is not None:
        logger.info("SIGUSR1: a worker serves the certificate its supervisor reads; not reloaded")
        return
    # Abandoned, not waited for, if a shutdown comes while a file is read.
    await trio.to_thread.run_sync(server.tls.reload, abandon_on_cancel=True)


def _log_metrics_address(sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    logger.info("metrics on http://%s/metrics", format_address(host, port))


def _run_workers(options: ServerOptions, argv: Sequence[str], tls: ServerTLS | None) -> ExitStatus:
    """Run ``options.workers`` servers under a supervisor; return the exit status."""
    command = [sys.executable, "-m", "trio_echo", *argv, "--workers", "1"]
    metrics_socket = _metrics_listener(options)  # served here, for every worker
    handed_over = _handed_over(options)
    socket_file = None
    if handed_over:
        # Every worker accepts on the same inherited sockets.
        listeners, reserved = handed_over, []
        pass_fds = [sock.fileno() for sock in listeners]
        if not options.fds:  # from systemd: name them, as --fd does
            command += [item for fd in pass_fds for item in ("--fd", str(fd))]
    elif hasattr(socket, "SO_REUSEPORT") and options.unix is None:
        # Each worker binds its own socket, and the kernel spreads connections.
        # The parent binds the port too (without listening, so it gets no
        # connections), to learn the port 0 picked, and to hold it.
        listeners = reserved = listen_on(options.host, options.port, reuse_port=True, listen=False)[
            0
        ]
        pass_fds = []
        command += ["--port", str(listeners[0].getsockname()[1]), "--reuse-port"]
    else:
        # No SO_REUSEPORT, or a unix socket (which it does not apply to):
        # the parent listens, and the workers inherit.
        listeners, socket_file = _open(options, reuse_port=False)
        reserved = listeners
        pass_fds = [sock.fileno() for sock in listeners]
        command += [item for fd in pass_fds for item in ("--fd", str(fd))]
    supervisor = Supervisor(
        command,
        options.workers,
        grace=options.grace,
        pass_fds=pass_fds,
        metrics=metrics_socket is not None,
        tls=tls,
        heartbeat=options.worker_timeout,
    )
    stopped_by: list[str] = []  # the first signal's name, if one came
    try:
        trio.run(_supervise, supervisor, options, listeners, metrics_socket, stopped_by)
    except* WorkerStartError as group:
        status = fail(f"server: {_first_leaf(group)}", ExitStatus.CANNOT_LISTEN)
    except* OSError as group:  # a worker could not even be spawned
        status = fail(
            f"server: cannot start a worker: {_first_leaf(group)}", ExitStatus.WORKER_FAILED
        )
    else:
        status = ExitStatus.OK
        if supervisor.failure is not None:
            status = fail(f"server: {supervisor.failure}", ExitStatus.WORKER_FAILED)
        elif stopped_by[:1] == ["SIGINT"] and not supervisor.ever_ready:
            status = ExitStatus.INTERRUPTED  # a Ctrl-C before anything listened
    finally:
        for sock in reserved:
            sock.close()
        if socket_file is not None:
            socket_file.remove()  # the workers were handed it: theirs to serve, not remove
    return status


def _first_leaf(error: BaseException) -> BaseException:
    """The first exception in ``error`` that is not a group.

    trio nests a task's error in a group for each nursery it crosses.
    """
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _supervise(
    supervisor: Supervisor,
    options: ServerOptions,
    listeners: list[socket.socket],
    metrics_socket: socket.socket | None = None,
    stopped_by: list[str] | None = None,
) -> None:
    stopped_by = [] if stopped_by is None else stopped_by
    async with trio.open_nursery() as nursery:

        def drain(name: str) -> None:
            stopped_by.append(name)
            notify("STOPPING=1")
            workers_logger.info("%s: asking %d workers to drain", name, len(supervisor.pids))
            supervisor.drain()

        def cut(name: str) -> None:
            stopped_by.append(name)
            workers_logger.warning("%s: asking the workers to cut their connections now", name)
            supervisor.cut()

        async def supervise(
            *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await supervisor.run(task_status=task_status)
            nursery.cancel_scope.cancel()  # every worker has exited: stop watching signals

        await nursery.start(handle_shutdown_signals, drain, cut)
        await nursery.start(handle_reload_signal, supervisor.reload)
        await nursery.start(supervise)
        if stopped_by:
            return  # stopped while the workers started: nothing to announce
        if metrics_socket is not None:
            _log_metrics_address(metrics_socket)
            nursery.start_soon(serve_metrics, metrics_socket, supervisor.snapshots)
        _announce(
            f"listening on {ListenAddress.of(sock)} mode={options.config.mode}"
            f" workers={options.workers}"
            for sock in listeners
        )
        notify(f"READY=1\nSTATUS=serving with {options.workers} workers")
        workers_logger.info("%d workers serving (pids %s)", options.workers, supervisor.pids)
