"""Every results file says where it came from, and the pages say which of
their figures were measured on code that has changed since; the counted
work (benchmarks/work.py) is shown beside the timed figures; and a fact
the page gives twice is given from one measurement."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
from typing import Any

import pytest

from benchmarks.framer import server as framer_server
from benchmarks.pages import (
    OLDER_CODE,
    Results,
    code_servers,
    fill,
    floor_section,
    framer_table,
    models_sections,
    report,
    tls_section,
    work_section,
)
from benchmarks.provenance import code_hashes, stale
from benchmarks.reporting import machine_facts
from tests.support.processes import ROOT

RESULTS = ROOT / "benchmarks" / "results"
COMMIT = "b8121c4" + "0" * 33


@pytest.fixture(scope="module")
def committed() -> Results:
    return Results.load(RESULTS)


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return code_hashes(code_servers().values())


def _load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text())


def _recorded(document: dict[str, Any], names: list[str], hashes: dict[str, str], changed: str):
    """``document`` as if it recorded its code: today's hashes of ``names``,
    but ``changed``'s."""
    document = copy.deepcopy(document)
    document["environment"] = dict(document["environment"], commit=COMMIT)
    document["code"] = {name: hashes[name] for name in names}
    document["code"][changed] = "0" * 16
    return document


def _marked(lines: list[str]) -> list[str]:
    """The first cell of each table row marked as measured on older code."""
    return [
        line.split(" | ")[0].removeprefix("| ")
        for line in lines
        if line.startswith("| ") and "on older code" in line.split(" | ")[0]
    ]


MARK = "(measured at b8121c4, on older code)"


# -- counted work ---------------------------------------------------------------------


def _entry(label: str, instructions: list[int], syscalls: list[float], flag: str = ""):
    return {
        "label": label,
        "instructions": instructions,
        "syscalls": syscalls,
        "syscalls_by_name": [{}, {}],
        "pace_ms": 13.0,
        "rounds": 200,
        "p90_ms": [10.05, 9.2],
        "flag": flag,
    }


def _load_settings(name: str, mode: str, unit: str, *, tls: bool = False) -> dict[str, Any]:
    size = 1024 if name == "echo 1 KiB" else 100
    pipeline = 16 if mode == "framed" else 1
    return {"name": name, "mode": mode, "size": size, "unit": unit, "n": 100}, {
        "pipeline": pipeline,
        "tls": tls,
    }


def work_document(hashes: dict[str, str] | None = None) -> dict[str, Any]:
    loads = {}
    for name, mode, unit, tls in (
        ("count 100 B", "count", "connection", False),
        ("echo 1 KiB", "echo", "message", False),
        ("framed 100 B x16", "framed", "message", False),
        ("TLS, count 100 B", "count", "connection", True),
    ):
        first, rest = _load_settings(name, mode, unit, tls=tls)
        loads[name] = {**first, **rest}
    figures = {
        "count 100 B": {
            "trio-echo": _entry("trio_echo", [251228, 245416], [10.0, 9.75]),
            "trio-echo-info": _entry(
                "trio_echo, --log-level info",
                [262000, 270000],
                [10.5, 10.25],
                "its two counts differ by 3.1%",
            ),
            "floor": _entry("trio floor", [330000, 331000], [11.0, 11.0]),
            "asyncio-streams": _entry("asyncio streams", [200000, 200500], [9.0, 9.0]),
            "threads": {"label": "threads", "error": "the server did not start"},
        },
        "echo 1 KiB": {
            "trio-echo": _entry("trio_echo", [30000, 30100], [2.0, 2.0]),
            "floor": _entry("trio floor", [35000, 35100], [2.0, 2.0]),
        },
        "framed 100 B x16": {"trio-echo": _entry("trio_echo", [5000, 5010], [0.125, 0.125])},
        "TLS, count 100 B": {
            "trio-echo-tls": _entry("trio_echo", [2500000, 2502000], [20.0, 20.0]),
            "asyncio-streams-tls": _entry("asyncio streams", [2400000, 2400100], [19.0, 19.0]),
        },
    }
    names = {name for row in figures.values() for name in row}
    return {
        "environment": {
            "commit": COMMIT,
            "dirty": False,
            "python": "3.11.7 (main)",
            "kernel": "Linux 6.18",
            "machine": "x86_64",
            "cpu_count": 2,
            "recorded_at": "2026-12-03T01:00:00+00:00",
        },
        "openssl_ia32cap": {"native": "0x7ffaf3bfffebffff:0x29c67af", "valgrind": "0x2:0x3"},
        "code": {name: (hashes or {}).get(name, "0" * 16) for name in names},
        "settings": {"loads": loads, "jobs": 2, "pace_ms": [10.0, 250.0]},
        "minutes": 31.2,
        "figures": figures,
    }


