"""Every server the benchmarks compare, held to the conformance cases
(``tests/support/conformance.py``) over TCP: the report's conformance table.

Where a server does not conform, the case is an expected failure with the
reason (strict: if it starts passing, the suite says so), and the table
shows which model passes what (``pytest benchmarks/tests/test_conformance.py
--conformance-json=PATH`` writes the outcomes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from benchmarks.tests.peers import peers
from tests.support.conformance import CASES, Servers

_ORIGINAL_INT = "parses the length with a bare int(), which accepts it"
# A leading space passes for the original only by accident: int(b"") raises
# inside dataReceived, and Twisted drops the connection on the exception.
_READ_THEN_SEND = (
    "the tutorial form reads, then sends: with a client that sends a whole 16 MiB"
    " message before it reads, both block in a send once the kernel's buffers fill"
    " (the conforming form adds a writer for this)"
)
EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    ("trio-tutorial", "send-everything-then-read"): _READ_THEN_SEND,
    ("threads-tutorial", "send-everything-then-read"): _READ_THEN_SEND,
    ("anyio-asyncio", "peer-that-never-reads"): (
        "AnyIO's asyncio backend (4.16) leaves an accepted stream's transport reading"
        " (TCPSocketListener.accept does not pause it, where connect_tcp does), and"
        " SocketStream.receive pauses it only after a receive that had to wait: while"
        " the peer keeps bytes queued, no receive waits, so StreamProtocol.read_queue"
        " takes everything (320 MiB taken, the server's RSS +329 MiB)"
    ),
    ("twisted-original", "bytes-after-payload"): (
        "echoes the bytes after the payload and never closes (its datalen == "
        "contentlength test is jumped over)"
    ),
    ("twisted-original", "negative-length"): _ORIGINAL_INT + ", and then never closes",
    ("twisted-original", "plus-sign"): _ORIGINAL_INT,
    ("twisted-original", "underscore-in-length"): _ORIGINAL_INT,
    ("twisted-original", "leading-zero"): _ORIGINAL_INT,
    ("twisted-original", "tab-separator"): (
        "waits for a space that never comes, accumulating the prefix without a bound"
    ),
    ("twisted-original", "oversized-length"): "accepts any length and waits for the payload",
    ("twisted-original", "endless-digits"): (
        "accumulates the length prefix without a bound (its own comment says so)"
    ),
    ("twisted-original", "peer-that-never-reads"): (
        "transport.write buffers without limit: a peer that never reads grows it"
    ),
}

_HALF_CLOSE_RACE = (
    "drops the echo it has not written yet when the client half-closes (Twisted's "
    "default protocol closes on an end of stream): a race, lost or won by timing"
)
# Expected failures that depend on timing, so they may also pass.
RACY_FAILURES: dict[tuple[str, str], str] = {
    ("twisted-original", "echo-until-half-close"): _HALF_CLOSE_RACE,
    ("twisted-original", "echo-split"): _HALF_CLOSE_RACE,
}


def _params() -> Iterator[object]:
    for server in peers().values():
        for case in CASES:
            marks: list[pytest.MarkDecorator] = [pytest.mark.conformance]
            reason = EXPECTED_FAILURES.get((server.name, case))
            if reason is not None:
                marks.append(pytest.mark.xfail(reason=reason, strict=True))
            reason = RACY_FAILURES.get((server.name, case))
            if reason is not None:
                marks.append(pytest.mark.xfail(reason=reason, strict=False))
            yield pytest.param(server.name, case, marks=marks, id=f"{server.name}-{case}")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("peers"))
    yield running
    running.stop()


@pytest.mark.parametrize(("server_name", "case"), list(_params()))
def test_conformance(
    server_name: str,
    case: str,
    servers: Servers,
    record_property: Callable[[str, object], None],
) -> None:
    server = peers()[server_name]
    mode, check = CASES[case]
    record_property("server", server_name)
    record_property("case", case)
    if (missing := server.missing) is not None:
        pytest.skip(f"{server.label}: {missing}")
    if mode not in server.modes:
        pytest.skip(f"{server.label} has no {mode} mode")
    process, target = servers.get(server.name, server.command, "tcp", mode)
    check(target, process)
    assert process.popen.poll() is None, "the server exited"
