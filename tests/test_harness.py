"""The benchmark harness's whole path, once, in its quick mode, run as a user
runs it: it must start every server, measure and report (how fast they are
is not a test's business), and write where it is told, not to the committed
results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, peers

pytestmark = [
    pytest.mark.skipif(
        not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")),
        reason="the load generator needs a C compiler",
    ),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the harness needs two CPUs"),
]


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "benchmarks/harness.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_quick_run_reports_every_server(tmp_path: Path) -> None:
    conformance = [
        {"server": "trio-echo", "case": "zero-length", "outcome": "passed", "reason": ""},
        {
            "server": "twisted-original",
            "case": "zero-length",
            "outcome": "xfail",
            "reason": "a reason",
        },
    ]
    (tmp_path / "conformance.json").write_text(json.dumps(conformance))
    committed = {path: path.read_bytes() for path in (ROOT / "benchmarks" / "results").iterdir()}
    result = harness("--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p: p.read_bytes() for p in (ROOT / "benchmarks" / "results").iterdir()} == committed

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


def test_only_a_full_run_writes_the_committed_results() -> None:
    result = harness("--commit-results", "--quick")
    assert result.returncode == 2
    assert "--commit-results writes the full report" in result.stderr
