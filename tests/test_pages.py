"""The comparison's pages are written from the results, not typed: the
committed pages must be exactly what the committed results write, who leads
is computed (overlapping ranges are a tie), and lines of code are counted."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from benchmarks.lines import code_lines
from benchmarks.measuring import Cell, Run, Settings
from benchmarks.pages import PAGES, Results, fill, report
from benchmarks.reporting import summarise, who_leads
from benchmarks.servers import SERVERS
from tests.conftest import ROOT

RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def committed() -> Results:
    return Results.load(RESULTS)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_committed_page_is_what_the_committed_results_write(
    committed: Results, page: str
) -> None:
    text = (ROOT / page).read_text()
    assert fill(text, PAGES[page](committed)) == text, (
        f"{page} differs from what benchmarks/results/ writes: run"
        " python benchmarks/harness.py --report --commit-results"
    )


def test_the_committed_report_is_what_the_committed_results_write(committed: Results) -> None:
    assert (RESULTS / "benchmark.md").read_text() == report(committed)


def test_the_committed_results_are_a_full_run_of_every_server(committed: Results) -> None:
    assert committed.settings.repeat >= 5
    assert {server.name for server in committed.servers} == {
        name for name in SERVERS if not name.endswith("-baseline")
    }
    assert committed.conformance


MARKED = (
    "before\n"
    "<!-- generated: one (benchmarks/pages.py writes this part) -->\n"
    "stale\n"
    "<!-- end of generated: one -->\n"
    "after\n"
)


def test_fill_replaces_only_what_is_between_the_markers() -> None:
    filled = fill(MARKED, {"one": ["new", "lines"]})
    assert filled == MARKED.replace("stale\n", "new\nlines\n")
    assert fill(filled, {"one": ["new", "lines"]}) == filled


def test_fill_refuses_a_section_without_markers_and_markers_without_a_section() -> None:
    with pytest.raises(LookupError, match="no markers for two"):
        fill(MARKED, {"one": [], "two": []})
    with pytest.raises(LookupError, match="no section 'one'"):
        fill(MARKED, {})


def _results(figures: dict[str, list[float]], cell: Cell) -> dict[str, dict[str, object]]:
    runs = [
        Run(name, cell.name, rep, figure=figure)
        for name, values in figures.items()
        for rep, figure in enumerate(values)
    ]
    servers = [SERVERS[name] for name in figures]
    return summarise(runs, servers, Settings(1, 0, 3, 1, [cell]))


def test_who_leads_calls_overlapping_ranges_a_tie() -> None:
    cell = Cell("echo 1 KiB", "echo", 1024)
    summary = _results(
        {
            "trio-echo": [100.0, 110.0, 120.0],
            "twisted": [95.0, 105.0, 101.0],  # overlaps 100..120
            "threads": [50.0, 60.0, 70.0],  # does not
        },
        cell,
    )
    servers = [SERVERS[name] for name in ("trio-echo", "twisted", "threads")]
    assert who_leads(summary, servers, cell) == "trio_echo, 110 [100 to 120], tied with Twisted"


def test_who_leads_at_a_fixed_rate_counts_only_servers_that_kept_up() -> None:
    cell = Cell("count 100 B at 1,000/s", "count", rate=1000, group="cpu")
    runs = [
        Run("trio", cell.name, 0, figure=10.0, messages_per_second=500.0),  # fell short
        Run("trio-echo", cell.name, 0, figure=40.0, messages_per_second=1000.0),
        Run("c-epoll", cell.name, 0, figure=20.0, messages_per_second=999.0),
    ]
    servers = [SERVERS[name] for name in ("trio", "trio-echo", "c-epoll")]
    summary = summarise(runs, servers, Settings(1, 0, 1, 1, [cell]))
    assert who_leads(summary, servers, cell) == (
        "C epoll, 20.0 µs; among the Python servers, trio_echo, 40.0 µs"
    )


def test_lines_of_code_leave_out_blanks_comments_and_docstrings(tmp_path: Path) -> None:
    source = tmp_path / "peer.py"
    source.write_text(
        '"""A module docstring,\n'
        'over two lines."""\n'
        "\n"
        "import socket  # a comment after code counts as code\n"
        "\n"
        "# a comment\n"
        "def handle(\n"
        "    sock,\n"
        "):\n"
        '    """Its docstring."""\n'
        "    return sock\n"
        "\n"
        "\n"
        "def other():\n"
        "    pass\n"
    )
    assert code_lines(source) == 7
    assert code_lines(source, ("handle",)) == 4
    with pytest.raises(LookupError):
        code_lines(source, ("missing",))