def _row(lines: list[str], label: str) -> str:
    return next(line for line in lines if line.startswith(f"| {label} |"))


def test_the_counted_table_shows_both_repetitions_and_the_mean(hashes) -> None:
    lines = work_section(work_document(hashes))
    row = _row(lines, "trio_echo")
    assert "248k (251k, 245k); 9.88 calls" in row
    assert "30.1k (30.0k, 30.1k)" in row
    assert "5.00k (5.00k, 5.01k)" in row
    assert "2.50M (2.50M, 2.50M)" in row  # the TLS form shares its plain twin's row
    assert "330k (330k, 331k), 1.33x" in _row(lines, "trio floor")
    assert "ia32cap" not in row
    text = "\n".join(lines)
    assert "0x7ffaf3bfffebffff:0x29c67af natively, 0x2:0x3 under valgrind" in text
    assert "31.2 minutes, at b8121c4" in text


def test_only_a_flagged_figure_has_a_footnote(hashes) -> None:
    lines = work_section(work_document(hashes))
    flagged = [line for line in lines if line.startswith("| ") and re.search(r"\[\d\]", line)]
    assert [line.split(" | ")[0] for line in flagged] == ["| trio_echo, --log-level info"]
    assert "- [1] trio_echo, --log-level info, count 100 B: its two counts differ by 3.1%." in lines
    unflagged = work_document(hashes)
    unflagged["figures"]["count 100 B"]["trio-echo-info"]["flag"] = ""
    assert not any("Flagged" in line or "[1]" in line for line in work_section(unflagged))


def test_the_log_line_is_info_minus_warning(hashes) -> None:
    text = "\n".join(work_section(work_document(hashes)))
    # INFO 266,000, WARNING 248,322: 17,678 more; 10.375 - 9.875 system calls.
    assert "+17.7k instructions (266k minus 248k) and +0.50 system calls" in text


def test_what_tls_adds_is_the_tls_count_minus_the_plain_one(hashes) -> None:
    text = "\n".join(work_section(work_document(hashes)))
    # trio_echo: 2,501,000 - 248,322; asyncio streams: 2,400,050 - 200,250.
    assert "trio_echo, +2.25M instructions (2.50M minus 248k) and +10.12 system calls" in text
    assert "asyncio streams, +2.20M instructions (2.40M minus 200k)" in text


def test_an_entry_with_an_error_shows_the_error(hashes) -> None:
    row = _row(work_section(work_document(hashes)), "threads")
    assert "error: the server did not start" in row
    assert "calls" not in row


