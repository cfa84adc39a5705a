"""The benchmark harness: every server on the same loads, side by side.

Each server runs pinned to CPU 0; the C load generator (benchmarks/
loadgen.c) runs pinned to CPU 1 and checks every echo byte for byte.
Servers are interleaved over the repetitions (A B C, C B A, A B C...) so
that drift in the machine hits them alike; each figure is the median of the
repetitions, with the spread (min-max), and a ratio to the Twisted original
measured in the same run. Every run records the load generator's CPU next
to the server's: a run whose generator used 90% or more of its core is
flagged as client-limited (its figure is a lower bound on the server).

    python benchmarks/harness.py            # the full matrix (over an hour here)
    python benchmarks/harness.py --quick    # the whole path, short
    python benchmarks/harness.py --report   # write the report again, measure nothing

Results go to a scratch directory (benchmarks/.cache/results/, or --out):
benchmark.json (every run), benchmark.md (the tables, with the conformance
table when conformance.json is there), and PNG plots. Only
--commit-results writes benchmarks/results/, the report the README quotes,
and the generated parts of README.md and docs/models.md (see
benchmarks/pages.py).

The pieces: benchmarks/servers.py (who is compared), running.py (starting
servers and the load generator), measuring.py (the loads and what each
measures), reporting.py (medians, ratios, tables, plots).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import LOADGEN_SOURCE, NoCompilerError, compile_c
from benchmarks.measuring import (
    Journal,
    full_settings,
    measure_scaling,
    quick_settings,
    run_matrix,
    runs_to_make,
)
from benchmarks.pages import Results, write_pages, write_report
from benchmarks.provenance import code_hashes
from benchmarks.reporting import environment, summarise
from benchmarks.running import memory_measure
from benchmarks.servers import ROOT, SERVERS
from benchmarks.tool import Tool

TOOL = Tool("harness", "")


def main(argv: list[str] | None = None) -> int:
    parser = TOOL.parser(
        __doc__.splitlines()[0],
        quick="the whole path, short (about 70 s with every server on 2 cores)",
        report="measure nothing: write the report and plots again from the output folder's"
        " benchmark.json (with --commit-results, also the generated parts of README.md and"
        " docs/models.md)",
        commit=f"write the committed report, {TOOL.committed} (a full run only)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated server names (default: all): " + ", ".join(SERVERS),
    )
    parser.add_argument(
        "--cells",
        help="only the loads whose names contain one of these comma-separated words",
    )
    parser.add_argument("--repeat", type=int, help="repetitions (default: 5, quick: 1)")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure trio_echo with 1..N workers (default: in the full run, not in --quick)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="start no new measurement after this long; what was measured is kept, and"
        " --resume carries on (exit status 3 while runs are missing)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="carry on from the runs already measured in the output folder's runs.jsonl",
    )
    parser.add_argument(
        "--conformance",
        action="store_true",
        help="run the conformance suite first, for the report's conformance table",
    )
    args = parser.parse_args(argv)
    TOOL.full_run_only(
        parser, args, cells=args.cells, servers=args.servers != parser.get_default("servers")
    )
    if args.report:
        return publish(TOOL.out(args), commit=args.commit_results)
    settings = quick_settings() if args.quick else full_settings()
    settings.memory = memory_measure()
    if args.repeat:
        settings.repeat = args.repeat
    if args.duration:
        settings.duration = args.duration
    if args.scaling is not None:
        settings.scaling = args.scaling
    if args.cells:
        words = [word.strip() for word in args.cells.split(",") if word.strip()]
        settings.cells = [c for c in settings.cells if any(w in c.name for w in words)]
        if not settings.cells:
            parser.error(f"--cells {args.cells!r} matches no load")
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if len(os.sched_getaffinity(0)) < 2:
        print("harness: needs two CPUs (one for the server, one for the load)", file=sys.stderr)
        return 2
    try:
        binary = compile_c(LOADGEN_SOURCE)
    except NoCompilerError as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    servers, skipped = [], []
    for name in names:
        missing = SERVERS[name].missing()
        if missing:
            print(f"harness: skipping {SERVERS[name].label}: {missing}", file=sys.stderr)
            skipped.append(f"- {SERVERS[name].label}: not measured, {missing}")
        else:
            servers.append(SERVERS[name])
    out = TOOL.out(args)
    out.mkdir(parents=True, exist_ok=True)
    conformance_path = out / "conformance.json"
    if args.conformance:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "benchmarks/tests/test_conformance.py",
                f"--conformance-json={conformance_path}",
            ],
            cwd=ROOT,
            check=False,
        )
    started = time.monotonic()
    journal = Journal.open(out / "runs.jsonl", resume=args.resume)
    print(
        f"harness: {runs_to_make(servers, settings)} runs to make: {len(servers)} servers,"
        f" {len(settings.cells)} loads, {settings.repeat} repetition(s) of"
        f" {settings.duration:g} s each (after {settings.warmup:g} s of warm-up)",
        file=sys.stderr,
        flush=True,
    )
    until = started + args.time_budget if args.time_budget else math.inf
    if not run_matrix(servers, settings, binary, journal, until=until):
        print(
            f"harness: the time budget is spent with {len(journal.runs)} runs measured, in"
            f" {journal.path}; run again with --resume to carry on",
            file=sys.stderr,
        )
        return 3
    runs = [run for run in journal.runs if run.server in {s.name for s in servers}]
    scaling = measure_scaling(binary, settings) if settings.scaling else []
    (out / "benchmark.json").write_text(
        json.dumps(
            {
                "environment": environment(),
                "code": code_hashes(servers),
                "seconds": round(time.monotonic() - started, 1),
                "settings": {
                    "duration": settings.duration,
                    "warmup": settings.warmup,
                    "repeat": settings.repeat,
                    "idle_connections": settings.idle_connections,
                    "memory": settings.memory,
                    "cells": [asdict(cell) for cell in settings.cells],
                },
                "summary": summarise(runs, servers, settings),
                "scaling": [asdict(entry) for entry in scaling],
                "runs": [asdict(run) for run in runs],
            },
            indent=1,
        )
        + "\n"
    )
    return publish(out, commit=args.commit_results, skipped=skipped)


def publish(out: Path, *, commit: bool, skipped: list[str] | None = None) -> int:
    """Write the report and plots from ``out``'s results, and the pages'
    generated parts too if they are the committed results."""
    try:
        results = Results.load(out)
    except FileNotFoundError:
        print(f"harness: no results in {out} (benchmark.json)", file=sys.stderr)
        return 2
    written = write_report(results, out, skipped)
    if commit:
        written += write_pages(results)
    print(written[0].read_text())
    print(
        f"harness: {len(results.runs)} runs; wrote "
        + ", ".join(
            str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path) for path in written
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
