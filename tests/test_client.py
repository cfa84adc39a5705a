"""The client library: over memory streams (a faithful server, and servers
that truncate, extend or alter the echo), over sockets against our server,
and against the original Twisted EchoCount and Echo, ported to Python 3."""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from tests.support.processes import ROOT, requires_twisted
from tests.support.streams import OneWayStream, start_server
from trio_echo import (
    EchoCheck,
    EchoMismatchError,
    FramedAnswers,
    Limits,
    Mode,
    Reason,
    RemoteProtocolError,
    ServerConfig,
    echo,
    echo_count,
    echo_framed,
    echo_plain,
    encode_message,
    exchange,
    handle_connection,
    run_load,
)

MiB = 1024 * 1024


async def with_peer(
    peer: Callable[[trio.abc.Stream], Awaitable[object]],
    client: Callable[[trio.abc.Stream], Awaitable[bytes | list[bytes]]],
) -> bytes | list[bytes]:
    """Run ``client`` against ``peer`` over a memory stream pair."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer, server_stream)
        result = await client(client_stream)
        await client_stream.aclose()
    return result


def our_server(mode: Mode) -> Callable[[trio.abc.Stream], Awaitable[object]]:
    async def serve(stream: trio.abc.Stream) -> None:
        await handle_connection(stream, ServerConfig(mode=mode))

    return serve


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("size", [0, 1, 200_000])
async def test_round_trip_over_memory_streams(mode: Mode, size: int) -> None:
    payload = random.Random(size).randbytes(size)
    result = await with_peer(our_server(mode), lambda s: echo(s, payload, mode))
    assert result == payload


def trickling_one_way_pair() -> tuple[
    trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream
]:
    """A one-way memory stream whose every read gets a single byte."""
    send = trio.testing.MemorySendStream()
    receive = trio.testing.MemoryReceiveStream()

    def pump_one() -> None:
        trio.testing.memory_stream_pump(send, receive, max_bytes=1)

    async def pump_one_async() -> None:
        pump_one()

    send.send_all_hook = pump_one_async
    send.close_hook = pump_one
    receive.receive_some_hook = pump_one_async
    return send, receive


async def test_round_trip_with_single_byte_reads() -> None:
    # Every read the client and the server make returns one byte.
    client_send, server_receive = trickling_one_way_pair()
    server_send, client_receive = trickling_one_way_pair()
    client = trio.StapledStream(client_send, client_receive)
    server = trio.StapledStream(server_send, server_receive)
    payload = b"split into single bytes"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_connection, server, ServerConfig())
        assert await echo_count(client, payload) == payload
        await client.aclose()


async def truncating_server(stream: trio.abc.Stream) -> None:
    data = await stream.receive_some()
    await stream.send_all(data[2:4])  # "5 hello" -> "he"
    await stream.aclose()


async def extending_server(stream: trio.abc.Stream) -> None:
    data = await stream.receive_some()
    await stream.send_all(data[2:] + b"!!")
    await stream.aclose()


async def altering_server(stream: trio.abc.Stream) -> None:
    data = await stream.receive_some()
    await stream.send_all(data[2:].upper())
    await stream.aclose()


@pytest.mark.parametrize(
    ("peer", "problem"),
    [
        pytest.param(truncating_server, "short: 2 of 5 bytes", id="truncated"),
        pytest.param(extending_server, "long: more than the 5 bytes sent", id="extended"),
        pytest.param(altering_server, "differs from what was sent at byte 0", id="altered"),
    ],
)
async def test_a_wrong_echo_is_named(
    peer: Callable[[trio.abc.Stream], Awaitable[None]], problem: str
) -> None:
    check = EchoCheck(b"hello")

    async def client(stream: trio.abc.Stream) -> bytes:
        await stream.send_all(encode_message(b"hello"))
        try:
            while data := await stream.receive_some():
                check(bytes(data))
        except EchoMismatchError as error:
            return str(error).encode()
        return (check.problem() or "").encode()

    assert problem.encode() in await with_peer(peer, client)


@pytest.mark.parametrize(
    ("chunks", "problem"),
    [
        pytest.param([b"abc"], None, id="match"),
        pytest.param([b"a", b"b", b"c"], None, id="match-in-pieces"),
        pytest.param([b"ab"], "short: 2 of 3", id="short"),
    ],
)
def test_echo_check_at_the_end(chunks: list[bytes], problem: str | None) -> None:
    check = EchoCheck(b"abc")
    for chunk in chunks:
        check(chunk)
    if problem is None:
        assert check.problem() is None
    else:
        assert problem in (check.problem() or "")


@pytest.mark.parametrize(
    ("chunks", "problem"),
    [
        pytest.param([b"abcd"], "long: more than the 3 bytes", id="long"),
        pytest.param([b"abc", b"d"], "long: more than the 3 bytes", id="long-later"),
        pytest.param([b"ab", b"X"], "at byte 2", id="differs-late"),
        pytest.param([b"aX"], "at byte 1", id="first-difference"),
    ],
)
def test_echo_check_raises_at_the_first_wrong_byte(chunks: list[bytes], problem: str) -> None:
    check = EchoCheck(b"abc")
    *before, wrong = chunks
    for chunk in before:
        check(chunk)
    with pytest.raises(EchoMismatchError, match=problem):
        check(wrong)


def test_echo_check_names_an_echo_of_the_length_prefix() -> None:
    check = EchoCheck(b"hello", header=b"5 ")
    with pytest.raises(EchoMismatchError, match="seems to be in echo or framed mode"):
        check(b"5 hel")
    with pytest.raises(EchoMismatchError) as caught:
        EchoCheck(b"hello", header=b"5 ")(b"X")
    assert "mode" not in str(caught.value)


def test_framed_answers_parse_and_reject() -> None:
    seen: list[bytes] = []
    answers = FramedAnswers(on_payload=seen.append)
    for chunk in (b"3 ab", b"c0 2 x", b"y"):
        answers(chunk)
    answers.end()
    assert answers.answers == [b"abc", b"", b"xy"]
    assert b"".join(seen) == b"abcxy"
    cut = FramedAnswers()
    cut(b"5 abc")
    with pytest.raises(RemoteProtocolError) as caught:
        cut.end()
    assert caught.value.reason is Reason.EOF_IN_PAYLOAD


async def test_exchange_reports_a_send_cut_short() -> None:
    async def closes_at_once(stream: trio.abc.Stream) -> None:
        await stream.aclose()

    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(closes_at_once, server)
        received: list[bytes] = []
        sent_all = await exchange(client, [b"x" * 10], received.append, half_close_after=None)
    assert received == []
    assert sent_all is False


async def test_exchange_half_close_needs_a_half_closeable_stream() -> None:
    with pytest.raises(TypeError, match="HalfCloseableStream"):
        await exchange(OneWayStream(), [b"x"], lambda data: None, half_close_after=0)
    assert await exchange(OneWayStream(), [b"x"], lambda data: None, half_close_after=None) in (
        True,
        False,
    )


async def test_echo_framed_pipelines_over_a_socket(nursery: trio.Nursery) -> None:
    _server, port = await start_server(nursery, mode=Mode.FRAMED)
    payloads = [b"one", b"", b"three" * 1000]
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        assert await echo_framed(stream, payloads) == payloads


@pytest.mark.parametrize("mode", list(Mode))
async def test_64_mib_round_trip_against_our_server(nursery: trio.Nursery, mode: Mode) -> None:
    _server, port = await start_server(nursery, mode=mode)
    payload = random.Random(7).randbytes(64 * MiB)
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        assert await echo(stream, payload, mode) == payload


@requires_twisted
@pytest.mark.parametrize("size", [0, 1, 64 * MiB])
@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.ECHO])
async def test_round_trip_against_the_twisted_original(
    spawn: Callable[..., object], mode: Mode, size: int
) -> None:
    original = spawn(
        str(ROOT / "benchmarks" / "peers" / "twisted_original.py"),
        "--port",
        "0",
        "--mode",
        str(mode),
    )
    port = await trio.to_thread.run_sync(original.wait_for_port)  # type: ignore[attr-defined]
    payload = random.Random(size).randbytes(size)
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        if mode is Mode.COUNT:
            assert await echo_count(stream, payload) == payload
        else:
            assert await echo_plain(stream, payload) == payload


@requires_twisted
async def test_the_originals_log_shows_its_per_chunk_prints(
    spawn: Callable[..., object],
) -> None:
    original = spawn(str(ROOT / "benchmarks" / "peers" / "twisted_original.py"), "--port", "0")
    port = await trio.to_thread.run_sync(original.wait_for_port)  # type: ignore[attr-defined]
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        assert await echo_count(stream, b"hello") == b"hello"
    # The echo came back before the original printed its last line about it.
    echoed = re.compile(rb"echoed data with len 5 \(total sent=5\)")
    await trio.to_thread.run_sync(original.wait_for_line, echoed)  # type: ignore[attr-defined]
    assert b"extracted content length=5" in original.stdout  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", list(Mode))
async def test_load_run_reports(nursery: trio.Nursery, mode: Mode) -> None:
    _server, port = await start_server(nursery, mode=mode)
    report = await run_load("127.0.0.1", port, mode=mode, repeat=60, concurrency=4, size=1000)
    assert (report.messages, report.errors) == (60, 0)
    assert len(report.latencies) == 60
    assert report.latencies == sorted(report.latencies)
    summary = report.summary()
    latency = summary["latency_ms"]
    assert isinstance(latency, dict)
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert report.megabytes_per_second == pytest.approx(report.messages_per_second * 1000 / 1e6)


async def test_load_run_counts_errors(nursery: trio.Nursery) -> None:
    # A count server that only accepts 10-byte messages: every 100-byte one fails.
    _server, port = await start_server(nursery, limits=Limits(max_message_size=10))
    report = await run_load("127.0.0.1", port, repeat=5, concurrency=2, size=100)
    assert (report.messages, report.errors) == (0, 5)
    assert "short" in report.first_error
    assert report.summary()["latency_ms"] == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