def test_lines_of_code_in_c(tmp_path: Path) -> None:
    source = tmp_path / "peer.c"
    source.write_text(
        "/* a comment\n"
        "   over two lines */\n"
        "static int queue(int n);\n"
        "\n"
        "static int queue(int n) {  // trailing\n"
        "    if (n) {\n"
        "        return 1;\n"
        "    }\n"
        "    return 0;\n"
        "}\n"
        "int main(void) { return queue(0); }\n"
    )
    assert code_lines(source) == 8
    assert code_lines(source, ("queue",)) == 6


def test_every_server_counts_its_handler_within_its_program() -> None:
    from benchmarks.reporting import lines_of_code

    for server in SERVERS.values():
        handler, program = lines_of_code(server)
        assert 0 < handler <= program, server.name


def test_the_readme_names_every_benchmark_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["bench"]
    readme = (ROOT / "README.md").read_text().lower()
    for requirement in extras:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert name is not None
        assert name[0].lower() in readme, name[0]


def test_the_tls_part_is_written_from_its_results() -> None:
    from benchmarks.pages import tls_section

    def entry(figure: float, low: float, high: float) -> dict[str, object]:
        return {
            "figure": figure,
            "min": low,
            "max": high,
            "achieved_rate": 199.5,
            "saturated": False,
            "errors": 0,
            "runs": 3,
        }

    document = {
        "environment": {"date": "today", "cpus": 2, "machine": "m", "python": "3.11"},
        "settings": {
            "duration": 4.0,
            "warmup": 0.5,
            "repeat": 3,
            "loads": [
                {
                    "name": "handshakes",
                    "size": 100,
                    "connections": 20,
                    "rate": 200.0,
                    "unit": "connection",
                },
                {"name": "bulk", "size": 10_000_000, "connections": 2, "rate": 5.0, "unit": "MB"},
            ],
        },
        "peers": [
            {"name": "trio-tls", "label": "trio SSLStream", "plain": "trio", "tls": True},
            {
                "name": "asyncio-streams-tls",
                "label": "asyncio streams",
                "plain": "asyncio-streams",
                "tls": True,
            },
            {"name": "trio", "label": "trio (plain)", "plain": "trio", "tls": False},
        ],
        "summary": {
            "handshakes": {
                "trio-tls": entry(600.0, 500.0, 700.0),
                "asyncio-streams-tls": entry(500.0, 450.0, 550.0),
                "trio": entry(300.0, 250.0, 350.0),
            },
            "bulk": {
                "trio-tls": entry(4.0, 3.5, 4.5),
                "asyncio-streams-tls": entry(2.0, 1.8, 2.2),
                "trio": entry(1.0, 0.9, 1.1),
            },
        },
    }
    text = "\n".join(tls_section(document))
    assert "| trio SSLStream | 600 µs [500 to 700] at 199.5/s | 300 µs [250 to 350]" in text
    assert "4.00 ms [3.50 to 4.50] at 199.5/s | 1.00 ms [0.90 to 1.10]" in text
    assert (
        "trio SSLStream against asyncio streams: 1.20x (the ranges overlap) per handshake,"
        " 2.00x per MB" in text
    )
    assert tls_section(None) == ["(no TLS results: python benchmarks/tls.py --commit-results)"]


