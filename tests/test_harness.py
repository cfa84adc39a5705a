"""The benchmark harness's whole path, once, in its quick mode: it must run
every server, measure and report (how fast they are is not a test's
business)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import harness
from benchmarks.build import find_compiler
from benchmarks.servers import SERVERS

pytestmark = [
    pytest.mark.skipif(find_compiler() is None, reason="the load generator needs a C compiler"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the harness needs two CPUs"),
]


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
    assert harness.main(["--quick", "--out", str(tmp_path)]) == 0

    report = (tmp_path / "benchmark.md").read_text()
    results = json.loads((tmp_path / "benchmark.json").read_text())
    available = [s for s in SERVERS.values() if s.missing() is None]
    for server in available:
        assert server.label in report
    summary = results["summary"]
    for cell in harness.quick_settings().cells:
        for server in available:
            entry = summary[cell.name][server.name]
            if cell.mode in server.modes:
                assert entry["figure"] is not None, (cell.name, server.name, entry)
                assert entry["errors"] == 0, (cell.name, server.name, entry)
            else:
                assert entry["figure"] is None
    # Ratios are to the Twisted original of the same run.
    if "twisted-original" in [s.name for s in available]:
        assert summary["count 100 B"]["twisted-original"]["ratio"] == pytest.approx(1.0)
    assert "## Conformance" in report
    assert "a reason" in report
    scaling = results["scaling"]
    assert [entry["workers"] for entry in scaling] == list(range(1, (os.cpu_count() or 1) + 1))
    assert all(entry["messages_per_second"] > 0 for entry in scaling)
    assert "## trio_echo --workers" in report
    runs = results["runs"]
    assert all(0 <= run["client_cpu_utilization"] <= 1.5 for run in runs if run["figure"])
