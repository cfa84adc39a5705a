"""The comparison's pages are written from the results, not typed: the
committed pages must be exactly what the committed results write, who leads
is computed from paired repetitions (benchmarks/verdicts.py), and lines of
code are counted."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from benchmarks.lines import code_lines
from benchmarks.measuring import Cell, Run, Settings, figure_unit, quick_settings, runs_to_make
from benchmarks.pages import PAGES, Results, fill, report
from benchmarks.plots import plots
from benchmarks.reporting import summarise, who_leads
from benchmarks.servers import SERVERS
from benchmarks.verdicts import Verdict, against_goal, by_repetition, compare, needed
from tests.support.processes import ROOT

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


OLDER_ENVIRONMENT = {"date": "2026-12-01 18:25 UTC", "cpus": 2, "machine": "m", "python": "3.11.7"}
RECORDED_ENVIRONMENT = {
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "dirty": False,
    "python": "3.11.7 (main) [GCC 12.2.0]",
    "libraries": {"trio": "0.35.0"},
    "openssl": "OpenSSL 3.0.19",
    "compiler": "cc 12.2.0",
    "kernel": "Linux 6.18",
    "machine": "x86_64",
    "cpu_model": "a CPU",
    "cpu_count": 2,
    "cpus_available": 2,
    "loadgen_hash": "0123456789abcdef",
    "recorded_at": "2026-12-07T23:52:14+00:00",
}


@pytest.mark.parametrize(
    ("environment", "machine"),
    [(OLDER_ENVIRONMENT, "m"), (RECORDED_ENVIRONMENT, "Linux 6.18 x86_64")],
)
def test_every_page_is_written_from_either_record_of_the_machine(
    committed: Results, environment: dict[str, object], machine: str
) -> None:
    results = dataclasses.replace(committed, environment=environment)
    text = "\n".join(
        line
        for sections in PAGES.values()
        for section in sections(results).values()
        for line in section
    )
    assert "**What this machine can say**: 2 shared CPUs" in text
    assert f"2 CPUs, {machine}, Python 3.11.7;" in text


def test_fill_replaces_only_what_is_between_the_markers() -> None:
    filled = fill(MARKED, {"one": ["new", "lines"]})
    assert filled == MARKED.replace("stale\n", "new\nlines\n")
    assert fill(filled, {"one": ["new", "lines"]}) == filled


def test_fill_refuses_a_section_without_markers_and_markers_without_a_section() -> None:
    with pytest.raises(LookupError, match="no markers for two"):
        fill(MARKED, {"one": [], "two": []})
    with pytest.raises(LookupError, match="no section 'one'"):
        fill(MARKED, {})


def _results(figures: dict[str, list[float | None]], cell: Cell) -> dict[str, dict[str, object]]:
    runs = [
        Run(name, cell.name, rep, figure=figure)
        for name, values in figures.items()
        for rep, figure in enumerate(values)
    ]
    servers = [SERVERS[name] for name in figures]
    return summarise(runs, servers, Settings(1, 0, len(runs), 1, [cell]))


# -- the verdict rule (benchmarks/verdicts.py) -----------------------------------


def _compare(mine: list[float | None], theirs: list[float | None], *, lower: bool) -> Verdict:
    def figures(values: list[float | None]) -> dict[int, float]:
        return {rep: value for rep, value in enumerate(values) if value is not None}

    return compare("A", "B", figures(mine), figures(theirs), lower_is_better=lower)


@pytest.mark.parametrize(("count", "wins"), [(2, 2), (3, 3), (4, 4), (5, 4), (7, 6), (10, 8)])
def test_a_lead_needs_80_percent_of_the_pairs_rounded_up(count: int, wins: int) -> None:
    assert needed(count) == wins


def test_a_server_that_wins_every_pair_leads_though_the_ranges_overlap() -> None:
    # A: 100..140, B: 80..125: the ranges overlap, yet A is ahead in every repetition.
    said = _compare(
        [100.0, 140.0, 120.0, 110.0, 130.0], [80.0, 125.0, 100.0, 95.0, 100.0], lower=False
    )
    assert (said.wins, said.losses, said.count, said.leader) == (5, 0, 5, "A")
    assert said.ratio == pytest.approx(1.2)
    assert said.text() == "A beat B in 5 of 5 paired repetitions, median ratio 1.20x"
    assert said.tally() == said.outcome() == "better in 5 of 5 paired repetitions"
    assert said.reversed().leader == "A"
    assert said.reversed().tally() == "worse in 5 of 5 paired repetitions"


def test_three_wins_of_five_decide_nothing_however_far_apart_the_medians() -> None:
    said = _compare(
        [121.0, 121.0, 121.0, 90.0, 95.0], [100.0, 100.0, 100.0, 100.0, 100.0], lower=False
    )
    assert (said.wins, said.losses, said.leader) == (3, 2, None)
    assert said.text() == "A beat B in 3 of 5 paired repetitions, median ratio 1.21x: not decided"
    assert said.outcome() == "better in 3 of 5 paired repetitions: not decided"
    # Said from the side that won more, whichever is named first.
    assert said.reversed().text() == said.text()


def test_lower_is_better_turns_the_wins_round() -> None:
    mine, theirs = [10.0, 11.0, 12.0, 9.0, 10.5], [20.0, 22.0, 24.0, 18.0, 21.0]
    cpu = _compare(mine, theirs, lower=True)
    assert (cpu.wins, cpu.losses, cpu.leader) == (5, 0, "A")
    assert cpu.text() == "A beat B in 5 of 5 paired repetitions, median ratio 0.50x"
    rate = _compare(mine, theirs, lower=False)
    assert (rate.wins, rate.losses, rate.leader) == (0, 5, "B")
    assert rate.text() == "B beat A in 5 of 5 paired repetitions, median ratio 2.00x"


def test_only_repetitions_that_measured_both_are_paired() -> None:
    # A wins the three repetitions both measured; the ones either missed count for nobody.
    said = _compare([None, 5.0, 5.0, 5.0, 1.0], [9.0, 4.0, 4.0, 4.0, None], lower=False)
    assert said.pairs == ((5.0, 4.0), (5.0, 4.0), (5.0, 4.0))
    assert (said.wins, said.count, said.leader) == (3, 3, "A")
    assert said.text() == "A beat B in 3 of 3 paired repetitions, median ratio 1.25x"


def test_fewer_than_two_pairs_give_no_verdict() -> None:
    one = _compare([5.0, None, 1.0], [4.0, 3.0, None], lower=False)
    assert (one.count, one.wins, one.enough, one.leader) == (1, 1, False, None)
    assert one.text() == "A and B: 1 paired repetition, too few for a verdict"
    assert one.outcome() == "1 paired repetition, too few for a verdict"
    none = _compare([5.0, None], [None, 3.0], lower=False)
    assert (none.count, none.ratio, none.leader) == (0, None, None)
    assert none.text() == "A and B: 0 paired repetitions, too few for a verdict"


@pytest.mark.parametrize(
    ("wins", "leader"), [(7, "A"), (6, "A"), (5, None), (2, None), (1, "B"), (0, "B")]
)
def test_at_seven_pairs_six_wins_lead_and_five_do_not(wins: int, leader: str | None) -> None:
    mine = [2.0] * wins + [1.0] * (7 - wins)
    said = _compare(mine, [1.5] * 7, lower=False)
    assert (said.wins, said.losses, said.count) == (wins, 7 - wins, 7)
    assert said.leader == leader


def test_equal_figures_win_for_neither() -> None:
    said = _compare([2.0, 2.0, 2.0, 2.0, 3.0], [2.0, 2.0, 2.0, 1.0, 1.0], lower=False)
    assert (said.wins, said.losses, said.leader) == (2, 0, None)


def test_a_counted_figure_decides_outright() -> None:
    one = compare("A", "B", {0: 800.0}, {0: 1000.0}, lower_is_better=True, outright=True)
    assert (one.leader, one.text()) == (
        "A",
        "A beat B in 1 of 1 counted measurements, ratio 0.80x: decided outright",
    )
    split = compare(
        "A", "B", {0: 800.0, 1: 1200.0}, {0: 1000.0, 1: 1000.0}, lower_is_better=True, outright=True
    )
    assert split.leader is None  # counted figures that disagree decide nothing


def test_a_repetition_with_several_runs_counts_as_their_mean() -> None:
    assert by_repetition([(1, 4.0), (0, 1.0), (1, 6.0)]) == {0: 1.0, 1: 5.0}


@pytest.mark.parametrize(
    ("values", "verdict", "met_in"),
    [
        ([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 1.2], "met", 6),
        ([0.9, 0.9, 0.9, 0.9, 0.9, 1.2, 1.2], "not decided", 5),  # its median meets the goal
        ([0.9, 0.9, 0.9, 1.2, 1.2, 1.2, 1.2], "not decided", 3),  # its median misses it
        ([0.9, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2], "not met", 1),
        ([0.9], "no verdict", 1),
    ],
)
def test_a_target_is_judged_on_its_count_of_repetitions(
    values: list[float], verdict: str, met_in: int
) -> None:
    goal = against_goal(values, 1.0, at_most=True)
    assert (goal.verdict, goal.met_in, goal.count) == (verdict, met_in, len(values))
    assert goal.tally() == f"met in {met_in} of {len(values)}"
    flipped = against_goal(values, 1.0, at_most=False)  # ">= 1": the misses are now met
    assert flipped.met_in == len(values) - met_in


def test_who_leads_from_paired_repetitions_though_the_ranges_overlap() -> None:
    cell = Cell("echo 1 KiB", "echo", 1024)
    summary = _results(
        {
            "trio-echo": [100.0, 140.0, 120.0, 110.0, 130.0],
            "twisted": [80.0, 125.0, 100.0, 95.0, 100.0],  # overlaps, behind in every pair
            "threads": [50.0, 60.0, 70.0, 60.0, 50.0],  # far behind
        },
        cell,
    )
    servers = [SERVERS[name] for name in ("trio-echo", "twisted", "threads")]
    assert who_leads(summary, servers, cell) == (
        "trio_echo, 120 [100 to 140], ahead of the 2 others (the nearest, Twisted: better in"
        " 5 of 5 paired repetitions, median ratio 1.20x)"
    )


def test_who_leads_says_whom_the_leader_is_not_decided_against() -> None:
    cell = Cell("CPU", "count", group="cpu")  # lower is better
    summary = _results(
        {
            "trio-echo": [100.0, 100.0, 100.0, 100.0, 100.0],
            "twisted": [120.0, 120.0, 120.0, 90.0, 95.0],  # 3 of 5 for trio_echo
            "threads": [200.0, 200.0, 200.0, 200.0, None],  # 4 measured: 4 of 4
        },
        cell,
    )
    servers = [SERVERS[name] for name in ("trio-echo", "twisted", "threads")]
    assert who_leads(summary, servers, cell) == (
        "trio_echo, 100.0 µs, not decided against Twisted (better in 3 of 5 paired"
        " repetitions, median ratio 0.83x), ahead of threads (better in 4 of 4 paired"
        " repetitions, median ratio 0.50x)"
    )


def test_a_ratio_sentence_gives_the_median_paired_ratio_and_its_count() -> None:
    from benchmarks.pages import ratio_text

    cell = Cell("echo 1 KiB", "echo", 1024)
    figures: dict[str, list[float | None]] = {
        # 2.0x trio in every repetition, though one slow repetition overlaps the ranges.
        "trio-echo": [200.0, 220.0, 60.0, 210.0, 190.0],
        "trio": [100.0, 110.0, 30.0, 105.0, 95.0],
        "trio-tutorial": [210.0, 230.0, 50.0, 200.0, 160.0],  # ahead of trio_echo in 2 of 5
    }
    runs = [
        Run(name, cell.name, rep, figure=figure)
        for name, values in figures.items()
        for rep, figure in enumerate(values)
    ]
    servers = [SERVERS[name] for name in figures]
    settings = Settings(1, 0, 5, 1, [cell])
    results = Results({}, settings, runs, [], None, servers, summarise(runs, servers, settings))
    assert ratio_text(results, cell.name, "trio-echo", "trio", "the rate") == (
        "2.00x the rate (better in 5 of 5 paired repetitions)"
    )
    assert ratio_text(results, cell.name, "trio-echo", "trio-tutorial", "the rate") == (
        "1.05x the rate (better in 3 of 5 paired repetitions: not decided)"
    )
    assert ratio_text(results, "no such load", "trio-echo", "trio", "the rate") == (
        "no figure for the rate"
    )


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
        "C epoll, 20.0 µs, not decided against trio_echo (1 paired repetition, too few for a"
        " verdict, median ratio 0.50x); among the Python servers, trio_echo, 40.0 µs"
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
        lines = lines_of_code(server)
        assert 0 < lines.handler <= lines.program, server.name
        assert lines.protocol < lines.program, server.name


def test_every_program_counts_the_protocol_it_drives_and_its_shared_code() -> None:
    from benchmarks.reporting import lines_of_code

    protocol = code_lines_of_tree(ROOT / "trio_echo" / "protocol")
    common = code_lines(ROOT / "benchmarks" / "peers" / "_common.py")
    for name in ("trio", "asyncio-protocol", "gevent", "threads", "trio-echo"):
        assert lines_of_code(SERVERS[name]).protocol == protocol, name
    package = code_lines(ROOT / "trio_echo" / "__init__.py")
    for name, own in (
        ("trio", "trio_plain.py"),
        ("asyncio-protocol", "asyncio_protocol.py"),
        ("gevent", "gevent_server.py"),
        ("threads", "threads.py"),
    ):
        mine = code_lines(ROOT / "benchmarks" / "peers" / own)
        assert lines_of_code(SERVERS[name]).program == protocol + common + package + mine, name
    for name in ("twisted-original", "c-epoll"):
        assert lines_of_code(SERVERS[name]).protocol == 0, name


def test_a_program_that_names_parts_of_a_file_counts_only_those_parts() -> None:
    from benchmarks.reporting import lines_of_code

    tutorial = lines_of_code(SERVERS["trio-tutorial"])
    plain = lines_of_code(SERVERS["trio"])
    # the tutorial borrows trio_plain.py's main only, not its handler
    own = code_lines(ROOT / "benchmarks" / "peers" / "trio_tutorial.py")
    main = code_lines(ROOT / "benchmarks" / "peers" / "trio_plain.py", ("main",))
    whole_plain = code_lines(ROOT / "benchmarks" / "peers" / "trio_plain.py")
    assert tutorial.program == plain.program - whole_plain + own + main


def code_lines_of_tree(folder: Path) -> int:
    return sum(code_lines(path) for path in sorted(folder.rglob("*.py")))


def test_the_load_how_to_names_every_benchmark_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["bench"]
    page = (ROOT / "docs" / "how-to" / "load.md").read_text().lower()
    for requirement in extras:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert name is not None
        assert name[0].lower() in page, name[0]


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
        "runs": [
            {"peer": peer, "load": load, "repetition": rep, "figure": figure}
            for peer, load, figures in (
                # trio SSLStream used less CPU in 1 of 3 repetitions, more in 2.
                ("trio-tls", "handshakes", [500.0, 600.0, 700.0, 100.0]),
                ("asyncio-streams-tls", "handshakes", [550.0, 500.0, 450.0, None]),
                # Twice as much in every repetition, though a repetition failed.
                ("trio-tls", "bulk", [3.5, None, 4.0, 4.5]),
                ("asyncio-streams-tls", "bulk", [1.75, 1.0, 2.0, 2.25]),
            )
            for rep, figure in enumerate(figures)
        ],
    }
    text = "\n".join(tls_section(document))
    assert "| trio SSLStream | 600 µs [500 to 700] at 199.5/s | 300 µs [250 to 350]" in text
    assert "4.00 ms [3.50 to 4.50] at 199.5/s | 1.00 ms [0.90 to 1.10]" in text
    assert (
        "- trio SSLStream against asyncio streams: 1.20x (worse in 2 of 3 paired repetitions:"
        " not decided) per handshake, 2.00x (worse in 3 of 3 paired repetitions) per MB" in text
    )
    assert tls_section(None) == ["(no TLS results: python benchmarks/tls.py --commit-results)"]


def test_what_tls_adds_is_paired_per_repetition_and_set_against_libssl_alone() -> None:
    from benchmarks.pages import _tls_added_lines

    peers = [
        {"name": "c-tls", "label": "C, libssl alone", "plain": "c-plain", "tls": True},
        {"name": "trio-tls", "label": "trio SSLStream", "plain": "trio", "tls": True},
        {"name": "c-plain", "label": "C, libssl alone", "plain": "c-plain", "tls": False},
        {"name": "trio", "label": "trio (plain)", "plain": "trio", "tls": False},
    ]
    figures = {
        ("c-tls", "handshakes"): [500.0, 520.0, 480.0],
        ("c-plain", "handshakes"): [100.0, 100.0, 80.0],  # adds 400, 420, 400
        ("trio-tls", "handshakes"): [1500.0, 1300.0, None],
        ("trio", "handshakes"): [700.0, 500.0, 600.0],  # adds 800, 800: 2x libssl's
        ("c-tls", "bulk"): [1.0, 1.0, 1.0],
        ("c-plain", "bulk"): [0.5, 0.5, 0.5],
        ("trio-tls", "bulk"): [4.0, 4.5, 5.0],
        ("trio", "bulk"): [2.5, 2.5, 2.5],
    }
    document = {
        "peers": peers,
        "runs": [
            {"peer": peer, "load": load, "repetition": rep, "figure": figure}
            for (peer, load), values in figures.items()
            for rep, figure in enumerate(values)
        ],
    }
    lines = _tls_added_lines(document)
    assert "- C, libssl alone: 400 µs per handshake, 0.50 ms per MB" in lines
    assert "- trio SSLStream: 800 µs per handshake (2.00x libssl's), 2.00 ms per MB (4.00x" in (
        "\n".join(lines)
    )
    document["peers"] = peers[1:2] + peers[3:]  # no reference: no such lines
    assert _tls_added_lines(document) == []


def test_a_case_passed_by_winning_a_race_is_counted_as_failed() -> None:
    from benchmarks.reporting import conformance_counts

    outcomes = [
        {"server": "twisted-original", "case": "zero-length", "outcome": "passed"},
        {"server": "twisted-original", "case": "echo-until-half-close", "outcome": "xpass"},
        {"server": "twisted-original", "case": "leading-zero", "outcome": "xfail"},
        {"server": "twisted-original", "case": "tls", "outcome": "skipped"},
    ]
    passed, run, failed = conformance_counts(outcomes, SERVERS["twisted-original"])
    assert (passed, run) == (1, 3)
    assert failed == ["echo-until-half-close (a race, won this time)", "leading-zero"]


def test_a_flag_describes_the_median_run_and_counts_the_others() -> None:
    from benchmarks.reporting import value_text

    settings = Settings(2.0, 0.5, 5, 10, [Cell("echo 1 KiB", "echo", 1024, 50)])

    def runs(limited: int) -> list[Run]:
        return [
            Run(
                "trio-echo",
                "echo 1 KiB",
                rep,
                figure=1000.0 + rep,
                messages_per_second=1000.0 + rep,
                client_cpu_utilization=0.95 if rep < limited else 0.5,
                client_limited=rep < limited,
                server_user_us_per_message=20.0,
                server_system_us_per_message=5.0 + rep,
                peak_memory=(rep + 1) << 20,
            )
            for rep in range(5)
        ]

    cell = settings.cells[0]
    for limited, flag in ((0, ""), (2, " (⚠ in 2 of 5)"), (3, " ⚠")):
        entry = summarise(runs(limited), [SERVERS["trio-echo"]], settings)["echo 1 KiB"]
        text = value_text(entry["trio-echo"], cell)  # type: ignore[arg-type]
        assert text == "1,002 [1,000 to 1,004]" + flag, text
    entry = summarise(runs(0), [SERVERS["trio-echo"]], settings)["echo 1 KiB"]["trio-echo"]
    assert isinstance(entry, dict)
    assert (entry["user_us_per_message"], entry["system_us_per_message"]) == (20.0, 7.0)
    assert entry["peak_memory"] == 5 << 20  # the highest of the runs


def test_results_recorded_with_the_parents_resident_peak_still_load() -> None:
    old = {"server": "trio", "cell": "echo 1 KiB", "repetition": 0, "peak_rss": 123}
    assert Run.from_record(old).peak_memory == 123


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
            "runs": 5,
            "failed": 0,
            "notes": [],
        }

    def target(what: str, kind: str, values: list[float]) -> dict[str, object]:
        return {
            "what": what,
            "load": "count 100 B at 5,000/s",
            "kind": kind,
            "goal": "≤ 1.05x" if kind == "ratio" else "≤ 5 µs",
            "bound": 1.05 if kind == "ratio" else 5.0,
            "at_most": True,
            "value": sorted(values)[len(values) // 2] if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
            "values": values,
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
            "repeat": 5,
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
            target("CPU per connection", "ratio", [1.1, 1.0, 1.2, 1.1, 1.15]),
            target("the log line", "difference", [3.0, 4.0, 1.0, 6.0, 2.0]),
            target("p99", "ratio", [1.0, 1.2, 1.0, 1.1, 1.0]),
            target("MB/s", "ratio", []),
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
        "A target is met when its value met the goal in at least 80% of the repetitions"
        " (4 of 5), not met when it missed in at least as many, and not decided otherwise." in text
    )
    assert (
        "| CPU per connection | trio_echo over trio floor | 1.10x [1.00x to 1.20x] | ≤ 1.05x |"
        " **not met** (1 of 5) |" in text
    )
    assert (
        "| the log line | trio_echo, --log-level info minus trio_echo | 3.0 µs [1.0 to 6.0] |"
        " ≤ 5 µs | met (4 of 5) |" in text
    )
    # Its median meets the goal, but 3 of 5 decide nothing.
    assert (
        "| p99 | trio_echo over trio floor | 1.00x [1.00x to 1.20x] | ≤ 1.05x |"
        " not decided (3 of 5) |" in text
    )
    assert "| MB/s | trio_echo over trio floor | n/a | ≤ 1.05x | not measured |" in text
    assert (
        "Not decided:\n\n- p99: met in 3 of 5 repetitions, where a verdict needs 4 either way;"
        " its value, 1.00x [1.00x to 1.20x], lies on both sides of the goal (≤ 1.05x), so the"
        " verdict could flip within its own spread.\n" in text
    )
    assert (
        "| count 100 B at 5,000/s | trio floor |  | 100.0 µs per connection [95.0 to 105.0] |"
        " 4,500 per s [4,490 to 4,500] of 5,000 (saturated in 1 of 5) | 2.50 ms [2.00 to 3.00] |"
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


def test_the_cpu_plot_names_the_runs_own_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    axes = pytest.importorskip("matplotlib.axes")
    labels: list[str] = []
    set_xlabel = axes.Axes.set_xlabel

    def recording(self: object, label: str, *args: object, **kwargs: object) -> object:
        labels.append(label)
        return set_xlabel(self, label, *args, **kwargs)

    monkeypatch.setattr(axes.Axes, "set_xlabel", recording)
    settings = quick_settings()
    summary: dict[str, dict[str, object]] = {cell.name: {} for cell in settings.cells}
    summary["echo 1 KiB"]["trio-echo"] = {
        "figure": 1.0,
        "user_us_per_message": 10.0,
        "system_us_per_message": 2.5,
    }
    plots(summary, [SERVERS["trio-echo"]], settings, tmp_path)
    connections = next(c.connections for c in settings.cells if c.name == "echo 1 KiB")
    assert connections != 50  # a quick run's, not a full one's
    assert f"server CPU µs per message (echo 1 KiB, {connections} connections)" in labels


def test_a_progress_line_names_its_unit_and_the_whole() -> None:
    settings = quick_settings()
    units = {cell.name: figure_unit(cell) for cell in settings.cells}
    assert units["count 100 B"] == "messages/s"
    assert units["count 100 B at 1,000/s"] == "µs server CPU per message"
    assert units["idle connections"] == "bytes per idle connection"
    servers = [SERVERS["trio-echo"], SERVERS["twisted-original"]]
    per_server = [sum(c.mode in s.modes for c in settings.cells) for s in servers]
    assert runs_to_make(servers, settings) == sum(per_server) * settings.repeat
