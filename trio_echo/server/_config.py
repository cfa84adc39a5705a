# What a server is told: the protocol mode, the bounds of each connection
# (`Limits`) and the server's own bounds (memory, connections). One immutable
# value, validated once, shared by the command line, the server and the
# connection handler. Each setting is declared once, as `Limits`' are (see
# protocol/_limits.py): its default here, its bound, unit, flag and words in
# its `Setting`.
from __future__ import annotations

import resource

import attrs

from ..protocol import ConfigError, Limits, Mode
from ..protocol._declarations import documented, setting
from ..protocol._limits import MIN_CONNECTION_BUFFER, default_max_held

__all__ = [
    "ConfigError",
    "ServerConfig",
    "default_max_connections",
]

MiB = 1024 * 1024


def default_max_connections() -> int:
    """Return a connection cap that fits the process's open-file limit.

    Each connection takes one file descriptor; 64 are kept back for the
    listeners, logging and the runtime.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(1, soft - 64)


_SERVING = "serving"


@documented
@attrs.frozen(kw_only=True)
class ServerConfig:
    """How a server behaves, and the bounds it keeps.

    Each connection keeps ``limits``. Its connection buffer
    (``limits.max_held``) may not exceed ``memory_budget``, except that the
    default one (`default_max_held` of the message size) is fitted within
    the budget: ``ServerConfig(memory_budget=MiB)`` holds at most a MiB per
    connection.

    The server's own settings follow.
    """

    mode: Mode = setting(
        Mode.COUNT,
        converter=Mode,
        flag="--mode",
        doc=(
            "the protocol spoken on every connection. count: echo the payload of one"
            " 'length payload' message, then close; echo: echo everything until the client"
            " closes; framed: answer each of many messages in kind"
        ),
        group=_SERVING,
        unit="choice",
        choices=tuple(mode.value for mode in Mode),
    )
    limits: Limits = attrs.field(factory=Limits)
    memory_budget: int = setting(
        256 * MiB,
        flag="--memory-budget",
        doc=(
            "memory all connections together may hold, counted as each connection's is;"
            " past it, connections stop reading until bytes drain"
        ),
        group=_SERVING,
        unit="bytes",
        least=1,
        floor=MIN_CONNECTION_BUFFER,
        why="one full read",
        bound=True,
    )
    max_connections: int = setting(
        attrs.Factory(default_max_connections),
        flag="--max-connections",
        doc="connections served at once; past it, accepting pauses until one ends",
        group=_SERVING,
        unit="count",
        least=1,
        default_text="the open-file limit less 64",
        bound=True,
    )

    def __attrs_post_init__(self) -> None:
        # The one check between settings that the library keeps: the
        # command line's own (a flag that needs another) are in cli/_checks.py.
        limits = self.limits
        if limits.max_held <= self.memory_budget:
            return
        if limits.max_held != default_max_held(limits.max_message_size):
            raise ConfigError(
                "max_held",
                f"({limits.max_held:,} bytes) may not exceed {{name}}"
                f" ({self.memory_budget:,} bytes)",
                "memory_budget",
            )
        object.__setattr__(self, "limits", attrs.evolve(limits, max_held=self.memory_budget))
