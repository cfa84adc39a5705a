"""The conformance cases: the protocol's written behaviour, checked over real
sockets on a server running as a process.

The cases are the same for every server and every transport: TCP, TLS (a
client ends its sending over TLS with close_notify, once it has its
answers: TLS has no half-close) and a unix socket. ``tests/test_conformance.py``
holds trio_echo to them over each transport; the benchmarks hold every peer
they compare to them over TCP, for their report's conformance table.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from tests.support.processes import ChildProcess
from tests.support.tls import TLSFiles
from trio_echo import echo_count, encode_message

MiB = 1024 * 1024
CLOSE_WAIT = 3.0  # seconds a server has to close a connection it must close


@dataclass(frozen=True)
class Target:
    """Where a server listens, and how to reach it.

    Attributes:
        transport: ``tcp``, ``tls`` or ``unix``.
        port: Its TCP port (tcp, tls).
        path: Its unix socket (unix).
        context: The client's TLS context (tls).
    """

    transport: str
    port: int = 0
    path: str = ""
    context: ssl.SSLContext | None = None

    def connect(self, timeout: float | None) -> socket.socket:
        """A blocking socket connected to the server (TLS: handshake done)."""
        if self.transport == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.path)
            return sock
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.context is None:
            return sock
        return self.context.wrap_socket(sock, server_hostname="localhost")

    async def open_stream(self) -> trio.abc.Stream:
        if self.transport == "unix":
            return await trio.open_unix_socket(self.path)
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        if self.context is None:
            return stream
        return trio.SSLStream(stream, self.context, server_hostname="localhost")

    def end_sending(self, sock: socket.socket, received: bytearray, expected: int) -> None:
        """End the client's sending: a half-close, or under TLS, once ``expected``
        bytes came back, close_notify (whose answer is the server's close)."""
        if not isinstance(sock, ssl.SSLSocket):
            sock.shutdown(socket.SHUT_WR)
            return
        while len(received) < expected and (data := sock.recv(1 << 16)):
            received += data
        sock.unwrap()  # close_notify; returns when the server's comes back


@dataclass
class Reply:
    data: bytes
    closed: bool  # the server ended the connection (end of stream or reset)


def converse(
    target: Target,
    chunks: list[bytes],
    *,
    pause: float = 0.02,
    half_close: bool = False,
    wait: float = CLOSE_WAIT,
) -> Reply:
    """Send ``chunks`` with pauses between them; read until the server
    closes or ``wait`` seconds pass.

    With ``half_close``, the client ends its sending (see
    `Target.end_sending`: under TLS, once an answer as long as what it sent
    came back, as echo and framed answers are).
    """
    received = bytearray()
    with target.connect(wait) as sock:
        try:
            for index, chunk in enumerate(chunks):
                if index:
                    time.sleep(pause)
                sock.sendall(chunk)
            if half_close:
                target.end_sending(sock, received, sum(map(len, chunks)))
        except OSError:
            pass  # the server closed while we sent: read what it said
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                break
            except OSError:
                return Reply(bytes(received), closed=True)
            if not data:
                return Reply(bytes(received), closed=True)
            received += data
    return Reply(bytes(received), closed=False)


def count_round_trip(target: Target, payload: bytes) -> bytes:
    return trio.run(_count_round_trip, target, payload)


async def _count_round_trip(target: Target, payload: bytes) -> bytes:
    with trio.fail_after(30):
        async with await target.open_stream() as stream:
            return await echo_count(stream, payload)


# -- the cases ------------------------------------------------------------


def split_input(target: Target, process: ChildProcess) -> None:
    reply = converse(target, [b"1", b"1 hel", b"lo wor", b"ld"])
    assert reply == Reply(b"hello world", closed=True)


def coalesced_input(target: Target, process: ChildProcess) -> None:
    assert converse(target, [b"11 hello world"]) == Reply(b"hello world", closed=True)


def zero_length(target: Target, process: ChildProcess) -> None:
    assert converse(target, [b"0 "]) == Reply(b"", closed=True)


def bytes_after_payload(target: Target, process: ChildProcess) -> None:
    assert converse(target, [b"5 helloEXTRA"]) == Reply(b"hello", closed=True)


def _rejects(raw: bytes) -> Callable[[Target, ChildProcess], None]:
    def case(target: Target, process: ChildProcess) -> None:
        assert converse(target, [raw]) == Reply(b"", closed=True)

    return case


def endless_digits(target: Target, process: ChildProcess) -> None:
    # A megabyte of digits: the server must close long before it has them all.
    reply = converse(target, [b"1" * MiB])
    assert reply == Reply(b"", closed=True)


def truncated_message(target: Target, process: ChildProcess) -> None:
    # The payload is echoed as it arrives; the stream then ends before the
    # length: the server closes, and goes on serving others.
    with target.connect(CLOSE_WAIT) as sock:
        sock.sendall(b"10 abc")
        echoed = b""
        while len(echoed) < 3 and (data := sock.recv(3 - len(echoed))):
            echoed += data
        assert echoed == b"abc"
        rest = bytearray()
        target.end_sending(sock, rest, 0)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""  # closed, nothing more
        assert rest == b""
    assert count_round_trip(target, b"next") == b"next"


def send_everything_then_read(target: Target, process: ChildProcess) -> None:
    payload = random.Random(16).randbytes(16 * MiB)
    with target.connect(20) as sock:
        sock.sendall(encode_message(payload))
        received = bytearray()
        while data := sock.recv(1 << 20):
            received += data
    assert received == payload


def reset_mid_transfer(target: Target, process: ChildProcess) -> None:
    sock = target.connect(5)
    sock.sendall(b"1000 partial")
    received = b""
    while len(received) < 7 and (data := sock.recv(7)):
        received += data
    assert received == b"partial"  # the server is in the middle of the message
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert count_round_trip(target, b"still serving") == b"still serving"
    assert process.popen.poll() is None, "the server died"


PENDING_CONNECTIONS = 40
"""Connections the many-connections case lets wait to be accepted at once.

Below the smallest listen backlog among the servers (twistd's 50): past its
backlog a server's kernel drops connection attempts, and each is retried
only after a second or more, so the case would test SYN retransmission
timing instead of the server."""


def many_concurrent_connections(target: Target, process: ChildProcess) -> None:
    # 300 connections open at once; each holds a slot of PENDING_CONNECTIONS
    # until the first echo byte shows the server accepted it.
    async def many() -> list[bytes]:
        payloads = [b"%d" % i * 10 for i in range(300)]
        results: list[bytes] = [b""] * len(payloads)
        pending = trio.Semaphore(PENDING_CONNECTIONS)

        async def one(index: int) -> None:
            with trio.fail_after(30):
                async with pending:  # until the server has surely accepted
                    stream = await target.open_stream()
                    try:
                        await stream.send_all(encode_message(payloads[index]))
                        received = await stream.receive_some()
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
                async with stream:
                    while data := await stream.receive_some():
                        received += data
            results[index] = received

        async with trio.open_nursery() as nursery:
            for index in range(len(payloads)):
                nursery.start_soon(one, index)
        assert results == payloads
        return results

    trio.run(many)


def slow_peer_does_not_block_others(target: Target, process: ChildProcess) -> None:
    # One client trickles its message a byte at a time, and keeps its last
    # byte back until twenty others, connected after it, are served in full.
    message = encode_message(b"s" * 20)
    trickling, others_served = threading.Event(), threading.Event()
    echoed: list[bytes] = []

    def trickle() -> None:
        with target.connect(60) as sock:
            for index in range(len(message) - 1):
                sock.sendall(message[index : index + 1])
                trickling.set()
                time.sleep(0.005)
            others_served.wait(60)
            sock.sendall(message[-1:])
            received = b""
            while data := sock.recv(1024):
                received += data
            echoed.append(received)

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        assert trickling.wait(30)
        for index in range(20):
            assert count_round_trip(target, b"quick %d" % index) == b"quick %d" % index
    finally:
        others_served.set()
        thread.join()
    assert echoed == [b"s" * 20]


def peer_that_never_reads(target: Target, process: ChildProcess) -> None:
    # Echo mode: send as much as the server takes, never read. The server
    # must stop reading (backpressure) instead of buffering without limit.
    before = process.rss()
    chunk = bytes(MiB)
    sent = 0
    with target.connect(None) as sock:
        sock.settimeout(2.0)
        with contextlib.suppress(TimeoutError):
            while sent < 320 * MiB:
                sock.sendall(chunk)
                sent += len(chunk)
        grown = process.rss() - before
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert sent < 320 * MiB, "the server took 320 MiB from a peer that never reads"
    assert grown < 100 * MiB, f"the server grew by {grown / MiB:.0f} MiB"


def echo_until_half_close(target: Target, process: ChildProcess) -> None:
    data = random.Random(3).randbytes(100_000)
    reply = converse(target, [data[:30_000], data[30_000:]], half_close=True)
    assert reply == Reply(data, closed=True)


def echo_split(target: Target, process: ChildProcess) -> None:
    reply = converse(target, [b"a", b"b c", b" 12 "], half_close=True)
    assert reply == Reply(b"ab c 12 ", closed=True)


def framed_pipelined(target: Target, process: ChildProcess) -> None:
    payloads = [random.Random(i).randbytes(i * 13) for i in range(100)]
    raw = b"".join(encode_message(p) for p in payloads)
    assert converse(target, [raw], half_close=True) == Reply(raw, closed=True)


def framed_split(target: Target, process: ChildProcess) -> None:
    raw = encode_message(b"first") + encode_message(b"") + encode_message(b"third one")
    chunks = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    assert converse(target, chunks, pause=0.01, half_close=True) == Reply(raw, closed=True)


def framed_bad_length(target: Target, process: ChildProcess) -> None:
    # The answer to the good message goes out before the close.
    assert converse(target, [b"2 ab", b"-1 x"]) == Reply(b"2 ab", closed=True)


CASES: dict[str, tuple[str, Callable[[Target, ChildProcess], None]]] = {
    "split-input": ("count", split_input),
    "coalesced-input": ("count", coalesced_input),
    "zero-length": ("count", zero_length),
    "bytes-after-payload": ("count", bytes_after_payload),
    "negative-length": ("count", _rejects(b"-1 x")),
    "plus-sign": ("count", _rejects(b"+5 hello")),
    "leading-space": ("count", _rejects(b" 5 hello")),
    "underscore-in-length": ("count", _rejects(b"1_0 0123456789")),
    "leading-zero": ("count", _rejects(b"05 hello")),
    "tab-separator": ("count", _rejects(b"5\thello")),
    "oversized-length": ("count", _rejects(b"99999999999 x")),
    "endless-digits": ("count", endless_digits),
    "truncated-message": ("count", truncated_message),
    "send-everything-then-read": ("count", send_everything_then_read),
    "reset-mid-transfer": ("count", reset_mid_transfer),
    "many-concurrent-connections": ("count", many_concurrent_connections),
    "slow-peer-does-not-block-others": ("count", slow_peer_does_not_block_others),
    "peer-that-never-reads": ("echo", peer_that_never_reads),
    "echo-until-half-close": ("echo", echo_until_half_close),
    "echo-split": ("echo", echo_split),
    "framed-pipelined": ("framed", framed_pipelined),
    "framed-split": ("framed", framed_split),
    "framed-bad-length": ("framed", framed_bad_length),
}


class Servers:
    """Servers started once per (server, transport, mode) for the whole session.

    A server is named, and given as its command line with ``{port}`` and
    ``{mode}`` to fill in; only trio_echo is measured by coverage.
    """

    def __init__(self, directory: Path, tls: TLSFiles | None = None) -> None:
        self.directory = directory
        self.tls = tls
        self.sockets = Path(tempfile.mkdtemp(prefix="te-", dir="/tmp"))  # short paths
        self.processes: dict[tuple[str, str, str], tuple[ChildProcess, Target]] = {}

    def get(
        self, name: str, command: Sequence[str], transport: str, mode: str
    ) -> tuple[ChildProcess, Target]:
        """The server ``name`` serving ``mode`` over ``transport``, started if it is not."""
        key = (name, transport, mode)
        running = self.processes.get(key)
        if running is None or running[0].popen.poll() is not None:
            running = self.processes[key] = self._start(name, command, transport, mode)
        return running

    def _start(
        self, name: str, command: Sequence[str], transport: str, mode: str
    ) -> tuple[ChildProcess, Target]:
        def start(*extra: str) -> ChildProcess:
            line = [part.format(port=0, mode=mode) for part in command] + list(extra)
            process = ChildProcess(line, self.directory, measured=name == "trio-echo")
            process.wait_for_port()
            return process

        if transport == "tls":
            assert self.tls is not None, "TLS needs the test certificate's files"
            process = start("--tls-cert", self.tls.cert, "--tls-key", self.tls.key)
            context = ssl.create_default_context(cafile=self.tls.ca)
            return process, Target("tls", port=process.port, context=context)
        if transport == "unix":
            path = str(self.sockets / f"{mode}.sock")
            process = start("--unix", path)
            return process, Target("unix", path=path)
        process = start()
        return process, Target("tcp", port=process.port)

    def stop(self) -> None:
        for process, _target in self.processes.values():
            process.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)
