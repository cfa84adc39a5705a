"""The benchmarks' tests: the conformance table's outcomes, written where
``--conformance-json`` says (the harness's ``--conformance`` asks for them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conformance-json",
        metavar="PATH",
        default=None,
        help="write the conformance suite's outcome per server and case to PATH",
    )


_conformance: list[dict[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    properties = dict(report.user_properties)
    if "server" not in properties or report.when != "call":
        return
    reason = ""
    if hasattr(report, "wasxfail"):
        outcome = "xfail" if report.skipped else "xpass"
        reason = report.wasxfail
    elif report.skipped:
        outcome = "skipped"
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
    else:
        outcome = report.outcome
    _conformance.append(
        {
            "server": str(properties["server"]),
            "case": str(properties["case"]),
            "outcome": outcome,
            "reason": reason,
        }
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--conformance-json")
    if path and _conformance:
        from benchmarks.provenance import code_hashes, environment
        from benchmarks.servers import SERVERS

        names = {outcome["server"] for outcome in _conformance}
        document = {
            "environment": environment(),
            "code": code_hashes(server for name, server in SERVERS.items() if name in names),
            "outcomes": _conformance,
        }
        Path(path).write_text(json.dumps(document, indent=1) + "\n")
