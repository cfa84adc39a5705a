# The server: connections accepted within a cap, each served in its own task
# of the server's connections nursery, and a graceful shutdown.
#
# The accept loop waits until a listener's socket is readable, then accepts
# the pending connections (up to ACCEPT_BATCH per wakeup, so that a flood of
# connections cannot starve the tasks already running) instead of one per
# wakeup. It serves what has arrived on them inline only until they have
# framed MAX_MESSAGES_PER_STEP messages in that wakeup; the rest are served
# in their own tasks, so the accepting task's step stays about as short as a
# connection's. It never holds a connection slot while it waits: it takes slots
# only for connections that are already there, so one listener (say IPv4)
# cannot keep another (IPv6) from accepting.
#
# Each new connection is first served with what has already arrived
# (Connection.serve_ready): one whose message is complete ends there, in the
# accepting task. The others get a task of their own in the connections
# nursery. A bug in the handler is logged, with its traceback, by the
# connection itself, and ends only that connection: neither call raises it.
#
# The listeners (`_listeners.py`) hand over each accepted connection as a
# stream; with TLS, a `TLSListener` wraps each in a trio.SSLStream, whose
# handshake runs in the connection's own task, never in the accepting one.
from __future__ import annotations

import contextlib
import errno
import logging
import math
import socket
from collections.abc import Sequence

import trio

from ..protocol import (
    MAX_MESSAGES_PER_STEP,
)
from ._budget import MemoryBudget
from ._config import ServerConfig
from ._listeners import ListenAddress, Listener, SocketListener, TLSListener, check_listener
from ._metrics import ServerMetrics
from ._pump import Connection
from ._tls import ServerTLS

__all__ = ["ACCEPT_BATCH", "ACCEPT_ERROR_INTERVAL", "EchoServer"]

logger = logging.getLogger("trio_echo.server")

ACCEPT_BATCH = 16
"""Connections accepted (and served inline, if they can be) per wakeup of a
listener, at most: about a millisecond of work for short connections."""

# Accept errors that say the process or the machine is out of something: wait
# a moment and try again, as trio's own serve_listeners does.
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_RESOURCE_PAUSE = 0.1

ACCEPT_ERROR_INTERVAL = 1.0
"""Seconds between two warnings that accepting failed (each says how many
times it failed since the one before)."""

LIMIT_WARNING_INTERVAL = 60.0
"""Seconds between two warnings that the connection limit was reached."""

