# The library's entry point: serve one `trio.abc.Stream` to its end.
from __future__ import annotations

import trio

from ._budget import MemoryBudget
from ._config import ServerConfig
from ._pump import Connection
from ._report import ConnectionReport

__all__ = ["HandlerError", "handle_connection"]


class HandlerError(Exception):
    """A bug in trio_echo ended a connection; the bug is the ``__cause__``."""


async def handle_connection(
    stream: trio.abc.Stream,
    config: ServerConfig | None = None,
    *,
    budget: MemoryBudget | None = None,
    peer: str = "-",
) -> ConnectionReport:
    """Serve one connection until it ends, then close it and log one line.

    Faults of the peer end the connection and are reported in the returned
    `ConnectionReport`, never raised. The stream is closed on return.

    Args:
        stream: The connection.
        config: How to serve it; the defaults if None.
        budget: The memory budget shared with other connections; one of
            its own if None.
        peer: The peer's address, for the log.

    Returns:
        What happened, as logged.

    Raises:
        HandlerError: A bug in the handler, after the connection is closed
            and logged with its traceback.
        trio.Cancelled: If the surrounding scope was cancelled; the
            connection is closed and logged first.
    """
    config = config if config is not None else ServerConfig()
    connection = Connection(stream, config, budget or MemoryBudget(config.memory_budget), peer)
    ended = connection.serve_ready()
    # What serve_ready did was a step of work: let others run before the
    # next (not a cancel point: only `serve` can close what is left open).
    await trio.lowlevel.cancel_shielded_checkpoint()
    if not ended:
        await connection.serve()
    if connection.failure is not None:
        # A bug may end a connection before its stream could be closed
        # without waiting (`Transport.close_nowait`): close it now.
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise HandlerError(f"a bug ended the connection from {peer}") from connection.failure
    assert connection.report is not None
    return connection.report
