"""The cost of TLS: server CPU per handshake and per MB, beside plain TCP.

Each TLS server (trio_echo, a minimal trio SSLStream server and its
MemoryBIO variant, asyncio streams, the uvloop protocol peer, and a C
server with libssl and nothing else, one blocking connection at a time,
benchmarks/peers/c_tls.c, the reference for what libssl itself costs) and
its plain-TCP twin run pinned to CPU 0; the load generator, built with libssl
(benchmarks/loadgen.c, ``-DLOADGEN_TLS``), runs pinned to CPU 1:

- handshakes: count 100 B at a fixed rate, a new TLS 1.3 connection per
  message, every one a full handshake (ECDSA P-256 certificate; every
  server sends its TLS 1.3 session tickets, as trio_echo does, and the
  client never resumes a session); the figure is the
  server's CPU per connection;
- bulk: count 10 MB messages over two connections at a fixed rate; the
  figure is the server's CPU per MB echoed (each MB is received and sent).

Both rates are below every server's limit, so each figure is a cost at
that rate, not at saturation; the rate each run reached is kept, and a run
that fell short is marked saturated. The certificate is made for the run
(trustme) in a temporary folder, removed afterwards. Servers are
interleaved over the repetitions; each figure is the median, with the
lowest and the highest.

    python benchmarks/tls.py                   # into benchmarks/.cache/results/tls.json
    python benchmarks/tls.py --quick           # the whole path, short
    python benchmarks/tls.py --commit-results  # benchmarks/results/tls.json, and the page

``--commit-results`` writes benchmarks/results/tls.json and the generated
part ``tls`` of docs/models.md (see benchmarks/pages.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import (
    C_TLS_SOURCE,
    LOADGEN_SOURCE,
    NoCompilerError,
    NoTlsError,
    compile_c,
    compile_tls_loadgen,
    compile_with_libssl,
)
from benchmarks.measuring import SATURATED, median
from benchmarks.running import ServerProcess, loadgen_command, run_loadgen
from benchmarks.servers import PEERS, SERVERS, Server, trio_echo_command
from benchmarks.summary import Spread, grouped
from benchmarks.tool import Tool

SERVER_CPU = 0
MB = 1_000_000


@dataclass(frozen=True)
class Load:
    """One load: count messages of ``size`` at ``rate`` per second."""

    name: str
    size: int
    connections: int
    rate: float
    unit: str  # what the figure is per: "connection" or "MB"

    def per(self, messages: int) -> float:
        """How many units ``messages`` are."""
        return messages if self.unit == "connection" else messages * self.size / MB


@dataclass(frozen=True)
class Peer:
    """A server as this tool starts it: over TLS, or over plain TCP."""

    name: str
    label: str
    command: Callable[[Path | None], list[str]]  # from the chain's file, None for plain TCP
    plain: str  # the name of its plain-TCP twin (itself, for a plain one)
    tls: bool = True


@dataclass
class Measurement:
    """One run of one peer on one load."""

    peer: str
    load: str
    repetition: int
    figure: float | None = None  # server CPU, µs per connection or ms per MB
    achieved_rate: float = 0.0  # messages/s
    megabytes_per_second: float = 0.0
    server_cpu_utilization: float = 0.0
    client_cpu_utilization: float = 0.0
    saturated: bool = False
    errors: int = 0
    note: str = ""


@dataclass
class Settings:
    duration: float
    warmup: float
    repeat: int
    loads: list[Load] = field(default_factory=list)


def full_settings() -> Settings:
    return Settings(
        duration=4.0,
        warmup=0.5,
        repeat=5,
        loads=[
            Load("handshakes", 100, 20, 200, "connection"),
            Load("bulk", 10_000_000, 2, 5, "MB"),
        ],
    )


def quick_settings() -> Settings:
    return Settings(
        duration=0.5,
        warmup=0.1,
        repeat=1,
        loads=[
            Load("handshakes", 100, 10, 100, "connection"),
            Load("bulk", 10_000_000, 2, 4, "MB"),
        ],
    )


def _peer_script(script: str, *extra: str) -> Callable[[Path | None], list[str]]:
    def command(chain: Path | None) -> list[str]:
        tls = ["--tls-cert", str(chain), "--tls-key", str(chain)] if chain else []
        return [sys.executable, str(PEERS / script), "--port", "0", "--quiet", *tls, *extra]

    return command


def _trio_echo(chain: Path | None) -> list[str]:
    command = trio_echo_command(0, "count")
    if chain:
        command += ["--tls-cert", str(chain), "--tls-key", str(chain)]
    return command


def _c_libssl(chain: Path | None) -> list[str]:
    tls = ["--tls-cert", str(chain), "--tls-key", str(chain)] if chain else []
    return [str(compile_with_libssl(C_TLS_SOURCE)), "--port", "0", *tls]


PEERS_COMPARED = [
    Peer("c-tls", "C, libssl alone (reference)", _c_libssl, "c-plain"),
    Peer("trio-echo-tls", "trio_echo", _trio_echo, "trio-echo"),
    Peer("trio-tls", "trio SSLStream", _peer_script("trio_tls.py"), "trio"),
    Peer(
        "trio-tls-bio",
        "trio, MemoryBIO stream",
        _peer_script("trio_tls.py", "--tls-stream=bio"),
        "trio",
    ),
    Peer(
        "asyncio-streams-tls",
        "asyncio streams",
        _peer_script("asyncio_streams.py"),
        "asyncio-streams",
    ),
    Peer(
        "uvloop-protocol-tls",
        "uvloop protocol",
        _peer_script("asyncio_protocol.py", "--uvloop"),
        "uvloop-protocol",
    ),
    Peer("c-plain", "C, libssl alone (reference)", _c_libssl, "c-plain", tls=False),
    Peer("trio-echo", "trio_echo", _trio_echo, "trio-echo", tls=False),
    Peer("trio", "trio (plain)", _peer_script("trio_plain.py"), "trio", tls=False),
    Peer(
        "asyncio-streams",
        "asyncio streams",
        _peer_script("asyncio_streams.py"),
        "asyncio-streams",
        tls=False,
    ),
    Peer(
        "uvloop-protocol",
        "uvloop protocol",
        _peer_script("asyncio_protocol.py", "--uvloop"),
        "uvloop-protocol",
        tls=False,
    ),
]


PROGRAMS = {
    "c-tls": ("benchmarks/peers/c_tls.c",),
    "c-plain": ("benchmarks/peers/c_tls.c",),
    "trio-echo-tls": SERVERS["trio-echo"].program,
    "trio-tls": ("benchmarks/peers/trio_tls.py",),
    "trio-tls-bio": ("benchmarks/peers/trio_tls.py",),
    "asyncio-streams-tls": SERVERS["asyncio-streams"].program,
    "uvloop-protocol-tls": SERVERS["uvloop-protocol"].program,
}
"""The program of each TLS peer; a plain-TCP peer's is the comparison's server's."""


