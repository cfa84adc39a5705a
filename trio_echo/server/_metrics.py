# The server's state, for Prometheus: `--metrics HOST:PORT`.
#
# What is counted lives in plain integers (`ServerMetrics`), updated when a
# connection ends and read at a scrape: serving pays one call per ended
# connection, and nothing at all when metrics are off. A scrape turns one
# snapshot per process into Prometheus metric families (prometheus-client's
# types and exposition) and serves them over HTTP/1.1 with h11, from the
# server's own trio run. Each scrape connection is served in a task of its
# own, up to MAX_SCRAPES at once, its request head bounded in size and in
# time (HEADER_TIMEOUT) and the whole exchange timed out: a silent or slow
# scraper holds up neither serving nor another scrape.
#
# With --workers, the supervisor serves the scrape: it asks each worker for
# its snapshot over a socket pair of its own (one byte asks, one JSON line
# answers), and labels each worker's samples with its number.
from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import attrs
import trio

from ._report import ConnectionReport

__all__ = [
    "METRICS_FD_VARIABLE",
    "MetricsUnavailableError",
    "ServerMetrics",
    "SnapshotChannel",
    "answer_snapshots",
    "check_available",
    "exposition",
    "serve_metrics",
    "serve_scrapes",
    "worker_channel",
]

logger = logging.getLogger("trio_echo.metrics")

METRICS_FD_VARIABLE = "TRIO_ECHO_METRICS_FD"
"""The environment variable that tells a worker its socket to the supervisor."""

SCRAPE_TIMEOUT = 5.0
"""Seconds a scrape has, from its connection to the last byte of the answer."""

HEADER_TIMEOUT = 2.0
"""Seconds a scrape has, from its connection, to send its request head."""

MAX_SCRAPES = 16
"""The most scrape connections served at once; past it, accepting waits for one to end."""

MAX_REQUEST = 16 * 1024
"""The most bytes of request head a scrape may send."""

MAX_DISCARD = 1024 * 1024
"""The most bytes read and dropped after an answer, before closing."""

MAX_SNAPSHOT = 64 * 1024
"""The most bytes of one worker's snapshot."""

Snapshot = dict[str, Any]


class MetricsUnavailableError(RuntimeError):
    """The metrics extra (prometheus-client and h11) is not installed."""


def check_available() -> None:
    """Raise `MetricsUnavailableError` unless the metrics extra is installed."""
    try:
        import h11  # noqa: F401, PLC0415
        import prometheus_client  # noqa: F401, PLC0415
    except ImportError:
        raise MetricsUnavailableError(
            "--metrics needs prometheus-client and h11, the metrics extra: from the"
            " project's directory, pip install '.[metrics]'"
        ) from None


@attrs.define
class ServerMetrics:
    """What one server process counts, and where it reads its live figures.

    Args:
        open_connections: Reads the connections open now.
        budget: Reads the memory budget's bytes used, total, and the
            connections waiting for it.
    """

    open_connections: Callable[[], int]
    budget: Callable[[], tuple[int, int, int]]
    ended: int = 0
    capped: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages: int = 0
    outcomes: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def connection_ended(self, report: ConnectionReport) -> None:
        """Count a connection that has ended."""
        self.ended += 1
        self.outcomes[str(report.outcome)] += 1
        self.bytes_in += report.bytes_in
        self.bytes_out += report.bytes_out
        self.messages += report.messages

    def accepting_paused(self) -> None:
        """Count a pause in accepting at the connection cap."""
        self.capped += 1

    def snapshot(self) -> Snapshot:
        """Every figure now, as plain data."""
        used, total, waiting = self.budget()
        open_now = self.open_connections()
        return {
            "accepted": self.ended + open_now,
            "open": open_now,
            "capped": self.capped,
            "outcomes": dict(self.outcomes),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "messages": self.messages,
            "budget_used": used,
            "budget_total": total,
            "budget_waiting": waiting,
        }