def test_without_counted_results_the_pages_leave_the_part_out(committed, tmp_path) -> None:
    assert work_section(None) == []
    marked = (
        "a\n<!-- generated: counted (benchmarks/pages.py writes this part) -->\nold\n"
        "<!-- end of generated: counted -->\nb\n"
    )
    assert "\nold\n" not in fill(marked, {"counted": []})
    for name in ("benchmark.json", "floor.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    results = Results.load(tmp_path)
    assert results.work is None
    assert models_sections(results)["counted"] == []
    assert "Counted work" not in report(results)
    floor = floor_section(results.floor, results.work)
    assert not any(line.startswith("Beside each target that a counted load") for line in floor)
    header = next(line for line in floor if line.startswith("| target |"))
    assert header.endswith("verdict (repetitions that met the goal) |")  # no counted column


def test_counted_figures_decide_beside_the_timed_ones(committed, hashes) -> None:
    results = copy.copy(committed)
    results.work = work_document(hashes)
    sections = models_sections(results)
    floor = "\n".join(sections["floor"])
    assert (
        "| 0.75x the instructions per connection (better in 2 of 2 counted measurements) |" in floor
    )
    assert "| +17.7k instructions per connection |" in floor
    assert "## Counted work" in sections["counted"]
    assert "instructions per connection, count 100 B (counted)" in sections["figures"][4]
    assert "Counted work" in report(results)


# -- where each results file came from -------------------------------------------------


def test_a_file_that_records_no_code_is_said_to_be_of_older_code(committed) -> None:
    # Each results file with its code left out, as files written before they
    # recorded it are, is said to be of older code, and with it, is not.
    def unrecorded(document: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in document.items() if key != "code"}

    older = dataclasses.replace(
        committed,
        code=None,
        tls=unrecorded(committed.tls),
        framer=unrecorded(committed.framer),
    )
    assert OLDER_CODE[1:] in "\n".join(models_sections(older)["figures"])
    assert OLDER_CODE[1:] in "\n".join(tls_section(older.tls))
    assert OLDER_CODE[1:] in "\n".join(framer_table(older))
    measured_at = committed.floor["environment"]["commit"][:7]
    assert f"every figure may be from older code (measured at {measured_at})." in "\n".join(
        floor_section(unrecorded(committed.floor))
    )
    for name, text in (
        ("benchmark.json", models_sections(committed)["figures"]),
        ("tls.json", tls_section(committed.tls)),
        ("framer.json", framer_table(committed)),
        ("floor.json", floor_section(committed.floor)),
    ):
        assert "code" in _load(name), f"{name} records no code: measure it again"
        assert OLDER_CODE[1:] not in "\n".join(text), name


def test_the_pages_mark_exactly_the_rows_whose_code_changed(committed, hashes) -> None:
    benchmark = copy.copy(committed)
    benchmark.environment = dict(committed.environment, commit=COMMIT)
    benchmark.code = {server.name: hashes[server.name] for server in committed.servers}
    benchmark.code["trio"] = "0" * 16
    figures = models_sections(benchmark)["figures"]
    assert _marked(figures) == [f"trio (plain) {MARK}"]
    assert OLDER_CODE not in "\n".join(figures)

    floor = _recorded(
        committed.floor, [s["name"] for s in committed.floor["servers"]], hashes, "floor"
    )
    lines = floor_section(floor)
    rows = [line for line in lines if line.startswith("| ")]
    assert [line for line in rows if "trio floor" in line] == [
        line for line in rows if MARK in line
    ]
    assert all(f"trio floor {MARK}" in line for line in rows if MARK in line)
    assert any(MARK in line for line in rows)

    tls = _recorded(committed.tls, [p["name"] for p in committed.tls["peers"]], hashes, "trio-tls")
    assert _marked(tls_section(tls)) == [f"trio SSLStream {MARK}"]

    framer = copy.copy(committed)
    framer.framer = _recorded(committed.framer, [], {}, "framer")
    assert MARK in framer_table(framer)[0]
    framer.framer["code"]["framer"] = code_hashes([framer_server()])["framer"]
    assert MARK not in "\n".join(framer_table(framer))

    work = work_document(hashes)
    work["code"]["asyncio-streams-tls"] = "0" * 16
    assert _marked(work_section(work)) == [f"asyncio streams {MARK}"]


@pytest.mark.parametrize("name", sorted(path.name for path in RESULTS.glob("*.json")))
def test_a_committed_file_that_records_its_code_marks_its_stale_rows(
    committed: Results, name: str
) -> None:
    document = _load(name)
    if not isinstance(document, dict) or "code" not in document:
        pytest.skip(f"{name} records no code")
    changed = stale(document["code"], code_servers().values())
    mark = f"measured at {str(document['environment']['commit'])[:7]}, on older code"
    pages = "\n".join(line for lines in models_sections(committed).values() for line in lines)
    assert (mark in pages) == bool(changed), changed


def test_the_environment_keeps_the_facts_the_pages_print() -> None:
    old = {
        "machine": "Linux 6 x86_64",
        "cpus": 2,
        "python": "3.11.7",
        "date": "2026-12-01 18:25 UTC",
    }
    assert machine_facts(old) == old
    new = {
        "kernel": "Linux 6",
        "machine": "x86_64",
        "cpu_count": 2,
        "python": "3.11.7 (main, Jan 1 2026) [GCC 12]",
        "recorded_at": "2026-12-01T18:25:40+00:00",
    }
    assert machine_facts(new) == old


# -- one figure per fact ---------------------------------------------------------------


def test_trio_echos_idle_memory_has_one_value_on_the_page() -> None:
    text = (ROOT / "docs" / "models.md").read_text()
    found = set()
    header = next(line for line in text.splitlines() if line.startswith("| model | enforces"))
    column = header.split(" | ").index("memory per idle connection")
    for line in text.splitlines():
        cells = line.split(" | ")
        if line.startswith("| trio_echo |") and len(cells) > column and "KiB" in cells[column]:
            found.add(cells[column].split(" [")[0])
        if line.startswith("| idle connections | trio_echo |"):
            found.add(cells[2].split(" [")[0])
        if line.startswith("| memory per idle connection, nothing sent (the harness"):
            found.add(cells[2].split(" [")[0])
        if match := re.search(
            r"Memory per idle connection.*trio_echo \d+\w+ of \d+ by its median \(([\d.]+ KiB)",
            line,
        ):
            found.add(match[1])
    assert len(found) == 1, found
