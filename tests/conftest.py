"""Helpers shared by the tests: servers on port 0, and peer processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from benchmarks.servers import ServerProcess
from trio_echo import EchoServer, ServerConfig, open_listeners

ROOT = Path(__file__).resolve().parent.parent


async def start_server(
    nursery: trio.Nursery, host: str = "127.0.0.1", **settings: object
) -> tuple[EchoServer, int]:
    """Start an EchoServer on a free port; return it and its port."""
    server = EchoServer(ServerConfig(**settings), open_listeners(host, 0))  # type: ignore[arg-type]
    addresses = await nursery.start(server.serve)
    return server, addresses[0].port


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (state another process or socket changes)."""
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110  (nothing here to wait on but the state)
            await trio.sleep(0.01)


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """Start Python child processes that are killed when the test ends."""
    processes: list[ServerProcess] = []

    def start(*args: str, name: str = "proc") -> ServerProcess:
        process = ServerProcess(python_command(*args), directory=tmp_path)
        processes.append(process)
        return process

    yield start
    for process in processes:
        # Workers run in sessions of their own: stop them too.
        for pid in children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.stop()


def children(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them."""
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in path.read_text().split()]
        except FileNotFoundError:  # that thread has ended
            continue
    return sorted(found)


def twisted_available() -> bool:
    try:
        import twisted  # noqa: F401
    except ImportError:
        return False
    return True


requires_twisted = pytest.mark.skipif(
    not twisted_available(), reason="Twisted is not installed (pip install '.[test]')"
)

os.environ.setdefault("PYTHONUNBUFFERED", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conformance-json",
        metavar="PATH",
        default=None,
        help="write the conformance suite's outcome per server and case to PATH",
    )


_conformance: list[dict[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    properties = dict(report.user_properties)
    if "server" not in properties or report.when != "call":
        return
    reason = ""
    if hasattr(report, "wasxfail"):
        outcome = "xfail" if report.skipped else "xpass"
        reason = report.wasxfail
    elif report.skipped:
        outcome = "skipped"
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
    else:
        outcome = report.outcome
    _conformance.append(
        {
            "server": str(properties["server"]),
            "case": str(properties["case"]),
            "outcome": outcome,
            "reason": reason,
        }
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--conformance-json")
    if path and _conformance:
        Path(path).write_text(json.dumps(_conformance, indent=1) + "\n")
