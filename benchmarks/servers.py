"""Every implementation of the protocol that the benchmarks and the
conformance suite compare, and how to start one as a process.

Each takes ``--port PORT --mode MODE`` and prints ``listening on
HOST:PORT mode=MODE`` once it listens (port 0 lets the system pick).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import C_EPOLL_SOURCE, NoCompilerError, compile_c, find_compiler

PEERS = Path(__file__).resolve().parent / "peers"
ROOT = PEERS.parent.parent
LISTENING = re.compile(rb"listening on (?:\[[^\]]+\]|[^\s:]+):(\d+)")
ALL_MODES = ("count", "echo", "framed")


@dataclass(frozen=True)
class Server:
    """One implementation of the protocol.

    Attributes:
        name: Its identifier (command line, results).
        label: How tables name it.
        model: The concurrency model, in a few words.
        modes: The modes it serves.
        requires: Python modules it needs (optional extras).
        build: Makes its command from (port, mode).
        handler: The code that serves one connection, for counting its lines
            (see `benchmarks.lines.count`: ``"path"`` or ``"path::name"``).
        program: The files of the whole server program (the handler's places
            outside them are added).
    """

    name: str
    label: str
    model: str
    build: Callable[[int, str], list[str]]
    modes: tuple[str, ...] = ALL_MODES
    requires: tuple[str, ...] = field(default=())
    compiled: bool = False
    handler: tuple[str, ...] = ()
    program: tuple[str, ...] = ()

    def missing(self) -> str | None:
        """Why this server cannot run here, or None if it can."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install '.[bench]')"
        if self.compiled and find_compiler() is None:
            return "no C compiler (install gcc)"
        return None

    def command(self, port: int, mode: str) -> list[str]:
        """The command line that starts it on ``port`` in ``mode``."""
        return self.build(port, mode)


def _python_peer(script: str, *extra: str) -> Callable[[int, str], list[str]]:
    def build(port: int, mode: str) -> list[str]:
        return [
            sys.executable,
            str(PEERS / script),
            "--port",
            str(port),
            "--mode",
            mode,
            "--quiet",
            *extra,
        ]

    return build


def trio_echo_command(
    port: int, mode: str, *, workers: int = 1, log_level: str = "WARNING"
) -> list[str]:
    """The command that starts trio_echo's server.

    At WARNING by default: no line per connection, as the other servers log
    nothing.
    """
    return [
        sys.executable,
        "-m",
        "trio_echo",
        "server",
        "--port",
        str(port),
        "--mode",
        mode,
        "--log-level",
        log_level,
        "--workers",
        str(workers),
    ]


BASELINE = os.environ.get("TRIO_ECHO_BASELINE")
"""A checkout of trio_echo to compare with (its top folder), if one is named:
the harness then also runs it, as ``trio-echo-baseline``."""


def _baseline_command(port: int, mode: str) -> list[str]:
    command = trio_echo_command(port, mode)
    start = (
        f"import runpy, sys; sys.path.insert(0, {BASELINE!r}); "
        "runpy.run_module('trio_echo', run_name='__main__', alter_sys=True)"
    )
    return [command[0], "-c", start, *command[3:]]


def _c_epoll(port: int, mode: str) -> list[str]:
    return [str(compile_c(C_EPOLL_SOURCE)), "--port", str(port), "--mode", mode]


def _in(peer: str, *names: str) -> tuple[str, ...]:
    """Places in the peer file ``peer``: the whole file, or ``names`` in it."""
    path = f"benchmarks/peers/{peer}"
    return tuple(f"{path}::{name}" for name in names) or (path,)


_THREADS_HANDLER = (
    *_in("threads.py", "Outbox", "Handler"),
    *_in("_common.py", "pump_blocking", "unread"),
)

