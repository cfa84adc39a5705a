"""Two hostile floods against the framed server: memory, and a fresh client's latency.

A flooder pipelines tiny framed messages (``0 ``, or one-byte payloads) and
never reads the answers.

- Memory: the server runs with ``--connection-buffer 4MiB --memory-budget
  4MiB``. The flooder sends until its sends stay blocked for a second (the
  server stopped reading); the server's resident memory is then compared
  with what it was before, and what it read is worked out from what the
  kernel still holds between the two.
- Latency: the server runs with its defaults, so the flooder keeps it busy
  framing. Meanwhile fresh clients connect one after another, send
  ``5 hello``, half-close and read the answer to the end; their
  connect-to-answer times give p50, p99 and the worst.

The server runs on CPU 0 and the clients on CPU 1, where ``taskset`` is.
With ``--baseline DIR`` the same runs are made, interleaved, on the
trio_echo checked out in DIR, and the ratios are given.

    python benchmarks/floods.py [--probes 300] [--baseline DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from tabulate import tabulate

FLOODS = {"empty": b"0 ", "one-byte": b"1 x"}
MiB = 1024 * 1024
LISTENING = re.compile(rb"listening on [^\s]+:(\d+) ")


def server_command(checkout: str | None, *flags: str) -> list[str]:
    """Start trio_echo's server (this checkout's, or ``checkout``'s) on CPU 0."""
    if checkout is None:
        start = [sys.executable, "-m", "trio_echo"]
    else:
        code = (
            f"import runpy, sys; sys.path.insert(0, {checkout!r}); "
            "runpy.run_module('trio_echo', run_name='__main__', alter_sys=True)"
        )
        start = [sys.executable, "-c", code]
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    return [*pin, *start, "server", "--port", "0", "--mode", "framed", *flags]


class Server:
    def __init__(self, command: list[str]) -> None:
        self._out = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            command, stdout=self._out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._out.seek(0)
            if match := LISTENING.search(self._out.read()):
                self.port = int(match[1])
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the server did not start: {command}")

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._out.close()


def queued(local_port: int, remote_port: int, column: int) -> int:
    """A loopback socket's send (column 0) or receive (1) queue, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (local_port, remote_port):
            return int(fields[4].split(":")[column], 16)
    return 0


def flood_socket(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # A small send buffer: a second without room then means the server
    # stopped reading, not that a large buffer drains slowly.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    client.connect(("127.0.0.1", port))
    client.setblocking(False)
    return client


def flood_until_blocked(client: socket.socket, frame: bytes) -> int:
    """Send frames until the sends stay blocked for a second; return bytes sent."""
    block = memoryview(frame * (64 * 1024 // len(frame)))
    rest, sent = block, 0
    while True:
        try:
            count = client.send(rest)
        except BlockingIOError:
            if not select.select([], [client], [], 1.0)[1]:
                return sent
            continue
        sent += count
        rest = rest[count:] or block


def memory(checkout: str | None, frame: bytes) -> dict[str, float]:
    bounds = ["--connection-buffer", "4MiB", "--memory-budget", "4MiB"]
    server = Server(server_command(checkout, *bounds, "--log-level", "warning"))
    try:
        probe(server.port)  # a first connection, before the baseline
        before = server.rss()
        with flood_socket(server.port) as client:
            sent = flood_until_blocked(client, frame)
            mine = client.getsockname()[1]
            in_kernel = queued(mine, server.port, 0) + queued(server.port, mine, 1)
            growth = server.rss() - before
        return {
            "sent_mib": sent / MiB,
            "read_mib": (sent - in_kernel) / MiB,
            "rss_growth_mib": growth / MiB,
        }
    finally:
        server.stop()


def probe(port: int) -> float:
    """One fresh client's connect-to-answer time, in seconds."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(b"5 hello")
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while data := client.recv(4096):
            answer += data
    if answer != b"5 hello":
        raise RuntimeError(f"wrong answer {answer!r}")
    return time.perf_counter() - start


FLOODER = """
import select, socket, sys, time
frame, port, seconds = sys.argv[1].encode(), int(sys.argv[2]), float(sys.argv[3])
client = socket.socket()
client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
client.connect(("127.0.0.1", port))
client.setblocking(False)
block = memoryview(frame * (65536 // len(frame)))
rest, end = block, time.monotonic() + seconds
print("flooding", flush=True)
while time.monotonic() < end:
    try:
        count = client.send(rest)
    except BlockingIOError:
        select.select([], [client], [], 0.1)
        continue
    rest = rest[count:] or block
"""


def latency(checkout: str | None, frame: bytes, probes: int) -> dict[str, float]:
    server = Server(server_command(checkout, "--log-level", "warning"))
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    try:
        flooder = subprocess.Popen(
            [*pin, sys.executable, "-c", FLOODER, frame.decode(), str(server.port), "600"],
            stdout=subprocess.PIPE,
        )
        assert flooder.stdout is not None
        flooder.stdout.readline()
        time.sleep(0.5)  # well under way
        times = []
        for _ in range(probes):
            times.append(probe(server.port))
            time.sleep(0.01)
        flooder.kill()
        flooder.wait()
        times.sort()
        return {
            "p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
            "max_ms": times[-1] * 1000,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300, help="fresh clients per flood")
    parser.add_argument("--baseline", help="a trio_echo checkout to compare with")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        print("taskset not found: server and clients share the cores", file=sys.stderr)
    variants = {"trio_echo": None}
    if args.baseline:
        variants["baseline"] = os.path.abspath(args.baseline)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for flood, frame in FLOODS.items():
        for name, checkout in variants.items():  # interleaved: flood by flood
            results.setdefault(name, {})[flood] = {
                **memory(checkout, frame),
                **latency(checkout, frame, args.probes),
            }
    header = ["server", "flood", "read (MiB)", "RSS growth (MiB), bound 4 + 1", "p50 ms", "p99 ms"]
    keys = ["read_mib", "rss_growth_mib", "p50_ms", "p99_ms", "max_ms"]
    rows = [
        [name, flood, *(f"{figures[key]:.1f}" for key in keys)]
        for name, floods in results.items()
        for flood, figures in floods.items()
    ]
    print(
        tabulate(
            rows, headers=[*header, "max"], tablefmt="github", disable_numparse=True, stralign=None
        )
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