def peer_servers(peers: list[Peer] | None = None) -> dict[str, Server]:
    """Each peer (by default, every one compared) as `benchmarks.provenance`
    hashes its figures' code, by name."""
    found = {}
    for peer in PEERS_COMPARED if peers is None else peers:
        if peer.name in PROGRAMS:
            found[peer.name] = replace(
                SERVERS["trio-echo"], name=peer.name, label=peer.label, program=PROGRAMS[peer.name]
            )
        else:
            found[peer.name] = SERVERS[peer.name]
    return found


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """An ECDSA P-256 chain and key (one file) and its authority, in ``folder``."""
    import trustme

    authority = trustme.CA(key_type=trustme.KeyType.ECDSA)
    issued = authority.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.ECDSA)
    chain, ca = folder / "chain.pem", folder / "ca.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(chain))
    authority.cert_pem.write_to_path(str(ca))
    return chain, ca


def measure(
    process: ServerProcess,
    load: Load,
    binary: Path,
    settings: Settings,
    *,
    ca: Path | None,
    rep: int,
) -> Measurement:
    """The server's CPU per unit of ``load``, at its fixed rate."""
    run = Measurement("", load.name, rep)
    options: dict[str, object] = {"rate": load.rate}
    if ca is not None:
        options["tls_ca"] = ca

    def command(duration: float) -> list[str]:
        return loadgen_command(
            binary,
            process.port,
            workload="count",
            size=load.size,
            connections=load.connections,
            duration=duration,
            **options,
        )

    if settings.warmup > 0:
        run_loadgen(command(settings.warmup), timeout=60 + settings.warmup)
    cpu_before, wall_before = process.cpu_seconds(), time.monotonic()
    figures = run_loadgen(command(settings.duration), timeout=120 + settings.duration)
    cpu = process.cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    run.achieved_rate = figures.messages_per_second
    run.megabytes_per_second = figures.megabytes_per_second
    run.errors = figures.errors + figures.connect_errors
    run.server_cpu_utilization = cpu / wall if wall > 0 else 0.0
    run.client_cpu_utilization = figures.client_cpu_utilization
    run.saturated = run.achieved_rate < SATURATED * load.rate
    run.note = figures.first_error
    if figures.messages:
        scale = 1e6 if load.unit == "connection" else 1e3  # µs per connection, ms per MB
        run.figure = cpu / load.per(figures.messages) * scale
    return run