# Accept errors about one connection that died while queued: skip it.
_TRANSIENT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class EchoServer:
    """A trio_echo server on listening sockets.

    Start it with ``addresses = await nursery.start(server.serve)``; stop it
    with `shutdown` (graceful) or `abort`.

    Args:
        config: How to serve connections.
        listeners: Bound, listening TCP or unix sockets (from
            `open_listeners` or `open_unix_listener`, or handed over by
            systemd). The server closes them when it stops.
        metrics: Whether to count what `metrics` reports (nothing is
            counted otherwise).
        tls: Serve every connection over TLS (a `TLSListener` wraps each
            listener), with this context (which `ServerTLS.reload` may
            replace while the server runs); None for plain TCP.

    Attributes:
        metrics: What the server counts, if asked to (see `serve_metrics`).

    Raises:
        ValueError: If there is no listener, or one is not a stream socket.
    """

    def __init__(
        self,
        config: ServerConfig,
        listeners: Sequence[socket.socket],
        *,
        metrics: bool = False,
        tls: ServerTLS | None = None,
    ) -> None:
        if not listeners:
            raise ValueError("a server needs at least one listening socket")
        for sock in listeners:
            check_listener(sock)
        self.config = config
        self.tls = tls
        self._listeners = list(listeners)
        for sock in self._listeners:
            # Accepted sockets inherit it: one call here, none per connection.
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._accepting: list[Listener] = [SocketListener(sock) for sock in self._listeners]
        if tls is not None:  # each stream's handshake waits for the connection's task
            self._accepting = [TLSListener(listener, tls) for listener in self._accepting]
        self._budget = budget = MemoryBudget(config.memory_budget)
        self.metrics = (
            ServerMetrics(
                open_connections=lambda: self._active,
                budget=lambda: (budget.used, budget.total, budget.waiting),
            )
            if metrics
            else None
        )
        self._active = 0
        self._slot_freed = trio.lowlevel.ParkingLot()
        self._next_limit_warning = -math.inf
        self._next_accept_warning = -math.inf
        self._accept_failures = 0  # since the last warning
        self._accept_scope = trio.CancelScope()
        self._connections_scope = trio.CancelScope()

    @property
    def addresses(self) -> list[ListenAddress]:
        """The addresses listened on."""
        return [ListenAddress.of(sock) for sock in self._listeners if sock.fileno() != -1]

    @property
    def connections(self) -> int:
        """The connections being served now."""
        return self._active

    async def serve(
        self, *, task_status: trio.TaskStatus[list[ListenAddress]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept and serve connections until `shutdown` or `abort`.

        Returns once accepting has stopped and every connection has ended.

        Args:
            task_status: Given the listening addresses once accepting has
                begun.
        """
        try:
            with self._connections_scope:
                async with trio.open_nursery() as connections:
                    with self._accept_scope:
                        async with trio.open_nursery() as acceptors:
                            for listener in self._accepting:
                                acceptors.start_soon(self._accept, listener, connections)
                            task_status.started(self.addresses)
                    self._close_listeners()
                    if self._active:
                        logger.info("waiting for %d connection(s) to end", self._active)
        finally:
            self._close_listeners()

    def shutdown(self, grace: float) -> None:
        """Stop accepting, and give open connections ``grace`` seconds to end.

        Connections still open after that are cancelled (and logged as
        ``cancelled``). Calling it again can only shorten the grace period.

        Args:
            grace: Seconds; 0 cancels the connections at once.
        """
        self._accept_scope.cancel()
        deadline = trio.current_time() + grace if grace > 0 else -math.inf
        self._connections_scope.deadline = min(self._connections_scope.deadline, deadline)

    def abort(self) -> None:
        """Stop accepting and cancel every connection now."""
        self.shutdown(0)

    def _close_listeners(self) -> None:
        for sock in self._listeners:
            if sock.fileno() != -1:
                trio.lowlevel.notify_closing(sock)
                sock.close()

    async def _accept(self, listener: Listener, connections: trio.Nursery) -> None:
        config, budget, closed = self.config, self._budget, self._connection_closed
        while True:
            await trio.lowlevel.wait_readable(listener.socket)
            framed = 0  # messages framed in this step, inline
            for _ in range(ACCEPT_BATCH):
                if self._active >= config.max_connections:
                    await self._wait_for_slot()
                try:
                    if (accepted := listener.accept_nowait()) is None:
                        break
                except OSError as error:
                    if error.errno in _TRANSIENT_ERRORS:
                        continue
                    if error.errno not in _RESOURCE_ERRORS:
                        raise
                    self._accept_failed(listener, error)
                    await trio.sleep(_RESOURCE_PAUSE)
                    break
                stream, peer = accepted
                connection = Connection(stream, config, budget, peer, on_close=closed)
                self._active += 1
                if framed >= MAX_MESSAGES_PER_STEP or not connection.serve_ready():
                    connections.start_soon(connection.serve, name=peer)
                framed += connection.messages

    def _accept_failed(self, listener: Listener, error: OSError) -> None:
        # Said at most once a second, with a count: out of descriptors, the
        # loop fails every _RESOURCE_PAUSE.
        self._accept_failures += 1
        now = trio.current_time()
        if now < self._next_accept_warning:
            return
        self._next_accept_warning = now + ACCEPT_ERROR_INTERVAL
        logger.warning(
            "cannot accept on %s: %s; retrying every %g s (%d time(s) since the last such"
            " line, said at most once a second)",
            ListenAddress.of(listener.socket),
            error.strerror,
            _RESOURCE_PAUSE,
            self._accept_failures,
        )
        self._accept_failures = 0

    def _connection_closed(self, connection: Connection) -> None:
        self._active -= 1
        if self.metrics is not None and (report := connection.report) is not None:
            self.metrics.connection_ended(report)
        if self._slot_freed:
            self._slot_freed.unpark_all()

    async def _wait_for_slot(self) -> None:
        if self.metrics is not None:
            self.metrics.accepting_paused()
        now = trio.current_time()
        if now >= self._next_limit_warning:
            # Said once, not once per connection: a server at its cap may
            # pause and resume on every connection that ends.
            self._next_limit_warning = now + LIMIT_WARNING_INTERVAL
            logger.warning(
                "connection limit reached (%d): not accepting until a connection ends"
                " (said at most once a minute)",
                self.config.max_connections,
            )
        while self._active >= self.config.max_connections:
            await self._slot_freed.park()
