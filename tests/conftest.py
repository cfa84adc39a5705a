"""Fixtures shared by the tests: TLS files, short paths for unix sockets,
and child processes killed when a test ends. What the tests share besides
fixtures is in ``tests/support/``."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.processes import ChildProcess, python_command
from tests.support.tls import TLSFiles

os.environ.setdefault("PYTHONUNBUFFERED", "1")

# The servers the tests start inherit how this process treats SIGHUP, and a
# server keeps a signal ignored that whoever started it ignored (as `nohup`
# does). Run under `nohup`, the tests would start servers deaf to SIGHUP:
# they start them as from a terminal, and the test of `nohup` ignores it itself.
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


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