_COUNTERS = (
    ("accepted", "trio_echo_connections_accepted", "Connections accepted."),
    ("capped", "trio_echo_accept_paused", "Times accepting paused at --max-connections."),
    ("bytes_in", "trio_echo_received_bytes", "Bytes received, by connections that ended."),
    ("bytes_out", "trio_echo_echoed_bytes", "Bytes echoed, by connections that ended."),
    ("messages", "trio_echo_messages", "Messages received in full, by connections that ended."),
)
_GAUGES = (
    ("open", "trio_echo_connections_open", "Connections open now."),
    ("budget_used", "trio_echo_memory_budget_used_bytes", "Bytes of the memory budget held."),
    ("budget_total", "trio_echo_memory_budget_bytes", "The memory budget (--memory-budget)."),
    (
        "budget_waiting",
        "trio_echo_memory_budget_waiting_connections",
        "Connections waiting for the memory budget.",
    ),
)


def exposition(snapshots: Sequence[tuple[str | None, Snapshot]]) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``snapshots``, and its content type.

    Args:
        snapshots: One per process: its worker number (a ``worker`` label),
            or None for a server without workers.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest  # noqa: PLC0415
    from prometheus_client.core import (  # noqa: PLC0415
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
    )

    labelled = any(worker is not None for worker, _ in snapshots)
    names = ["worker"] if labelled else []

    def labels(worker: str | None, *more: str) -> list[str]:
        return [*([worker or ""] if labelled else []), *more]

    class _Snapshots:
        def collect(self) -> Iterator[Metric]:
            for key, name, documentation in _COUNTERS:
                counter = CounterMetricFamily(name, documentation, labels=names)
                for worker, snapshot in snapshots:
                    counter.add_metric(labels(worker), snapshot[key])
                yield counter
            for key, name, documentation in _GAUGES:
                gauge = GaugeMetricFamily(name, documentation, labels=names)
                for worker, snapshot in snapshots:
                    gauge.add_metric(labels(worker), snapshot[key])
                yield gauge
            endings = CounterMetricFamily(
                "trio_echo_connections_ended",
                "Connections ended, by how they ended (the outcome of their log line).",
                labels=[*names, "outcome"],
            )
            for worker, snapshot in snapshots:
                for outcome, count in sorted(snapshot["outcomes"].items()):
                    endings.add_metric(labels(worker, outcome), count)
            yield endings

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshots())
    return generate_latest(registry), CONTENT_TYPE_LATEST


Collect = Callable[[], Awaitable[Sequence[tuple[str | None, Snapshot]]]]
"""Gathers the snapshots a scrape exposes."""


async def serve_metrics(sock: socket.socket, collect: Collect) -> None:
    """Serve ``GET /metrics`` on the listening socket ``sock``, until cancelled.

    See `serve_scrapes`.

    Args:
        sock: A bound, listening TCP socket (closed when cancelled).
        collect: Gathers the snapshots to expose.
    """
    await serve_scrapes(trio.SocketListener(trio.socket.from_stdlib_socket(sock)), collect)


async def serve_scrapes(
    listener: trio.abc.Listener[trio.abc.HalfCloseableStream], collect: Collect
) -> None:
    """Serve ``GET /metrics`` to each connection ``listener`` accepts, until cancelled.

    Each connection is served at once, in a task of its own, up to
    MAX_SCRAPES at a time (then accepting waits for one to end). It has
    HEADER_TIMEOUT to send its request head and SCRAPE_TIMEOUT for the whole
    exchange, so that silent or slow connections delay no other scrape.

    Args:
        listener: Where scrapes connect (closed when cancelled).
        collect: Gathers the snapshots to expose.
    """
    slots = trio.Semaphore(MAX_SCRAPES)
    async with listener, trio.open_nursery() as nursery:
        while True:
            await slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as error:  # out of file descriptors, say: serving comes first
                slots.release()
                logger.warning("cannot accept a scrape: %s", error.strerror or error)
                await trio.sleep(1.0)
                continue
            nursery.start_soon(_serve_scrape, stream, collect, slots)


