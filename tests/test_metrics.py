"""--metrics: the server's state for Prometheus, checked against what the
test did; one scrape for every worker; a hostile scraper cannot stall
serving; without the extra, one sentence."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
import trio

from tests.support.processes import ROOT, ChildProcess
from tests.support.streams import round_trip, start_server
from trio_echo import EchoServer, ServerConfig, open_listeners
from trio_echo.server import _metrics
from trio_echo.server._metrics import serve_metrics

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
    monkeypatch.setattr(_metrics, "SCRAPE_TIMEOUT", 0.5)
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0), metrics=True)
    port = (await nursery.start(server.serve))[0].port
    metrics_port = await start_metrics(nursery, server)
    silent = await trio.open_tcp_stream("127.0.0.1", metrics_port)
    await silent.send_all(b"GET /met")  # and nothing more
    assert await count_message(port, b"5 still") == b"still"  # serving goes on
    await scrape(metrics_port)  # waits its turn, until the silent one times out
    assert await silent.receive_some() == b""  # which was closed
    await silent.aclose()


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
