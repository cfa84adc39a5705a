"""--metrics: the server's state for Prometheus, checked against what the
test did; one scrape for every worker; scrapes served at once, so that
silent or hostile scrapers stall neither serving nor another scrape;
without the extra, one sentence."""

from __future__ import annotations

import math
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
import trio

from tests.support.processes import ROOT, ChildProcess
from tests.support.streams import receive_all, round_trip, start_server
from trio_echo import EchoServer, ServerConfig, open_listeners
from trio_echo.server import _metrics
from trio_echo.server._metrics import (
    ServerMetrics,
    SnapshotChannel,
    answer_snapshots,
    serve_metrics,
    serve_scrapes,
)

prometheus_parser = pytest.importorskip(
    "prometheus_client.parser", reason="the metrics extra (prometheus-client) is not installed"
)
pytest.importorskip("h11", reason="the metrics extra (h11) is not installed")

Spawn = Callable[..., ChildProcess]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in prometheus_parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


async def http(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` raw; return the status and the body."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(request)
        answer = b""
        while data := await stream.receive_some():
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def scrape(port: int) -> Samples:
    status, body = await http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    return parse(body.decode())


async def count_message(port: int, raw: bytes) -> bytes:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(raw)
        answer = b""
        while data := await stream.receive_some():
            answer += data
    return answer


async def start_metrics(nursery: trio.Nursery, server: EchoServer) -> int:
    (sock,) = open_listeners("127.0.0.1", 0)
    metrics = server.metrics
    assert metrics is not None

    async def collect() -> list[tuple[str | None, dict[str, object]]]:
        assert metrics is not None
        return [(None, metrics.snapshot())]

    nursery.start_soon(serve_metrics, sock, collect)
    return int(sock.getsockname()[1])


async def test_a_scrape_shows_what_the_connections_did(nursery: trio.Nursery) -> None:
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0), metrics=True)
    port = (await nursery.start(server.serve))[0].port
    metrics_port = await start_metrics(nursery, server)
    assert await count_message(port, b"5 hello") == b"hello"
    assert await count_message(port, b"3 abc") == b"abc"
    assert await count_message(port, b"-1 x") == b""
    held = await trio.open_tcp_stream("127.0.0.1", port)
    await held.send_all(b"10 12345")
    assert await held.receive_some() == b"12345"  # served, and open
    await trio.testing.wait_all_tasks_blocked()  # the three have ended and been counted
    samples = await scrape(metrics_port)
    await held.aclose()
    assert samples[("trio_echo_connections_accepted_total", ())] == 4
    assert samples[("trio_echo_connections_open", ())] == 1
    ended = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "trio_echo_connections_ended_total"
    }
    assert ended == {"complete": 2, "bad-length": 1}
    assert samples[("trio_echo_messages_total", ())] == 2
    assert samples[("trio_echo_received_bytes_total", ())] == len(b"5 hello3 abc-1 x")
    assert samples[("trio_echo_echoed_bytes_total", ())] == len(b"helloabc")
    assert samples[("trio_echo_memory_budget_bytes", ())] == ServerConfig().memory_budget
    assert samples[("trio_echo_memory_budget_waiting_connections", ())] == 0
    assert samples[("trio_echo_accept_paused_total", ())] == 0


async def test_pauses_at_the_cap_are_counted(nursery: trio.Nursery) -> None:
    server = EchoServer(
        ServerConfig(max_connections=1), open_listeners("127.0.0.1", 0), metrics=True
    )
    port = (await nursery.start(server.serve))[0].port
    metrics_port = await start_metrics(nursery, server)
    first = await trio.open_tcp_stream("127.0.0.1", port)
    await first.send_all(b"3 a")
    assert await first.receive_some() == b"a"
    second = await trio.open_tcp_stream("127.0.0.1", port)
    await trio.testing.wait_all_tasks_blocked()
    samples = await scrape(metrics_port)
    assert samples[("trio_echo_accept_paused_total", ())] == 1
    assert samples[("trio_echo_connections_open", ())] == 1
    await first.aclose()
    await second.aclose()


async def test_nothing_is_counted_without_metrics(nursery: trio.Nursery) -> None:
    server, _port = await start_server(nursery)
    assert server.metrics is None


async def test_only_get_metrics_is_served(nursery: trio.Nursery) -> None:
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0), metrics=True)
    await nursery.start(server.serve)
    port = await start_metrics(nursery, server)
    assert (await http(port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 404
    assert (await http(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 405
    status, body = await http(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (200, b"")
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"j" * 100_000 + b"\r\n\r\n"
    assert (await http(port, huge))[0] == 431  # the request's head is bounded


async def test_a_hostile_scraper_holds_up_neither_serving_nor_scraping(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_metrics, "HEADER_TIMEOUT", 0.5)
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0), metrics=True)
    port = (await nursery.start(server.serve))[0].port
    metrics_port = await start_metrics(nursery, server)
    silent = await trio.open_tcp_stream("127.0.0.1", metrics_port)
    await silent.send_all(b"GET /met")  # and nothing more
    assert await count_message(port, b"5 still") == b"still"  # serving goes on
    await scrape(metrics_port)  # served beside the silent one
    assert await silent.receive_some() == b""  # which is closed at its header timeout
    await silent.aclose()


class MemoryListener(trio.abc.Listener[trio.abc.HalfCloseableStream]):
    """A listener whose connections are memory stream pairs, made by `connect`."""

    def __init__(self) -> None:
        send: trio.MemorySendChannel[trio.abc.HalfCloseableStream]
        receive: trio.MemoryReceiveChannel[trio.abc.HalfCloseableStream]
        send, receive = trio.open_memory_channel(math.inf)
        self._send, self._receive = send, receive
        self.accepted = 0

    async def connect(self) -> trio.abc.Stream:
        """Connect; return the client's end."""
        client, server = trio.testing.memory_stream_pair()
        await self._send.send(server)
        return client

    async def accept(self) -> trio.abc.HalfCloseableStream:
        stream = await self._receive.receive()
        self.accepted += 1
        return stream

    async def aclose(self) -> None:
        await self._receive.aclose()


async def nothing_to_show() -> list[tuple[str | None, dict[str, object]]]:
    return [(None, ServerMetrics(lambda: 0, lambda: (0, 1, 0)).snapshot())]


async def scrape_through(listener: MemoryListener) -> int:
    """Scrape over a new connection; return the answer's status."""
    stream = await listener.connect()
    await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await receive_all(stream)
    assert b"trio_echo_connections_open " in answer
    return int(answer.split()[1])


async def test_silent_connections_leave_a_scrapes_time_unchanged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    listener = MemoryListener()
    nursery.start_soon(serve_scrapes, listener, nothing_to_show)
    silent = [await listener.connect() for _ in range(4)]  # connected, and nothing sent
    start = trio.current_time()
    assert await scrape_through(listener) == 200
    assert trio.current_time() == start  # not a moment spent on the silent ones
    for stream in silent:
        assert await stream.receive_some() == b""  # closed at the header timeout...
    assert trio.current_time() == start + _metrics.HEADER_TIMEOUT  # ...not later


async def test_past_the_cap_a_scrape_waits_one_header_timeout_at_most(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    listener = MemoryListener()
    nursery.start_soon(serve_scrapes, listener, nothing_to_show)
    silent = [await listener.connect() for _ in range(_metrics.MAX_SCRAPES)]
    start = trio.current_time()
    assert await scrape_through(listener) == 200
    # Accepted once the silent ones timed out, and not before.
    assert trio.current_time() == start + _metrics.HEADER_TIMEOUT
    assert listener.accepted == _metrics.MAX_SCRAPES + 1
    for stream in silent:
        assert await stream.receive_some() == b""


async def test_scrapes_at_once_ask_a_worker_in_turn(nursery: trio.Nursery) -> None:
    ours, theirs = socket.socketpair()
    metrics = ServerMetrics(lambda: 3, lambda: (10, 100, 1))
    nursery.start_soon(answer_snapshots, theirs, metrics)
    channel = SnapshotChannel(trio.socket.from_stdlib_socket(ours))
    answers: list[object] = []

    async def ask() -> None:
        answers.append(await channel.ask())

    async with trio.open_nursery() as scrapes:
        for _ in range(3):
            scrapes.start_soon(ask)
    assert answers == [metrics.snapshot()] * 3  # each its answer, none left out
    channel.channel.close()


def metrics_port_of(process: ChildProcess) -> int:
    deadline = time.monotonic() + 30
    while not (match := re.search(rb"metrics on http://[^:]+:(\d+)/metrics", process.stderr)):
        assert process.popen.poll() is None, process.stderr
        assert time.monotonic() < deadline, process.stderr
        time.sleep(0.02)
    return int(match[1])


def test_one_scrape_covers_every_worker(spawn: Spawn) -> None:
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--workers", "2", "--metrics", ":0")
    port = process.wait_for_port()
    metrics_port = metrics_port_of(process)
    for index in range(20):
        assert round_trip(port, b"message %d" % index) == b"message %d" % index
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as answer:
        samples = parse(answer.read().decode())
    ended = {
        dict(labels)["worker"]: value
        for (name, labels), value in samples.items()
        if name == "trio_echo_connections_ended_total"
    }
    assert set(ended) == {"1", "2"}
    assert sum(ended.values()) == 20  # every connection, counted once, by its worker
    assert samples[("trio_echo_memory_budget_bytes", (("worker", "1"),))] > 0


def test_without_the_extra_metrics_is_one_sentence() -> None:
    hide = "import sys; sys.modules['prometheus_client'] = None; "
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            hide + "from trio_echo.__main__ import main; sys.exit(main())",
            "server",
            "--metrics",
            ":0",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        b"trio-echo: server: --metrics needs prometheus-client and h11, the metrics extra:"
        b" from the project's directory, pip install '.[metrics]'\n"
    )