async def _serve_scrape(
    stream: trio.abc.HalfCloseableStream, collect: Collect, slot: trio.Semaphore
) -> None:
    """Answer the scrape on ``stream``, then close it and give back its ``slot``."""
    try:
        async with stream:
            # A scraper that goes away is no matter.
            with (
                trio.move_on_after(SCRAPE_TIMEOUT),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                if not await _answer_scrape(stream, collect):
                    return
                # Unread request bytes would turn the close into a reset
                # that destroys the answer: half-close, and read (a
                # bounded amount of) what is left, as HTTP servers do.
                await stream.send_eof()
                discarded = 0
                while discarded < MAX_DISCARD and (data := await stream.receive_some()):
                    discarded += len(data)
    finally:
        slot.release()


async def _answer_scrape(stream: trio.abc.Stream, collect: Collect) -> bool:
    """Read the request on ``stream`` and answer it; return whether it was answered."""
    import h11  # noqa: PLC0415

    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
    event: object = h11.NEED_DATA
    with trio.move_on_after(HEADER_TIMEOUT):  # then closed without an answer
        while event is h11.NEED_DATA:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                await _send(stream, connection, error.error_status_hint, b"bad request\n")
                return True
            if event is h11.NEED_DATA:
                data = bytes(await stream.receive_some(MAX_REQUEST))
                connection.receive_data(data)
                if not data:
                    return False
    if not isinstance(event, h11.Request):
        return False  # the connection ended before a request, or took too long to send one
    if event.method not in (b"GET", b"HEAD"):
        await _send(stream, connection, 405, b"only GET\n", [(b"allow", b"GET, HEAD")])
    elif event.target.split(b"?")[0] != b"/metrics":
        await _send(stream, connection, 404, b"the metrics are at /metrics\n")
    else:
        body, content_type = exposition(await collect())
        if event.method == b"HEAD":
            body = b""
        await _send(stream, connection, 200, body, content_type=content_type.encode())
    return True


async def _send(
    stream: trio.abc.Stream,
    connection: Any,
    status: int,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    import h11  # noqa: PLC0415

    response = h11.Response(
        status_code=status,
        headers=[
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *headers,
        ],
    )
    await stream.send_all(connection.send(response) + connection.send(h11.Data(data=body)))
    await stream.send_all(connection.send(h11.EndOfMessage()))


async def answer_snapshots(sock: socket.socket, metrics: ServerMetrics) -> None:
    """A worker's side: answer each byte from the supervisor with a snapshot.

    The byte is a request's number, sent back with the snapshot, so that an
    answer that came too late for one scrape is not taken for the next's.
    Returns when the supervisor closes its end.
    """
    with trio.socket.from_stdlib_socket(sock) as channel:
        try:
            while request := await channel.recv(1):
                snapshot = {"request": request[0], **metrics.snapshot()}
                view = memoryview(json.dumps(snapshot).encode() + b"\n")
                while view:
                    view = view[await channel.send(view) :]
        except OSError:
            pass  # the supervisor is gone (its pipe tells the worker to drain)


@attrs.define
class SnapshotChannel:
    """The supervisor's side of one worker's socket pair."""

    channel: trio.socket.SocketType
    _request: int = 0
    _buffer: bytes = b""
    _asking: trio.Lock = attrs.field(factory=trio.Lock, init=False)

    async def ask(self) -> Snapshot | None:
        """The worker's snapshot.

        None if it does not answer within half a scrape's time (a worker
        starting, or gone). Scrapes served at once ask in turn.
        """
        with trio.move_on_after(SCRAPE_TIMEOUT / 2):
            async with self._asking:
                return await self._ask()
        return None

    async def _ask(self) -> Snapshot | None:
        self._request = (self._request + 1) % 256
        try:
            await self.channel.send(bytes([self._request]))
            while True:
                while b"\n" not in self._buffer:
                    data = await self.channel.recv(MAX_SNAPSHOT)
                    if not data or len(self._buffer) > MAX_SNAPSHOT:
                        return None
                    self._buffer += data
                line, _, self._buffer = self._buffer.partition(b"\n")
                snapshot: Snapshot = json.loads(line)
                if snapshot.pop("request", None) == self._request:
                    return snapshot
        except (OSError, ValueError, trio.ClosedResourceError, trio.BusyResourceError):
            return None  # replaced by a restart, or gone


def worker_channel(environ: dict[str, str] | None = None) -> socket.socket | None:
    """This worker's socket to its supervisor, if metrics are served.

    The variable is removed, so that what the worker starts does not see it.
    """
    env = os.environ if environ is None else environ
    value = env.pop(METRICS_FD_VARIABLE, None)
    if value is None or not value.isdigit():
        return None
    return socket.socket(fileno=int(value))
