"""The README and every page of the documentation, run as a reader meets
them: every shell and Python block of a page, in order, as written, from a
directory laid out like the repository's top.

A block marked ``<!-- readme-test: background -->`` starts a server that
later blocks of its page use: it runs in the background until the end of
the page, and the next block starts once it listens. A block marked
``<!-- readme-test: skip: REASON -->`` is deliberately not run (installing
system units, the test suite itself), and says why. Every other block must
exit 0 within its time bound.

The blocks use the ports a reader would (50007, 5001 and up). So that no
other program holding one can fail the test, each page runs in a network
namespace of its own (``unshare -rn``: a loopback nobody else is on), where
the platform allows; where it does not, a page is skipped when one of its
ports is taken, naming the port and who holds it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import LISTENING, ROOT

FENCE = re.compile(
    r"(?:^<!-- readme-test: (?P<marker>[^\n]*?) -->\n)?^```(?P<lang>[^\n`]*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
RUNNABLE = ("sh", "python")
BLOCK_TIMEOUT = 120.0


PAGES = [
    "README.md",
    *sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "docs").rglob("*.md")
        if "_build" not in path.parts
    ),
]
"""Every page whose blocks are run: the README, then the site's pages."""

EXPECTED: dict[str, list[bytes]] = {
    "README.md": [b"hello world"],
    "docs/tutorial.md": [b"hello world", b"[b'one', b'two', b'three']", b"complete 7 5"],
    "docs/discussion/connection.md": [b"EndOfStream()", b"b'hello' complete"],
    "docs/how-to/tls.md": [b"hello", b"exit status 10", b"TLS certificate reloaded"],
    "docs/how-to/stopping.md": [b"echoed: hello you", b"the server exited 0"],
    "docs/how-to/metrics.md": [b"trio_echo_connections_accepted_total 1.0"],
    "docs/how-to/unix.md": [b"over a unix socket"],
}
"""What a page's blocks print, in part: the examples do what their page says."""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    marker: str

    def __str__(self) -> str:
        return f"{self.page} line {self.line}: {self.code.splitlines()[0]}"


def page_blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    return [
        Block(
            page,
            text.count("\n", 0, match.start("code")),
            match["lang"],
            match["code"],
            match["marker"] or "",
        )
        for match in FENCE.finditer(text)
    ]


def runnable(block: Block) -> bool:
    return block.lang in RUNNABLE and not block.marker.startswith("skip: ")


def test_every_runnable_block_is_run_or_says_why_not() -> None:
    blocks = [block for page in PAGES for block in page_blocks(page)]
    assert len([b for b in blocks if runnable(b)]) >= 20
    for block in blocks:
        assert block.lang, f"{block}: a fence without a language"
        if block.marker:
            assert block.marker == "background" or block.marker.startswith("skip: "), block
            assert block.lang in RUNNABLE, block
    assert set(EXPECTED) <= set(PAGES)


class _Background:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, block: Block, env: dict[str, str]) -> None:
        output = self.directory / f"background-{len(self.processes)}.log"
        with output.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", block.code],
                cwd=self.directory,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append((process, output))
        deadline = time.monotonic() + 30
        while not LISTENING.search(output.read_bytes()):
            assert process.poll() is None, f"{block} exited: {output.read_bytes()!r}"
            assert time.monotonic() < deadline, f"{block} did not listen"
            time.sleep(0.05)

    def stop(self) -> None:
        for process, output in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise AssertionError(f"did not stop on SIGINT: {output.read_bytes()!r}") from None


def run_block(
    command: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """Run a block to its end, in a process group of its own; then stop
    whatever it left running (a block that failed midway leaves its
    background servers behind)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


OWN_NETWORK = "TRIO_ECHO_README_OWN_NETWORK"
"""Set in the test's environment when it runs in a network namespace of its own."""


def own_network_command() -> list[str] | None:
    """A command prefix that runs a program in a new network namespace with
    its loopback up, or None where this platform cannot make one."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return None
    prefix = [
        unshare,
        "--user",
        "--map-root-user",
        "--net",
        "sh",
        "-c",
        f'{ip} link set lo up && exec "$@"',
        "sh",
    ]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def page_ports(page: str) -> list[int]:
    """The TCP ports a page's blocks use."""
    ports = set()
    for block in page_blocks(page):
        if block.lang in RUNNABLE:
            ports |= {int(port) for port in re.findall(r"(?:--port |:)(\d{4,5})\b", block.code)}
    return sorted(ports)


def holder(port: int) -> str | None:
    """Who listens on or is connected from 127.0.0.1 ``port``, or None if it is free."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            pass
        else:
            return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                pid = fd.parent.parent.name
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                return f"process {pid} ({command.decode(errors='replace').strip()[:80]})"
    return "a process this user cannot see"


@pytest.mark.parametrize(
    "page", [page for page in PAGES if any(runnable(block) for block in page_blocks(page))]
)
def test_page_runs_as_written(page: str, tmp_path: Path) -> None:
    if os.environ.get(OWN_NETWORK) != "1":
        prefix = own_network_command()
        if prefix is not None:
            # The same test, run again where its ports are surely free.
            result = subprocess.run(
                [
                    *prefix,
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-rs",
                    "-p",
                    "no:cacheprovider",
                    f"{__file__}::test_page_runs_as_written[{page}]",
                ],
                cwd=ROOT,
                env=dict(os.environ, **{OWN_NETWORK: "1"}),
                capture_output=True,
                check=False,
                timeout=900,
            )
            output = (result.stdout + result.stderr).decode(errors="replace")
            assert result.returncode == 0, output[-4000:]
            if skipped := re.search(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", output, re.MULTILINE):
                pytest.skip(skipped[1])
            return
        for port in page_ports(page):
            if (who := holder(port)) is not None:
                pytest.skip(
                    f"port {port}, which {page} uses, is taken by {who}, and this"
                    " platform cannot give the test a network of its own (unshare -rn)"
                )
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    scratch = tmp_path / "tmp"  # the blocks' TMPDIR: what they leave there is seen
    scratch.mkdir()
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        TMPDIR=str(scratch),
    )
    background = _Background(tmp_path)
    ran, skipped = [], []
    try:
        for block in page_blocks(page):
            if not runnable(block):
                continue
            if "haproxy " in block.code and shutil.which("haproxy") is None:
                # An optional dependency: the block says so, in one sentence.
                result = run_block(["bash", "-e", "-c", block.code], tmp_path, env)
                assert result.returncode == 1
                assert result.stderr.startswith(b"This needs HAProxy: install it"), result
                assert result.stderr.count(b"\n") == 1, result
                skipped.append(block)
                continue
            if block.marker == "background":
                background.start(block, env)
                continue
            command = (
                ["bash", "-e", "-c", block.code]
                if block.lang == "sh"
                else [sys.executable, "-c", block.code]
            )
            result = run_block(command, tmp_path, env)
            assert result.returncode == 0, (
                f"{block} exited {result.returncode}: "
                f"stdout={result.stdout[-1000:]!r} stderr={result.stderr[-2000:]!r}"
            )
            ran.append((block, result.stdout))
    finally:
        background.stop()
    outputs = b"".join(stdout for _block, stdout in ran)
    for expected in EXPECTED.get(page, []):
        assert expected in outputs, (expected, outputs[-2000:])
    assert not any(path.name == "big.bin" for path in tmp_path.iterdir())  # it cleans up
    assert not list(scratch.iterdir())  # and leaves no temporary files behind
    if skipped:
        pytest.skip(f"haproxy is not installed: {skipped[0]} was not run")
