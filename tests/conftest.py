"""Helpers shared by the tests: servers on port 0, child processes, and the
peer servers the benchmarks compare (read from ``benchmarks/servers.py``
run as a program: the tests use the benchmarks' list, not their code)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme

from trio_echo import EchoServer, ServerConfig, open_listeners

ROOT = Path(__file__).resolve().parent.parent
COVERAGE_IN_CHILDREN = "COVERAGE_PROCESS_CONFIG"
"""Set by coverage (``patch = ["subprocess"]``) for the Python programs the tests
start to measure themselves; the peers, which are not trio_echo, go without."""
LISTENING = re.compile(rb"listening on (?:\[[^\]]+\]|[^\s:]+):(\d+)")


class ChildProcess:
    """A program started for a test; its output goes to files.

    Files, not pipes: a chatty child (the Twisted original prints every
    chunk) would block on a full pipe that nobody reads.
    """

    def __init__(
        self,
        command: Sequence[str],
        directory: Path,
        *,
        pass_fds: Sequence[int] = (),
        measured: bool = True,
    ) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not measured:
            env.pop(COVERAGE_IN_CHILDREN, None)
        self.stdout_path = Path(tempfile.mkstemp(prefix="stdout-", dir=directory)[1])
        self.stderr_path = Path(tempfile.mkstemp(prefix="stderr-", dir=directory)[1])
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
                pass_fds=tuple(pass_fds),
            )
        self.port = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()

    def rss(self) -> int:
        """Resident memory now, in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match[1]) * 1024

    def wait_for_port(self, timeout: float = 30.0) -> int:
        """Wait for the 'listening on HOST:PORT' line; return the port."""
        self.wait_for_line(LISTENING, timeout)
        match = LISTENING.search(self.stdout)
        assert match is not None
        self.port = int(match[1])
        return self.port

    def wait_for_line(self, pattern: re.Pattern[bytes], timeout: float = 30.0) -> None:
        """Wait until standard output has a match for ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern.search(self.stdout):
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"no 'listening on' line from {self.popen.args}: "
            f"stdout={self.stdout[-500:]!r} stderr={self.stderr[-2000:]!r}"
        )

    def stop(self) -> None:
        """Kill the process, and its children (workers run in sessions of their own)."""
        for pid in children(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)


@dataclass(frozen=True)
class Peer:
    """A server the benchmarks compare, as ``benchmarks/servers.py`` lists it."""

    name: str
    label: str
    modes: tuple[str, ...]
    command: tuple[str, ...]  # with {port} and {mode} to fill in
    missing: str | None  # why it cannot run here, if it cannot

    def start(self, mode: str, directory: Path, *extra: str) -> ChildProcess:
        """Start it in ``mode`` on a free port, and wait until it listens.

        ``extra`` arguments go at the end of its command line.
        """
        command = [part.format(port=0, mode=mode) for part in self.command] + list(extra)
        process = ChildProcess(command, directory, measured=self.name == "trio-echo")
        process.wait_for_port()
        return process


@functools.cache
def peers() -> dict[str, Peer]:
    """Every peer server, by name."""
    listing = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "servers.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return {
        entry["name"]: Peer(
            name=entry["name"],
            label=entry["label"],
            modes=tuple(entry["modes"]),
            command=tuple(entry["command"]),
            missing=entry["missing"],
        )
        for entry in json.loads(listing)
    }


def one_byte_at_a_time(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def random_chunks(raw: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, start = [], 0
    while start < len(raw):
        end = start + rng.randint(1, max(1, len(raw) // 3))
        chunks.append(raw[start:end])
        start = end
    return chunks


def chunkings(raw: bytes) -> Iterator[list[bytes]]:
    """Every way of cutting ``raw`` that the byte-level tests use: whole, one
    byte at a time, at every split point, and under seeded random chunkings."""
    yield [raw] if raw else []
    yield one_byte_at_a_time(raw)
    for split in range(1, len(raw)):
        yield [raw[:split], raw[split:]]
    for seed in range(20):
        yield random_chunks(raw, seed)


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


def connect(where: int | str | Path, timeout: float = 10) -> socket.socket:
    """A blocking socket connected to 127.0.0.1:PORT, or to a unix socket's path."""
    if isinstance(where, int):
        return socket.create_connection(("127.0.0.1", where), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(where))
    except BaseException:
        sock.close()
        raise
    return sock


def round_trip(where: int | str | Path, payload: bytes) -> bytes:
    """One count message over a blocking socket (TCP port or unix path); the echo back."""
    with connect(where) as sock:
        sock.sendall(b"%d " % len(payload) + payload)
        received = b""
        while data := sock.recv(65536):
            received += data
    return received


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a test certificate authority and a certificate it issued.

    Attributes:
        ca: The authority's certificate (what a client trusts).
        cert: The server's certificate, for ``localhost``, 127.0.0.1 and ::1.
        key: Its private key.
        client_cert: A client certificate from the same authority.
        client_key: Its private key.
    """

    ca: str
    cert: str
    key: str
    client_cert: str
    client_key: str


@pytest.fixture(scope="session")
def tls_authority() -> trustme.CA:
    """A certificate authority made for this test run (ECDSA P-256)."""
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


@pytest.fixture(scope="session")
def tls_files(tls_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """Certificate files for ``localhost``, made once per test run."""
    directory = tmp_path_factory.mktemp("tls")
    server = tls_authority.issue_cert(
        "localhost", "127.0.0.1", "::1", key_type=trustme.KeyType.ECDSA
    )
    client = tls_authority.issue_cert("client@example.org", key_type=trustme.KeyType.ECDSA)
    files = TLSFiles(*(str(directory / name) for name in ("ca", "cert", "key", "ccert", "ckey")))
    tls_authority.cert_pem.write_to_path(files.ca)
    server.cert_chain_pems[0].write_to_path(files.cert)
    server.private_key_pem.write_to_path(files.key)
    client.cert_chain_pems[0].write_to_path(files.client_cert)
    client.private_key_pem.write_to_path(files.client_key)
    return files


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path, for unix sockets.

    A socket's path must fit in about 107 bytes; pytest's ``tmp_path`` can be
    longer.
    """
    with tempfile.TemporaryDirectory(prefix="te-", dir="/tmp") as directory:
        yield Path(directory)


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """Start Python child processes that are killed when the test ends."""
    processes: list[ChildProcess] = []

    def start(*args: str, name: str = "proc") -> ChildProcess:
        process = ChildProcess(python_command(*args), tmp_path)
        processes.append(process)
        return process

    yield start
    for process in processes:
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
        from benchmarks.provenance import code_hashes, environment
        from benchmarks.servers import SERVERS

        names = {outcome["server"] for outcome in _conformance}
        document = {
            "environment": environment(),
            "code": code_hashes(server for name, server in SERVERS.items() if name in names),
            "outcomes": _conformance,
        }
        Path(path).write_text(json.dumps(document, indent=1) + "\n")