def test_the_floor_part_is_written_from_its_results() -> None:
    from benchmarks.pages import floor_section

    def spread(median: float, low: float, high: float) -> dict[str, float]:
        return {"median": median, "min": low, "max": high}

    def entry(cpu: dict[str, float], rate: float, saturated: int = 0) -> dict[str, object]:
        return {
            "figure": cpu,
            "cpu_us_per_message": cpu,
            "messages_per_second": spread(rate, rate - 10, rate),
            "megabytes_per_second": spread(rate / 1e4, rate / 1e4, rate / 1e4),
            "p99_us": spread(2500.0, 2000.0, 3000.0),
            "saturated": saturated,
            "client_limited": 0,
            "errors": 0,
            "runs": 3,
            "failed": 0,
            "notes": [],
        }

    def target(what: str, kind: str, values: list[float], met: bool) -> dict[str, object]:
        return {
            "what": what,
            "load": "count 100 B at 5,000/s",
            "kind": kind,
            "goal": "≤ 1.05x" if kind == "ratio" else "≤ 5 µs",
            "bound": 1.05 if kind == "ratio" else 5.0,
            "at_most": True,
            "value": sorted(values)[1],
            "min": min(values),
            "max": max(values),
            "values": values,
            "met": met,
            "met_in": 2 if met else 0,
            "saturated": False,
            "server": "trio-echo" if kind == "ratio" else "trio-echo-info",
            "against": ["floor"] if kind == "ratio" else ["trio-echo"],
            "unit": "" if kind == "ratio" else "µs",
        }

    document = {
        "environment": {
            "date": "today",
            "cpus": 2,
            "machine": "m",
            "python": "3.11",
            "trio_echo_commit": "0123456789abcdef",
            "trio_echo_subject": "a pump",
            "trio_echo_uncommitted": False,
            "load_average_before": [1.0, 1.0, 1.0],
            "load_average_after": [2.5, 1.0, 1.0],
        },
        "settings": {
            "duration": 3.0,
            "warmup": 0.5,
            "repeat": 3,
            "idle_connections": 10_000,
            "tracemalloc_connections": 2_000,
            "loads": [
                {
                    "name": "count 100 B at 5,000/s",
                    "workload": "count",
                    "size": 100,
                    "connections": 50,
                    "pipeline": 1,
                    "rate": 5000.0,
                    "metric": "server_cpu_us_per_message",
                    "group": "cpu",
                    "servers": ["trio-echo", "floor"],
                }
            ],
        },
        "servers": [
            {"name": "trio-echo", "label": "trio_echo"},
            {"name": "trio-echo-info", "label": "trio_echo, --log-level info"},
            {"name": "floor", "label": "trio floor"},
        ],
        "targets": [
            target("CPU per connection", "ratio", [1.1, 1.0, 1.2], False),
            target("the log line", "difference", [3.0, 4.0, 1.0], True),
        ],
        "summary": {
            "count 100 B at 5,000/s": {
                "trio-echo": entry(spread(110.0, 100.0, 120.0), 5000.0),
                "floor": entry(spread(100.0, 95.0, 105.0), 4500.0, saturated=1),
            }
        },
    }
    text = "\n".join(floor_section(document))
    assert 'trio_echo at 0123456, "a pump" (the working tree); each server' in text
    assert (
        "| CPU per connection | trio_echo over trio floor | 1.10x [1.00x to 1.20x] | ≤ 1.05x |"
        " **not met** (in 0 of 3) |" in text
    )
    assert (
        "| the log line | trio_echo, --log-level info minus trio_echo | 3.0 µs [1.0 to 4.0] |"
        " ≤ 5 µs | met (in 2 of 3) |" in text
    )
    assert (
        "| count 100 B at 5,000/s | trio floor |  | 100.0 µs per connection [95.0 to 105.0] |"
        " 4,500 per s [4,490 to 4,500] of 5,000 (saturated in 1 of 3) | 2.50 ms [2.00 to 3.00] |"
        in text
    )
    assert (
        "varied by a median of 14% of its median (at most 18%: trio_echo, count 100 B at"
        " 5,000/s)" in text
    )
    moved = dict(document["environment"], trio_echo_checkout_head_after="fedcba987")
    for changed, said in ((False, "its trio_echo unchanged"), (True, "not measured")):
        document["environment"] = dict(moved, trio_echo_changed_after=changed)
        text = "\n".join(floor_section(document))
        assert (
            f"(the working tree; the checkout moved on to fedcba9 during the run, {said})" in text
        )
    assert floor_section(None) == [
        "(no floor results: python benchmarks/floor.py --commit-results)"
    ]