SERVERS: dict[str, Server] = {
    server.name: server
    for server in [
        Server(
            "twisted-original",
            "Twisted original",
            "Twisted reactor, the course's EchoCount/Echo as written (Twisted's default"
            " listen backlog, 50)",
            _python_peer("twisted_original.py"),
            modes=("count", "echo"),
            requires=("twisted",),
            handler=_in("twisted_original.py", "log", "Echo", "EchoCount"),
            program=_in("twisted_original.py"),
        ),
        Server(
            "trio-echo",
            "trio_echo",
            "Trio, a nursery per connection",
            trio_echo_command,
            handler=(
                "trio_echo/server/_pump.py",
                "trio_echo/server/_transport.py",
                "trio_echo/server/_writer.py",
            ),
            program=(
                "trio_echo/server/_pump.py",
                "trio_echo/server/_transport.py",
                "trio_echo/server/_writer.py",
                "trio_echo/server/_listeners.py",
                "trio_echo/server/_server.py",
            ),
        ),
        Server(
            "trio",
            "trio (plain)",
            "Trio, conforming: serve_tcp, SocketStream, a nursery per connection with a"
            " writer task",
            _python_peer("trio_plain.py"),
            handler=(*_in("trio_plain.py", "handle"), *_in("_common.py", "unread")),
            program=_in("trio_plain.py"),
        ),
        Server(
            "trio-tutorial",
            "trio (tutorial)",
            "Trio as its tutorial writes an echo server: serve_tcp, one task per connection"
            " that reads, then sends",
            _python_peer("trio_tutorial.py"),
            handler=(*_in("trio_tutorial.py", "handle"), *_in("_common.py", "unread")),
            program=(*_in("trio_tutorial.py"), *_in("trio_plain.py", "main")),
        ),
        *(
            Server(
                f"anyio-{backend}",
                f"AnyIO on {backend}",
                f"AnyIO task group per connection, on its {backend} backend",
                _python_peer("anyio_peer.py", "--backend", backend),
                requires=("anyio",),
                handler=(*_in("anyio_peer.py", "receive", "handle"), *_in("_common.py", "unread")),
                program=_in("anyio_peer.py"),
            )
            for backend in ("trio", "asyncio")
        ),
        Server(
            "asyncio-taskgroup",
            "asyncio TaskGroup",
            "asyncio streams, a TaskGroup per connection (reader and writer tasks)",
            _python_peer("asyncio_taskgroup.py"),
            handler=(
                *_in("asyncio_taskgroup.py", "handle"),
                *_in("asyncio_streams.py", "pump", "close"),
                *_in("_common.py", "unread"),
            ),
            program=_in("asyncio_taskgroup.py"),
        ),
        Server(
            "twisted",
            "Twisted",
            "Twisted reactor, a Protocol on the CountFramer",
            _python_peer("twisted_framer.py"),
            requires=("twisted",),
            handler=(*_in("twisted_framer.py", "CountEcho"), *_in("_common.py", "unread")),
            program=_in("twisted_framer.py"),
        ),
        Server(
            "asyncio-streams",
            "asyncio streams",
            "asyncio, a coroutine per connection (StreamReader/Writer)",
            _python_peer("asyncio_streams.py"),
            handler=(
                *_in("asyncio_streams.py", "handle", "pump", "close"),
                *_in("_common.py", "unread"),
            ),
            program=_in("asyncio_streams.py"),
        ),
        Server(
            "asyncio-protocol",
            "asyncio protocol",
            "asyncio Protocol/Transport callbacks",
            _python_peer("asyncio_protocol.py"),
            handler=(
                *_in("asyncio_protocol.py", "EchoServerProtocol"),
                *_in("_common.py", "unread"),
            ),
            program=_in("asyncio_protocol.py"),
        ),
        Server(
            "uvloop-protocol",
            "uvloop protocol",
            "asyncio Protocol/Transport on uvloop",
            _python_peer("asyncio_protocol.py", "--uvloop"),
            requires=("uvloop",),
            handler=(
                *_in("asyncio_protocol.py", "EchoServerProtocol"),
                *_in("_common.py", "unread"),
            ),
            program=_in("asyncio_protocol.py"),
        ),
        Server(
            "gevent",
            "gevent",
            "gevent StreamServer: a greenlet per connection plus a writer greenlet",
            _python_peer("gevent_server.py"),
            requires=("gevent",),
            handler=(
                *_in("gevent_server.py", "handle"),
                *_in("_common.py", "pump_blocking", "unread"),
            ),
            program=_in("gevent_server.py"),
        ),
        Server(
            "threads",
            "threads",
            "a thread per connection (socketserver) plus a writer thread",
            _python_peer("threads.py"),
            handler=_THREADS_HANDLER,
            program=_in("threads.py"),
        ),
        Server(
            "threads-tutorial",
            "threads (tutorial)",
            "a thread per connection (socketserver) that reads, then sends",
            _python_peer("threads_tutorial.py"),
            handler=(
                *_in("threads_tutorial.py", "Handler"),
                *_in("_common.py", "pump_blocking", "unread"),
            ),
            program=(*_in("threads_tutorial.py"), *_in("threads.py", "Server", "serve")),
        ),
        Server(
            "forking",
            "forking",
            "a process per connection (socketserver.ForkingTCPServer), threads' handler in it",
            _python_peer("forking.py"),
            handler=_THREADS_HANDLER,
            program=(*_in("forking.py"), *_in("threads.py", "serve")),
        ),
        Server(
            "c-epoll",
            "C epoll",
            "C, one thread on epoll (the physical reference)",
            _c_epoll,
            compiled=True,
            handler=tuple(
                f"benchmarks/peers/c_epoll.c::{name}"
                for name in (
                    "set_events",
                    "conn_close",
                    "queue",
                    "frame",
                    "flush",
                    "settle",
                    "on_readable",
                    "on_writable",
                )
            ),
            program=("benchmarks/peers/c_epoll.c",),
        ),
        *(
            [
                Server(
                    "trio-echo-baseline",
                    "trio_echo (baseline)",
                    f"trio_echo as checked out in {BASELINE}",
                    _baseline_command,
                )
            ]
            if BASELINE
            else []
        ),
    ]
}


