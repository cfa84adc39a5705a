"""The benchmark harness's whole path, once, in its quick mode, run as a user
runs it: it must start every server, measure and report (how fast they are
is not a test's business), and write where it is told, not to the committed
results."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from benchmarks.tests.peers import peers
from benchmarks.tls import PEERS_COMPARED, Peer
from tests.support.processes import COVERAGE_IN_CHILDREN, ROOT

pytestmark = [
    pytest.mark.skipif(
        not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")),
        reason="the load generator needs a C compiler",
    ),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the harness needs two CPUs"),
]


@pytest.fixture(autouse=True)
def _children_unmeasured(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark tools and their servers run without coverage: they are not
    trio_echo's code, and measuring them doubles their time."""
    monkeypatch.delenv(COVERAGE_IN_CHILDREN, raising=False)


def harness(*args: str, temporary: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the harness; with ``temporary``, as its folder for temporary files."""
    env = None if temporary is None else dict(os.environ, TMPDIR=str(temporary))
    return subprocess.run(
        [sys.executable, "benchmarks/harness.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


def test_quick_run_reports_every_server(tmp_path: Path) -> None:
    conformance = [
        {"server": "trio-echo", "case": "zero-length", "outcome": "passed", "reason": ""},
        {"server": "c-epoll", "case": "zero-length", "outcome": "xfail", "reason": "a reason"},
    ]
    (tmp_path / "conformance.json").write_text(json.dumps(conformance))
    committed = {path: path.read_bytes() for path in (ROOT / "benchmarks" / "results").iterdir()}
    # Its own temporary folder (short, for unix sockets): other programs on
    # the machine may be starting servers in the shared one meanwhile.
    with tempfile.TemporaryDirectory(prefix="te-", dir="/tmp") as temporary:
        result = harness("--quick", "--scaling", "--out", str(tmp_path), temporary=Path(temporary))
        # Every server start cleaned up after itself.
        assert list(Path(temporary).glob("trio-echo-peer-*")) == []
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p: p.read_bytes() for p in (ROOT / "benchmarks" / "results").iterdir()} == committed
    # Progress says how many runs there are, and each run's number and unit.
    (total,) = re.findall(r"harness: (\d+) runs to make: ", result.stderr)
    made = re.findall(r"\[run (\d+)/(\d+), repetition 1/1\] .* messages/s", result.stderr)
    assert made, result.stderr[-2000:]
    assert {whole for _number, whole in made} == {total}
    assert max(int(number) for number, _whole in made) <= int(total)

    report = (tmp_path / "benchmark.md").read_text()
    results = json.loads((tmp_path / "benchmark.json").read_text())
    available = [peer for peer in peers().values() if peer.missing is None]
    for server in available:
        assert server.label in report
    summary = results["summary"]
    for cell in results["settings"]["cells"]:
        mode = {"idle": "echo", "fairness": "framed"}.get(cell["workload"], cell["workload"])
        for server in available:
            entry = summary[cell["name"]][server.name]
            if mode in server.modes:
                assert entry["figure"] is not None, (cell["name"], server.name, entry)
                assert entry["errors"] == 0, (cell["name"], server.name, entry)
            else:
                assert entry["figure"] is None
    # Ratios are to the Twisted original of the same run.
    if "twisted-original" in [s.name for s in available]:
        assert summary["count 100 B"]["twisted-original"]["ratio"] == pytest.approx(1.0)
    assert "## Conformance" in report
    assert "a reason" in report
    assert "## The servers" in report
    scaling = results["scaling"]
    assert [entry["workers"] for entry in scaling] == list(range(1, (os.cpu_count() or 1) + 1))
    assert all(entry["messages_per_second"] > 0 for entry in scaling)
    assert all(entry["server_cpus_busy"] > 0 for entry in scaling)  # the workers are counted
    assert "## trio_echo --workers" in report
    runs = results["runs"]
    assert all(0 <= run["client_cpu_utilization"] <= 1.5 for run in runs if run["figure"])


def test_the_report_gives_each_figures_spread_and_the_runs_noise(tmp_path: Path) -> None:
    only = ["--servers", "trio-echo", "--cells", "count 100 B", "--repeat", "2"]
    result = harness("--quick", *only, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    report = (tmp_path / "benchmark.md").read_text()
    entry = json.loads((tmp_path / "benchmark.json").read_text())["summary"]["count 100 B"]
    low, high = entry["trio-echo"]["min"], entry["trio-echo"]["max"]
    assert f"[{low:,.0f} to {high:,.0f}]" in report
    assert "varied by a median of" in report


def test_a_run_stopped_by_its_time_budget_carries_on_where_it_stopped(tmp_path: Path) -> None:
    only = ["--servers", "trio-echo", "--cells", "count 100 B", "--repeat", "3"]
    stopped = harness("--quick", *only, "--out", str(tmp_path), "--time-budget", "0.5")
    assert stopped.returncode == 3, stopped.stderr[-2000:]
    assert "run again with --resume" in stopped.stderr
    journal = tmp_path / "runs.jsonl"
    kept = journal.read_text().splitlines()
    assert 0 < len(kept) < 6  # some of the 2 loads x 3 repetitions, not all
    assert not (tmp_path / "benchmark.json").exists()
    resumed = harness("--quick", *only, "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    lines = journal.read_text().splitlines()
    assert lines[: len(kept)] == kept  # measured once, kept as it was
    assert len(lines) == 6
    runs = json.loads((tmp_path / "benchmark.json").read_text())["runs"]
    assert sorted((r["cell"], r["repetition"]) for r in runs) == sorted(
        (cell, rep) for cell in ("count 100 B", "count 100 B at 1,000/s") for rep in range(3)
    )


def test_a_cells_filter_that_matches_nothing_is_an_error() -> None:
    result = harness("--quick", "--cells", "no-such-load")
    assert result.returncode == 2
    assert "--cells 'no-such-load' matches no load" in result.stderr


BURNER = """
import os, threading, time

def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass

worker = threading.Thread(target=burn, args=(0.3,))  # a thread that exits
worker.start()
worker.join()
child = os.fork()
if child == 0:  # a child process that exits, and is reaped
    burn(0.3)
    os._exit(0)
os.waitpid(child, 0)
print("listening on 127.0.0.1:1 mode=count", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("cgroups", ["on", "off"])
def test_the_cpu_of_exited_threads_and_children_is_counted(tmp_path: Path, cgroups: str) -> None:
    # A server-like program burns 0.3 s of CPU in a thread and 0.3 s in a
    # child process; both have exited when its CPU is read. Burned CPU time
    # (not wall time) is what it waits for, so the figure cannot depend on
    # how busy the machine is.
    burner = tmp_path / "burner.py"
    burner.write_text(BURNER)
    result = subprocess.run(
        [sys.executable, "benchmarks/running.py", "cpu", "--", sys.executable, str(burner)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=dict(os.environ, TRIO_ECHO_BENCH_CGROUPS=cgroups),
    )
    measured = json.loads(result.stdout)
    if cgroups == "on" and not measured["exact"]:
        pytest.skip("no cgroup can be made here: the harness reads /proc instead")
    assert measured["exact"] is (cgroups == "on")
    assert 0.6 <= measured["cpu_seconds"] < 5.0


# -- TLS (benchmarks/tls.py) ----------------------------------------------------


@pytest.fixture(scope="module")
def tls_loadgen() -> Path:
    from benchmarks.build import NoTlsError, compile_tls_loadgen

    try:
        return compile_tls_loadgen()
    except NoTlsError as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("peer", PEERS_COMPARED, ids=lambda peer: peer.name)
@pytest.mark.parametrize("size", [100, 3_000_000])
def test_every_peer_of_the_tls_tool_echoes_every_message(
    tmp_path: Path, tls_loadgen: Path, peer: Peer, size: int
) -> None:
    pytest.importorskip("trustme")
    if "uvloop" in peer.name:
        pytest.importorskip("uvloop")
    from benchmarks.build import LOADGEN_SOURCE, compile_c
    from benchmarks.running import ServerProcess, loadgen_command, run_loadgen
    from benchmarks.tls import make_certificate

    chain, ca = make_certificate(tmp_path)
    process = ServerProcess(peer.command(chain if peer.tls else None))
    try:
        port = process.wait_for_port()
        figures = run_loadgen(
            loadgen_command(
                tls_loadgen if peer.tls else compile_c(LOADGEN_SOURCE),
                port,
                workload="count",
                size=size,
                connections=2,
                messages=6,
                duration=30,
                **({"tls_ca": ca} if peer.tls else {}),
            ),
            timeout=60,
            pinned=False,
        )
    finally:
        process.stop()
    assert (figures.errors, figures.connect_errors, figures.first_error) == (0, 0, "")
    assert figures.messages >= 6


@pytest.mark.parametrize("header", [b"x", b"12x", b"1" * 20 + b" ", b" 5"])
def test_the_libssl_reference_closes_a_connection_with_a_malformed_header(
    header: bytes,
) -> None:
    import socket

    from benchmarks.build import C_TLS_SOURCE, compile_with_libssl
    from benchmarks.running import ServerProcess

    process = ServerProcess([str(compile_with_libssl(C_TLS_SOURCE)), "--port", "0"])
    try:
        port = process.wait_for_port()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(header + b"payload")
            assert sock.recv(100) == b""  # closed, nothing echoed
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"3 abcdef")  # and it serves the next connection
            assert sock.recv(100) == b"abc"
    finally:
        process.stop()


# A server that echoes on every connection but holds the last one's first
# echo until each of the others has had HELD echoes: a generator that
# measures from its first connection sees those, one that settles does not.
SLOW_TO_SETTLE = """
import socket, sys, threading
connections, held = int(sys.argv[1]), int(sys.argv[2])
listener = socket.create_server(("127.0.0.1", 0), backlog=64)
print(f"listening on 127.0.0.1:{listener.getsockname()[1]} mode=echo", flush=True)
lock = threading.Condition()
echoes = [0] * connections
def serve(sock, index):
    while data := sock.recv(65536):
        if index == connections - 1 and echoes[index] == 0:
            with lock:
                lock.wait_for(lambda: min(echoes[:-1]) >= held)
        sock.sendall(data)
        with lock:
            echoes[index] += 1
            lock.notify_all()
        print(sum(echoes), file=sys.stderr, flush=True)
for index in range(connections):
    sock, _ = listener.accept()
    threading.Thread(target=serve, args=(sock, index), daemon=True).start()
threading.Event().wait()
"""


def test_a_settled_measurement_starts_once_every_connection_has_echoed(tmp_path: Path) -> None:
    from benchmarks.build import LOADGEN_SOURCE, compile_c
    from benchmarks.running import ServerProcess, loadgen_command, run_loadgen

    connections, held = 4, 50
    script = tmp_path / "slow_to_settle.py"
    script.write_text(SLOW_TO_SETTLE)
    process = ServerProcess([sys.executable, str(script), str(connections), str(held)])
    try:
        port = process.wait_for_port()
        figures = run_loadgen(
            loadgen_command(
                compile_c(LOADGEN_SOURCE),
                port,
                workload="echo",
                size=64,
                connections=connections,
                duration=0.3,
                settle=True,
            ),
            timeout=120,
            pinned=False,
        )
        echoed = int(process.stderr.split()[-1])
    finally:
        process.stop()
    assert figures.settled == connections
    # The echoes before the last connection's first were not measured.
    assert 0 < figures.messages <= echoed - (connections - 1) * held


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("--settle", "usage"),  # settling needs connections that persist, not count's
        ("--tls", "built without TLS"),  # never plain bytes where TLS was asked for
    ],
)
def test_the_load_generator_refuses_what_it_cannot_do(option: str, said: str) -> None:
    from benchmarks.build import LOADGEN_SOURCE, compile_c

    result = subprocess.run(
        [str(compile_c(LOADGEN_SOURCE)), "--port", "1", "--workload", "count", option],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert said in result.stderr


def test_the_tls_tool_summarises_medians_with_their_range_and_rate() -> None:
    from benchmarks.tls import Load, Measurement, summarise

    runs = [
        Measurement("trio-tls", "bulk", rep, figure=figure, achieved_rate=rate)
        for rep, (figure, rate) in enumerate([(3.0, 5.0), (1.0, 4.0), (2.0, 5.0)])
    ]
    runs.append(Measurement("trio-tls", "bulk", 3, note="failed: it did not start"))
    entry = summarise(runs)["bulk"]["trio-tls"]
    assert (entry["figure"], entry["min"], entry["max"], entry["runs"]) == (2.0, 1.0, 3.0, 3)
    assert not entry["saturated"]
    assert Load("bulk", 10_000_000, 2, 5, "MB").per(3) == 30.0
    assert Load("handshakes", 100, 20, 200, "connection").per(3) == 3


@pytest.mark.parametrize("tool", ["harness.py", "tls.py", "floor.py", "framer.py"])
def test_a_tool_writes_only_a_full_run_to_the_committed_results(tool: str) -> None:
    result = subprocess.run(
        [sys.executable, f"benchmarks/{tool}", "--commit-results", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--commit-results writes the full run: no --quick" in result.stderr


def test_every_tool_shares_one_command_line() -> None:
    from benchmarks.tool import COMMITTED, SCRATCH, Tool

    tool = Tool("floor", "floor.json")
    parser = tool.parser("measures")
    args = parser.parse_args([])
    assert tool.out(args) == SCRATCH / "floor.json"
    assert not args.quick
    assert not args.report
    assert tool.out(parser.parse_args(["--commit-results"])) == COMMITTED / "floor.json"
    with pytest.raises(SystemExit):
        parser.parse_args(["--commit-results", "--out", "elsewhere.json"])
    narrowed = parser.parse_args(["--commit-results"])
    tool.full_run_only(parser, narrowed, peers=None)  # nothing narrows it
    with pytest.raises(SystemExit):
        tool.full_run_only(parser, narrowed, peers="trio-echo")


# -- the floor (benchmarks/peers/trio_floor.py, benchmarks/floor.py) -------------


def start_floor(mode: str) -> tuple[object, int]:
    from benchmarks.running import ServerProcess
    from benchmarks.servers import PEERS

    process = ServerProcess(
        [sys.executable, str(PEERS / "trio_floor.py"), "--port", "0", "--mode", mode]
    )
    return process, process.wait_for_port()


@pytest.mark.parametrize(
    ("mode", "size", "messages"),
    [("count", 100, 200), ("count", 3_000_000, 6), ("echo", 1024, 200)],
)
def test_the_floor_peer_echoes_every_message_to_the_load_generator(
    mode: str, size: int, messages: int
) -> None:
    from benchmarks.build import LOADGEN_SOURCE, compile_c
    from benchmarks.running import ServerProcess, loadgen_command, run_loadgen

    process, port = start_floor(mode)
    assert isinstance(process, ServerProcess)
    try:
        figures = run_loadgen(
            loadgen_command(
                compile_c(LOADGEN_SOURCE),
                port,
                workload=mode,
                size=size,
                connections=4,
                messages=messages,
                duration=60,
            ),
            timeout=120,
            pinned=False,
        )
        stderr = process.stderr
    finally:
        process.stop()
    assert (figures.errors, figures.connect_errors, figures.first_error) == (0, 0, "")
    assert figures.messages >= messages
    assert stderr == b""


def test_the_floor_peer_round_trips_count_and_echo() -> None:
    import socket

    from benchmarks.running import ServerProcess

    count, count_port = start_floor("count")
    echo, echo_port = start_floor("echo")
    assert isinstance(count, ServerProcess)
    assert isinstance(echo, ServerProcess)
    try:
        for pieces, payload in (([b"5 hello"], b"hello"), ([b"1", b"1 hello", b" world"], None)):
            with socket.create_connection(("127.0.0.1", count_port), timeout=10) as sock:
                for piece in pieces:
                    sock.sendall(piece)
                received = b""
                while data := sock.recv(100):
                    received += data
            assert received == (payload or b"hello world")
        with socket.create_connection(("127.0.0.1", echo_port), timeout=10) as sock:
            for message in (b"abc", b"defgh"):
                sock.sendall(message)
                received = b""
                while len(received) < len(message):
                    received += sock.recv(100)
                assert received == message
    finally:
        count.stop()
        echo.stop()


def test_the_floor_peer_deadlocks_with_a_client_that_sends_everything_then_reads() -> None:
    """Its documented failure, pinned: it reads, then sends, so a client that
    sends a whole 16 MiB message before it reads leaves both sides blocked in
    a send, each with the other's bytes queued unread."""
    import fcntl
    import socket
    import termios

    from benchmarks.running import ServerProcess

    process, port = start_floor("count")
    assert isinstance(process, ServerProcess)
    try:
        payload = bytes(16 * 1024 * 1024)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            with pytest.raises(TimeoutError):
                sock.sendall(b"%d " % len(payload) + payload)
            unread = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
            unsent = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))
            assert int.from_bytes(unread, sys.byteorder) > 0  # its echo, waiting for us
            assert int.from_bytes(unsent, sys.byteorder) > 0  # ours, waiting for it
        assert process.popen.poll() is None
    finally:
        process.stop()


def test_the_floor_tool_assesses_each_target_in_each_repetition() -> None:
    from benchmarks.floor import Target, assess
    from benchmarks.measuring import Run

    def run(server: str, rep: int, cpu: float, saturated: bool = False) -> Run:
        return Run(
            server, "load", rep, figure=cpu, server_cpu_us_per_message=cpu, saturated=saturated
        )

    runs = [
        run("trio-echo", 0, 110.0),
        run("a", 0, 100.0),
        run("b", 0, 200.0),
        run("trio-echo", 1, 90.0),
        run("a", 1, 120.0),
        run("b", 1, 100.0, saturated=True),
        run("trio-echo", 2, 100.0),  # no reference in this repetition: no value
        Run("a", "load", 2, note="failed: it did not start"),
        run("b", 2, 50.0),
    ]
    best = assess(Target("t", "load", "cpu", "ratio", 1.0, against=("a", "b")), runs)
    assert best["values"] == [1.1, 0.9]  # against the best of a and b in each repetition
    assert (best["verdict"], best["met_in"], best["saturated"]) == ("not decided", 1, True)
    difference = assess(
        Target("d", "load", "cpu", "difference", 5.0, server="a", against=("trio-echo",)), runs
    )
    assert difference["values"] == [-10.0, 30.0]
    assert difference["value"] == 10.0
    assert (difference["verdict"], difference["met_in"]) == ("not decided", 1)
    absolute = assess(Target("m", "load", "cpu", "absolute", 150.0, False), runs)
    assert (absolute["value"], absolute["min"], absolute["max"]) == (100.0, 90.0, 110.0)
    assert (absolute["verdict"], absolute["met_in"]) == ("not met", 0)  # ">= 150"
    alone = assess(Target("m", "load", "cpu", "absolute", 150.0), runs[:1])
    assert (alone["values"], alone["verdict"]) == ([110.0], "no verdict")
    nothing = assess(Target("m", "other load", "cpu", "absolute", 150.0), runs)
    assert (nothing["value"], nothing["verdict"]) == (None, None)


@pytest.mark.parametrize(
    ("ratios", "verdict", "met_in"),
    [
        ([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 1.1], "met", 6),
        ([0.9, 0.9, 0.9, 0.9, 0.9, 1.1, 1.1], "not decided", 5),  # its median meets the goal
        ([0.9, 0.9, 1.1, 1.1, 1.1, 1.1, 1.1], "not decided", 2),  # its median misses it
        ([0.9, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1], "not met", 1),
    ],
)
def test_a_floor_target_is_met_when_80_percent_of_its_repetitions_meet_it(
    ratios: list[float], verdict: str, met_in: int
) -> None:
    from benchmarks.floor import Target, assess
    from benchmarks.measuring import Run

    runs = []
    for rep, ratio in enumerate(ratios):
        for server, cpu in (("trio-echo", 100.0 * ratio), ("floor", 100.0)):
            runs.append(Run(server, "load", rep, figure=cpu, server_cpu_us_per_message=cpu))
    assessed = assess(Target("t", "load", "cpu", "ratio", 1.0, against=("floor",)), runs)
    assert assessed["values"] == pytest.approx(ratios)
    assert (assessed["verdict"], assessed["met_in"]) == (verdict, met_in)


def test_the_floor_tool_runs_its_whole_path_quickly(tmp_path: Path) -> None:
    committed = {path: path.read_bytes() for path in (ROOT / "benchmarks" / "results").iterdir()}
    out = tmp_path / "floor.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/floor.py", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p: p.read_bytes() for p in (ROOT / "benchmarks" / "results").iterdir()} == committed
    # Progress names each run's repetition, and its figure's unit.
    assert re.search(r"\[1/\d+\] trio-echo .* µs/msg", result.stderr), result.stderr[-2000:]
    document = json.loads(out.read_text())
    assert all(target["value"] is not None for target in document["targets"])
    for load in document["settings"]["loads"]:
        for server in load["servers"]:
            entry = document["summary"][load["name"]][server]
            assert entry["failed"] == 0, (load["name"], server, entry["notes"])
    assert document["environment"]["commit"]
    assert set(document["code"]) == {server["name"] for server in document["servers"]}
    assert "| target |" in result.stdout
