"""The README, run as a reader meets it: every shell and Python block, in
order, as written, from a directory laid out like the repository's top.

A block marked ``<!-- readme-test: background -->`` starts a server that
later blocks use: it runs in the background until the end of the test, and
the next block starts once it listens. A block marked ``<!-- readme-test:
skip: REASON -->`` is deliberately not run (installing system units, the
test suite itself), and says why. Every other block must exit 0 within its
time bound."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LISTENING, ROOT

FENCE = re.compile(
    r"(?:^<!-- readme-test: (?P<marker>[^\n]*?) -->\n)?^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
RUNNABLE = ("sh", "python")
BLOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    marker: str

    def __str__(self) -> str:
        return f"README.md line {self.line}: {self.code.splitlines()[0]}"


def readme_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text()
    return [
        Block(
            text.count("\n", 0, match.start("code")),
            match["lang"],
            match["code"],
            match["marker"] or "",
        )
        for match in FENCE.finditer(text)
    ]


def test_every_runnable_block_is_run_or_says_why_not() -> None:
    blocks = readme_blocks()
    assert len([b for b in blocks if b.lang in RUNNABLE]) >= 8
    for block in blocks:
        assert block.lang, f"{block}: a fence without a language"
        if block.marker:
            assert block.marker == "background" or block.marker.startswith("skip: "), block
            assert block.lang in RUNNABLE, block


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


def test_readme_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    background = _Background(tmp_path)
    ran, skipped = [], []
    try:
        for block in readme_blocks():
            if block.lang not in RUNNABLE:
                continue
            if block.marker.startswith("skip: "):
                skipped.append(block)
                continue
            if "haproxy " in block.code and shutil.which("haproxy") is None:
                skipped.append(block)  # an optional dependency, as the README says
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
    assert b"hello world" in outputs
    assert b"EndOfStream()" in outputs  # the library example reaches the end, and stops
    assert b"one two three" in outputs or b"onetwothree" in outputs
    assert not any(path.name == "big.bin" for path in tmp_path.iterdir())  # it cleans up
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed: its README block was not run")