def run_all(
    peers: list[Peer], settings: Settings, binaries: dict[bool, Path], folder: Path
) -> list[Measurement]:
    """Every peer on every load, interleaved over the repetitions."""
    chain, ca = make_certificate(folder)
    runs: list[Measurement] = []
    for rep in range(settings.repeat):
        order = peers if rep % 2 == 0 else list(reversed(peers))
        for peer in order:
            process = ServerProcess(peer.command(chain if peer.tls else None), cpu=SERVER_CPU)
            try:
                process.wait_for_port()
            except RuntimeError as error:
                runs += [
                    Measurement(peer.name, load.name, rep, note=str(error))
                    for load in settings.loads
                ]
                continue
            try:
                for load in settings.loads:
                    try:
                        run = measure(
                            process,
                            load,
                            binaries[peer.tls],
                            settings,
                            ca=ca if peer.tls else None,
                            rep=rep,
                        )
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                        run = Measurement(peer.name, load.name, rep, note=f"failed: {error}")
                    run.peer = peer.name
                    runs.append(run)
                    flags = " (saturated)" * run.saturated
                    print(
                        f"  [{rep + 1}/{settings.repeat}] {peer.name:<20} {load.name:<11}"
                        f" {run.figure or 0:>10,.2f} at {run.achieved_rate:,.1f}/s{flags}"
                        f" {run.note}",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                process.stop()
    return runs


def summarise(runs: list[Measurement]) -> dict[str, dict[str, dict[str, object]]]:
    """Per load, per peer: the median figure, its lowest and highest, the
    median rate reached, and whether a run was saturated."""
    summary: dict[str, dict[str, dict[str, object]]] = {}
    for load, row in grouped(runs, lambda run: run.load, lambda run: run.peer).items():
        for peer, measured in row.items():
            spread = Spread.of(run.figure for run in measured)
            summary.setdefault(load, {})[peer] = {
                "figure": spread.median,
                "min": spread.min,
                "max": spread.max,
                "achieved_rate": median(run.achieved_rate for run in measured),
                "saturated": any(run.saturated for run in measured),
                "errors": sum(run.errors for run in measured),
                "runs": sum(1 for run in measured if run.figure is not None),
            }
    return summary


TOOL = Tool("tls", "tls.json")


def main(argv: list[str] | None = None) -> int:
    parser = TOOL.parser(__doc__.splitlines()[0])
    parser.add_argument("--peers", help="comma-separated peer names (default: all)")
    args = parser.parse_args(argv)
    TOOL.full_run_only(parser, args, peers=args.peers)
    if args.report:
        TOOL.publish()
        return 0
    if len(os.sched_getaffinity(0)) < 2:
        print("tls: needs two CPUs (one for the server, one for the load)", file=sys.stderr)
        return 2
    try:
        binaries = {False: compile_c(LOADGEN_SOURCE), True: compile_tls_loadgen()}
    except (NoCompilerError, NoTlsError) as error:
        print(f"tls: skipped: {error}", file=sys.stderr)
        return 2
    settings = quick_settings() if args.quick else full_settings()
    peers = PEERS_COMPARED
    if args.peers:
        names = {name.strip() for name in args.peers.split(",")}
        peers = [peer for peer in peers if peer.name in names]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="trio-echo-tls-") as folder:
        runs = run_all(peers, settings, binaries, Path(folder))
    from benchmarks.provenance import code_hashes, environment

    document = {
        "environment": environment(),
        "code": code_hashes(peer_servers(peers).values()),
        "seconds": round(time.monotonic() - started, 1),
        "settings": {
            "duration": settings.duration,
            "warmup": settings.warmup,
            "repeat": settings.repeat,
            "loads": [asdict(load) for load in settings.loads],
        },
        "peers": [
            {"name": peer.name, "label": peer.label, "plain": peer.plain, "tls": peer.tls}
            for peer in peers
        ],
        "summary": summarise(runs),
        "runs": [asdict(run) for run in runs],
    }
    TOOL.write(document, TOOL.out(args))
    from benchmarks.pages import tls_section

    print("\n".join(tls_section(document)))
    if args.commit_results:
        TOOL.publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