FAMILIES: dict[str, tuple[str, ...]] = {
    "trio": ("trio-echo", "trio", "trio-tutorial", "anyio-trio"),
    "asyncio": (
        "asyncio-taskgroup",
        "asyncio-streams",
        "asyncio-protocol",
        "uvloop-protocol",
        "anyio-asyncio",
    ),
    "Twisted and gevent": ("twisted-original", "twisted", "gevent"),
    "threads and processes": ("threads", "threads-tutorial", "forking"),
}
"""The servers in groups of one library or kind, as the plots draw them (C
epoll, the floor, is drawn in every group)."""

LINGER = "linger deadline"  # how long it waits for the peer once it has half-closed
TIMEOUTS = "header and idle timeouts"
DATA_RATE = "minimum data rate"
BUDGET = "memory budget"  # over all connections, not per connection
CAP = "connection cap"
DRAIN = "graceful drain"  # stops accepting, lets connections finish within a grace

ENFORCES: dict[str, tuple[str, ...]] = {
    "twisted-original": (),
    "trio-echo": (LINGER, TIMEOUTS, DATA_RATE, BUDGET, CAP, DRAIN),
    "forking": (LINGER, f"{CAP} (1,024 processes)"),
    "c-epoll": (),
}
"""What each server enforces beyond the protocol's bytes: a "realistic" server
(trio_echo) pays for guarding itself against its peers, a "stripped" one does
not. Every peer that drives the shared protocol keeps its deadline once it has
half-closed, and a bound on what each connection queues; a server not named
here has that deadline only."""


def enforces(server: Server) -> tuple[str, ...]:
    """What ``server`` enforces (see `ENFORCES`)."""
    return ENFORCES.get(server.name, (LINGER,))


def family(server: Server) -> str | None:
    """The group ``server`` is drawn in (see `FAMILIES`), or None (C epoll, a
    baseline)."""
    return next((name for name, members in FAMILIES.items() if server.name in members), None)


def listing() -> list[dict[str, object]]:
    """Every server as plain data: what the tests and other programs read.

    ``command`` has ``{port}`` and ``{mode}`` where those go; it is empty
    when the server cannot run here (``missing`` says why).
    """
    entries = []
    for server in SERVERS.values():
        missing = server.missing()
        command: list[str] = []
        if missing is None:
            try:
                command = server.command(PORT_MARK, MODE_MARK)  # type: ignore[arg-type]
            except NoCompilerError as error:
                missing = str(error)
        entries.append(
            {
                "name": server.name,
                "label": server.label,
                "model": server.model,
                "modes": list(server.modes),
                "command": [str(part) for part in command],
                "missing": missing,
            }
        )
    return entries


PORT_MARK = "{port}"
MODE_MARK = "{mode}"

__all__ = [
    "ENFORCES",
    "FAMILIES",
    "SERVERS",
    "NoCompilerError",
    "Server",
    "enforces",
    "family",
    "listing",
    "trio_echo_command",
]

if __name__ == "__main__":
    import json

    print(json.dumps(listing(), indent=1))
