"""trio_echo held to the conformance cases (``tests/support/conformance.py``):
the protocol's written behaviour over real sockets, on TCP, TLS and a unix
socket, with the server running as a process."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.support.conformance import CASES, Servers
from tests.support.tls import TLSFiles

TRIO_ECHO = (
    *(sys.executable, "-m", "trio_echo", "server", "--port", "{port}", "--mode", "{mode}"),
    *("--log-level", "WARNING", "--workers", "1"),
)
"""Its command line, with ``{port}`` and ``{mode}`` to fill in."""

TRANSPORTS = ("tcp", "tls", "unix")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("trio-echo"), tls_files)
    yield running
    running.stop()


@pytest.mark.conformance
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_conformance(case: str, transport: str, servers: Servers) -> None:
    mode, check = CASES[case]
    process, target = servers.get("trio-echo", TRIO_ECHO, transport, mode)
    check(target, process)
    assert process.popen.poll() is None, "the server exited"
