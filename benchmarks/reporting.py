"""Reporting: medians and ratios from the runs, the Markdown report, the plots."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tabulate import tabulate

from benchmarks import provenance
from benchmarks.lines import count as count_lines
from benchmarks.measuring import (
    FAIRNESS_SAMPLES,
    FAIRNESS_WAIT_SHARE,
    SATURATED,
    SERVER_CPU,
    Cell,
    Run,
    Scaling,
    Settings,
    median,
)
from benchmarks.running import CLIENT_CPU, CONTROL_GROUP
from benchmarks.servers import Server, enforces
from benchmarks.summary import Spread, grouped
from benchmarks.verdicts import Verdict, by_repetition, compare

BASELINE = "twisted-original"
MiB = 1024 * 1024


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table (GitHub's form), as lines: every table of the pages.

    Cells are written as given: not read as numbers (``disable_numparse``: a
    figure is already text, with its unit and its thousands separators), and
    not padded to their column's width (``stralign=None``), so that a row is
    one line a reader or a test can find as it reads.
    """
    text = tabulate(
        list(rows),
        headers=list(header),
        tablefmt="github",
        disable_numparse=True,
        stralign=None,
    )
    return text.splitlines()


LATENCY_KEYS = ("p1", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "p999", "max")
"""The latency percentiles the load generator reports, in order."""


def _accepted(note: str) -> int:
    """The connections an idle run's note says the server accepted (0 if none)."""
    match = re.match(r"([\d,]+) of [\d,]+ connections accepted", note)
    return int(match[1].replace(",", "")) if match else 0


def summarise(
    runs: list[Run], servers: list[Server], settings: Settings
) -> dict[str, dict[str, object]]:
    cells: dict[str, dict[str, object]] = {}
    by_cell = grouped(runs, lambda run: run.cell, lambda run: run.server)
    for cell in settings.cells:
        row: dict[str, object] = {}
        measured = by_cell.get(cell.name, {})
        baseline = median(
            run.figure for run in measured.get(BASELINE, []) if run.figure
        )  # a zero baseline (no memory at all) gives no ratio
        for server in servers:
            mine = measured.get(server.name, [])
            good = [r for r in mine if r.figure is not None]
            if not good:
                note = mine[0].note if mine else ""
                if cell.mode not in server.modes:
                    note = f"no {cell.mode} mode"
                row[server.name] = {"figure": None, "note": note}
                continue
            spread = Spread.of(r.figure for r in good)
            cpu = Spread.of(r.server_cpu_us_per_message for r in good)
            p99 = Spread.of(r.latency_us.get("p99") for r in good)
            figure = spread.median
            assert figure is not None
            row[server.name] = {
                "figure": figure,
                "min": spread.min,
                "max": spread.max,
                "repetitions": by_repetition(
                    (r.repetition, r.figure) for r in good if r.figure is not None
                ),
                "ratio": figure / baseline if baseline else None,
                "latency_us": {
                    key: median(r.latency_us[key] for r in good if key in r.latency_us)
                    for key in LATENCY_KEYS
                    if any(key in r.latency_us for r in good)
                },
                "p99_min": p99.min,
                "p99_max": p99.max,
                "server_cpu_us_per_message": cpu.median,
                "cpu_min": cpu.min,
                "cpu_max": cpu.max,
                "user_us_per_message": median(r.server_user_us_per_message for r in good),
                "system_us_per_message": median(r.server_system_us_per_message for r in good),
                "server_cpu_utilization": median(r.server_cpu_utilization for r in good),
                "client_cpu_utilization": median(r.client_cpu_utilization for r in good),
                # Flags describe the median run, as the figure does; and how
                # many runs had the generator short of CPU.
                "client_limited": 2 * sum(r.client_limited for r in good) > len(good),
                "client_limited_runs": sum(r.client_limited for r in good),
                "runs": len(good),
                "saturated": cell.saturable
                and median(r.messages_per_second for r in good) < SATURATED * cell.rate,
                "accepted": median(accepted for r in good if (accepted := _accepted(r.note))),
                "offered_rate": cell.rate,
                "connections": settings.idle_connections,
                "achieved_rate": median(r.messages_per_second for r in good),
                "megabytes_per_second": median(r.megabytes_per_second for r in good),
                "peak_memory": max(r.peak_memory for r in good),
                "errors": sum(r.errors for r in mine),
                "note": next((r.note for r in good if r.note), ""),
            }
        cells[cell.name] = row
    return cells


UNITS = {
    "messages_per_second": "messages/s",
    "megabytes_per_second": "MB/s",
}


def _number_text(value: float, cell: Cell, *, unit: bool = True) -> str:
    if cell.workload == "idle":
        return f"{value / 1024:,.1f}" + " KiB" * unit
    if cell.workload == "fairness":
        return f"{value:,.2f}" + " ms" * unit
    if cell.group == "cpu":
        return f"{value:,.1f}" + " µs" * unit
    return f"{value:,.0f}"


def _figure_text(entry: dict[str, object], cell: Cell) -> str:
    if entry.get("figure") is None:
        return "n/a"
    text = value_text(entry, cell, ratio=True)
    if entry.get("saturated"):
        text += f" (saturated: {entry['achieved_rate']:,.0f}/s of {entry['offered_rate']:,.0f}/s)"
    if cell.rate and entry.get("errors"):
        text += f" ({entry['errors']:,} errors)"
    if cell.workload == "fairness":
        text += f" (stream: {entry['megabytes_per_second']:,.0f} MB/s)"
    return text


def noise(summary: dict[str, dict[str, object]], servers: list[Server]) -> str:
    """How much repetitions of one server on one load differed, in words.

    The spread of a cell is (max - min) / median; the sentence gives the
    median spread over every server and load measured more than once, and
    the largest.
    """
    spreads = []
    for cell, row in summary.items():
        for server in servers:
            entry = row.get(server.name)
            if not isinstance(entry, dict):
                continue
            figure, low, high = entry.get("figure"), entry.get("min"), entry.get("max")
            if isinstance(figure, float) and figure and isinstance(low, float):
                assert isinstance(high, float)
                spreads.append(((high - low) / figure, server.label, cell))
    if not spreads or max(spread for spread, _, _ in spreads) == 0:
        return "Each figure is one measurement: this run says nothing of its noise."
    widest = max(spreads)
    return (
        "Between repetitions, one server's figure on one load varied by a median of "
        f"{median(spread for spread, _, _ in spreads):.0%} of its median (at most "
        f"{widest[0]:.0%}: {widest[1]}, {widest[2]}). Square brackets give each figure's "
        "lowest and highest. Two servers are compared repetition by repetition: one leads "
        "the other when it did better in at least 80% of the repetitions that measured both "
        "(4 of 5, 6 of 7); short of that, the pair is not decided, however far apart the "
        "medians."
    )


def fairness_title(settings: Settings) -> str:
    """What the fairness load measures, as its run made it."""
    cell = next((cell for cell in settings.cells if cell.workload == "fairness"), None)
    if cell is None or not cell.rate:  # runs that did not record the probe's rate
        return "p99 latency of a 100 B client beside a 10 MB stream"
    return (
        f"p99 latency of {cell.connections} clients of 100 B messages ({cell.rate:,.0f}"
        f" messages/s in all, {FAIRNESS_SAMPLES:,} timed, run ahead of the stream's generator"
        " on the client CPU) beside a 10 MB stream; ⚠: the probe waited for its CPU, per"
        f" message, {FAIRNESS_WAIT_SHARE:.0%} of its median latency or more"
    )


def markdown(
    summary: dict[str, dict[str, object]],
    servers: list[Server],
    settings: Settings,
    conformance: list[dict[str, str]] | None,
    environment: dict[str, object],
    *,
    note: str = "",
) -> str:
    facts = machine_facts(environment)
    lines = [
        "# Benchmark report",
        "",
        f"Machine: {facts['machine']}; {facts['cpus']} CPUs; "
        f"Python {facts['python']}; {facts['date']}.",
        *([note] if note else []),
        f"Each server pinned to CPU {SERVER_CPU}, the C load generator to CPU {CLIENT_CPU}. "
        f"Median of {settings.repeat} interleaved repetition(s) of {settings.duration:g} s "
        f"(after {settings.warmup:g} s of warm-up); in parentheses, the ratio to the Twisted "
        "original in the same run. ⚠: the load generator used 90% or more of its CPU in the "
        "median repetition, so the figure is a lower bound on what the server can do; "
        f"(⚠ in k of n): in k repetitions only. Memory is {settings.memory}.",
        "",
        noise(summary, servers),
        "",
    ]
    groups = [
        ("headline", "Throughput (messages/s, or MB/s for 10 MB messages)"),
        ("size", "Echo throughput by message size (messages/s)"),
        ("concurrency", "Echo throughput by connections, 1 KiB messages (messages/s)"),
        (
            "cpu",
            "Server CPU per connection at a fixed rate (µs of user + system time of the "
            "server and everything it started, exited threads and processes included). "
            "A server that did not reach the offered rate is marked saturated, with the "
            "rate it reached: its CPU was taken at its limit",
        ),
        (
            "memory",
            f"Server memory per idle connection ({settings.idle_connections:,} open; by"
            f" {settings.memory})",
        ),
        ("fairness", fairness_title(settings)),
    ]
    for group, title in groups:
        cells = [cell for cell in settings.cells if cell.group == group]
        if not cells:
            continue
        rows = []
        for cell in cells:
            row = summary[cell.name]
            unit = UNITS.get(cell.metric, "") if group in ("headline",) else ""
            label = (
                f"{cell.name} ({cell.connections} conn.)"
                if cell.workload not in ("idle", "fairness")
                else cell.name
            )
            if unit == "MB/s":
                label += ", MB/s"
            texts = [_figure_text(row[s.name], cell) for s in servers]  # type: ignore[arg-type]
            rows.append([label, *texts])
        lines += [f"## {title}", "", *table(["load", *(s.label for s in servers)], rows), ""]
    headline = [cell for cell in settings.cells if cell.group == "headline"]
    if headline:
        lines += [
            "## Latency and cost, headline loads",
            "",
            "p50 / p99 / p99.9 latency in µs; server CPU µs per message; peak memory in MiB"
            + (
                " (the server's whole process tree)"
                if settings.memory == CONTROL_GROUP
                else " (the server process's own resident peak)"
            )
            + "; load generator CPU.",
            "",
        ]
        rows = []
        for cell in headline:
            for server in servers:
                entry = summary[cell.name][server.name]
                assert isinstance(entry, dict)
                if entry.get("figure") is None:
                    continue
                latency = entry["latency_us"]
                rows.append(
                    [
                        cell.name,
                        server.label,
                        f"{latency['p50']:,.0f}",
                        f"{latency['p99']:,.0f}",
                        f"{latency['p999']:,.0f}",
                        f"{entry['server_cpu_us_per_message']:,.1f}",
                        f"{entry['peak_memory'] / MiB:,.0f}",
                        f"{entry['client_cpu_utilization']:.0%}",
                    ]
                )
        header = [
            "load",
            "server",
            "p50",
            "p99",
            "p99.9",
            "CPU µs/msg",
            "peak memory, MiB",
            "client CPU",
        ]
        lines += [*table(header, rows), ""]
    leaders = [
        f"- {cell.name}: {text}"
        for cell in settings.cells
        if (text := who_leads(summary, servers, cell))
    ]
    if leaders:
        lines += [
            "## Who leads",
            "",
            "The best median, and how it fares against the others repetition by repetition:"
            " a server leads another when it did better in at least 80% of the repetitions"
            " that measured both. At a fixed rate, only servers that kept up with it count.",
            "",
            *leaders,
            "",
        ]
    lines += per_model_table(summary, servers, settings, conformance)
    if conformance:
        lines += conformance_table(conformance, servers)
    return "\n".join(lines) + "\n"


def ranked(
    summary: dict[str, dict[str, object]], servers: list[Server], cell: Cell
) -> list[tuple[Server, dict[str, object]]]:
    """The servers measured on ``cell``, the best first.

    At a fixed rate, a server that did not keep up is left out: its figure
    was taken at its own limit, not at that rate.
    """
    entries = []
    for server in servers:
        entry = summary.get(cell.name, {}).get(server.name)
        if not isinstance(entry, dict) or not isinstance(entry.get("figure"), float):
            continue
        if cell.saturable and entry.get("saturated"):
            continue
        entries.append((server, entry))
    sign = 1.0 if cell.lower_is_better else -1.0
    entries.sort(key=lambda pair: sign * _number(pair[1], "figure"))
    return entries


def _number(entry: dict[str, object], key: str) -> float:
    value = entry.get(key, entry["figure"])
    assert isinstance(value, float)
    return value


def value_text(entry: dict[str, object], cell: Cell, *, ratio: bool = False) -> str:
    """A figure with its unit and its range (``12.3 µs [11.0 to 14.1]``), its
    ratio to the original if asked, and ⚠ if the load generator was the limit."""
    figure = entry["figure"]
    assert isinstance(figure, float)
    text = _number_text(figure, cell)
    low, high = entry.get("min"), entry.get("max")
    if isinstance(low, float) and isinstance(high, float) and low != high:
        bounds = _number_text(low, cell, unit=False), _number_text(high, cell, unit=False)
        text += f" [{bounds[0]} to {bounds[1]}]"
    if ratio and isinstance(entry.get("ratio"), float):
        text += f" ({entry['ratio']:.2f}x)"
    if entry.get("client_limited"):
        text += " ⚠"
    elif limited := entry.get("client_limited_runs"):
        text += f" (⚠ in {limited} of {entry['runs']})"
    accepted, opened = entry.get("accepted"), entry.get("connections")
    if cell.workload == "idle" and accepted and isinstance(opened, int) and accepted < opened:
        text += f" ({accepted:,.0f} of {opened:,} accepted)"
    return text


def and_list(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def verdict(
    one: tuple[Server, dict[str, object]], other: tuple[Server, dict[str, object]], cell: Cell
) -> Verdict:
    """``one`` against ``other`` on ``cell`` (each a server and its summary
    entry), from the repetitions in which both have a figure."""
    (server, entry), (rival, theirs) = one, other
    mine, their = entry.get("repetitions"), theirs.get("repetitions")
    assert isinstance(mine, dict)
    assert isinstance(their, dict)
    return compare(server.label, rival.label, mine, their, lower_is_better=cell.lower_is_better)


def verdicts(
    ranking: list[tuple[Server, dict[str, object]]], server: Server, cell: Cell
) -> list[tuple[Server, Verdict]]:
    """``server`` against each other server of ``ranking``, in its order."""
    mine = next(pair for pair in ranking if pair[0] is server)
    return [(pair[0], verdict(mine, pair, cell)) for pair in ranking if pair[0] is not server]


def detail(verdict: Verdict) -> str:
    """``better in 5 of 5 paired repetitions, median ratio 1.63x``."""
    return ", ".join(filter(None, [verdict.tally(), verdict.ratio_text()]))


def exceptions_text(against: list[tuple[Server, Verdict]], *, first: bool) -> str:
    """What the paired repetitions leave open of a ranking's ``first`` (or
    last) server's place: the servers it is not decided against, and those
    they put on its other side."""
    undecided = [f"{s.label} ({detail(v)})" for s, v in against if v.leader is None]
    contrary = [
        f"{s.label} ({detail(v)})" for s, v in against if v.leader == (v.other if first else v.one)
    ]
    text = f", not decided against {and_list(undecided)}" if undecided else ""
    if contrary:
        text += f", {'behind' if first else 'ahead of'} {and_list(contrary)}"
    return text


def leader_text(ranking: list[tuple[Server, dict[str, object]]], cell: Cell) -> str:
    """The leader of ``ranking`` with its figure, whom it is not decided
    against, and how far ahead it is of the nearest it leads."""
    best, entry = ranking[0]
    against = verdicts(ranking, best, cell)
    text = f"{best.label}, {value_text(entry, cell)}" + exceptions_text(against, first=True)
    ahead = [(server, v) for server, v in against if v.leader == v.one]
    if len(ahead) == 1:
        text += f", ahead of {ahead[0][0].label} ({detail(ahead[0][1])})"
    elif ahead:
        others = f"the {len(ahead)}" if len(ahead) == len(against) else f"{len(ahead)}"
        nearest, said = ahead[0]
        text += f", ahead of {others} others (the nearest, {nearest.label}: {detail(said)})"
    return text


def who_leads(
    summary: dict[str, dict[str, object]], servers: list[Server], cell: Cell
) -> str | None:
    """Who leads on ``cell``, and whom the repetitions leave it not decided
    against; among the Python servers too, when the leader is the C one."""
    ranking = ranked(summary, servers, cell)
    if not ranking:
        return None
    text = leader_text(ranking, cell)
    python = [(server, entry) for server, entry in ranking if not server.compiled]
    if python and python[0][0] is not ranking[0][0]:
        text += f"; among the Python servers, {leader_text(python, cell)}"
    if cell.workload == "fairness":
        streams = [entry["megabytes_per_second"] for _, entry in ranking]
        text += (
            f" (the 10 MB stream beside the leader: {ranking[0][1]['megabytes_per_second']:,.0f}"
            f" MB/s; the median server's: {median(streams):,.0f} MB/s)"  # type: ignore[arg-type]
        )
    return text


def _figure(
    summary: dict[str, dict[str, object]], cell: str, server: str, key: str
) -> float | None:
    entry = summary.get(cell, {}).get(server)
    value = entry.get(key) if isinstance(entry, dict) else None
    return value if isinstance(value, float) else None


def conformance_counts(
    conformance: list[dict[str, str]] | None, server: Server
) -> tuple[int, int, list[str]]:
    """Cases ``server`` passed, cases run, and the names of those it failed.

    A case it fails by a race (an expected failure that passed this time,
    ``xpass``) is among the failed, named as such: a server that conforms
    only when it wins a race does not conform.
    """
    mine = [o for o in conformance or [] if o["server"] == server.name]
    run = [o for o in mine if o["outcome"] != "skipped"]
    failed = [
        o["case"] + (" (a race, won this time)" if o["outcome"] == "xpass" else "")
        for o in run
        if o["outcome"] != "passed"
    ]
    return len(run) - len(failed), len(run), failed


PROTOCOL = "trio_echo/protocol/"  # the protocol's state machine, which every peer but two drives


@dataclass(frozen=True)
class Lines:
    """A server's lines of code (see `benchmarks.lines`), counted alike for
    every server.

    Attributes:
        handler: Its code that serves one connection (``Server.handler``).
        program: Its whole program: its own files and every file of the
            repository they import, however deep, each counted whole, but
            for a file the program names only parts of (``"path::name"``),
            of which those parts count.
        protocol: How many of ``program``'s lines are the shared protocol
            (``trio_echo.protocol``).
    """

    handler: int
    program: int
    protocol: int


def lines_of_code(server: Server) -> Lines:
    """Lines of code of ``server``'s handler and program (see `Lines`)."""
    parts: dict[str, list[str]] = {}
    for place in server.program:
        path, _, name = place.partition("::")
        parts.setdefault(path, []).append(place if name else path)
    files = [path.as_posix() for path in provenance.imported_files(server.program)]
    program: list[str] = []
    for path in files:
        named = parts.get(path, [path])
        program += [path] if path in named else named
    outside = [place for place in server.handler if place.partition("::")[0] not in files]
    return Lines(
        handler=count_lines(server.handler),
        program=count_lines((*program, *outside)),
        protocol=count_lines(tuple(path for path in files if path.startswith(PROTOCOL))),
    )


def per_model_table(
    summary: dict[str, dict[str, object]],
    servers: list[Server],
    settings: Settings,
    conformance: list[dict[str, str]] | None,
    *,
    counted: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """One row per model: what it passes, what it costs, and how long it is.

    Args:
        summary: The figures, by load and server.
        servers: The rows.
        settings: The loads.
        conformance: The conformance outcomes, if run.
        counted: Each server's counted instructions per connection on
            count 100 B (benchmarks/work.py), as text: a column of its own.
        labels: A server's row label where it is not its ``label``.
    """
    labels = labels or {}
    by_name = {cell.name: cell for cell in settings.cells}
    columns = [
        name
        for name in (
            "count 100 B",
            "echo 1 KiB",
            *(cell.name for cell in settings.cells if cell.group == "cpu"),
            "idle connections",
            "fairness",
        )
        if name in by_name
    ]
    titles = {
        "count 100 B": "count 100 B, msg/s",
        "echo 1 KiB": "echo 1 KiB, msg/s",
        "idle connections": "memory per idle connection",
        "fairness": "p99 beside a 10 MB stream",
    }
    lines = [
        "## Per model",
        "",
        " ".join(
            [
                "Enforces: what the server guards itself with beyond the protocol's bytes"
                " (every server but the original bounds what each connection queues): a"
                " realistic server pays for these on every connection, a stripped one does"
                " not. The linger deadline is how long it waits for the peer once it has"
                " half-closed; the memory budget is one over all connections; a graceful"
                " drain stops accepting and lets connections finish within a grace.",
                "Conformance: cases passed of those run.",
                "CPU: µs of server CPU per connection at a fixed rate of count 100 B"
                " connections; and per message on echo 1 KiB, in user space and in the"
                " kernel (at full speed a server's CPU per message is the inverse of its"
                " rate: the split says where it goes).",
                "Lines of code (no blank lines, comments or docstrings), counted alike for"
                " every server: the handler, the code that serves one connection; the whole"
                " program, its own files and every file of this repository they import, the"
                " shared protocol (`trio_echo.protocol`) included where a server drives it;"
                " and, in brackets, how many of the program's lines are that protocol. The"
                " original and the C server parse the protocol themselves, within their own"
                " lines. trio_echo's handler is its three pump modules; its program is"
                " everything its server imports, the memory budget, deadlines, logs,"
                " metrics, TLS and Unix sockets included.",
            ]
        ),
        "",
    ]
    header = [
        "model",
        "enforces",
        "conformance",
        *(titles.get(name, f"CPU per conn., {name.split(' at ')[-1]}") for name in columns),
        "CPU per message, echo 1 KiB: user + system",
        *(["instructions per connection, count 100 B (counted)"] if counted else []),
        "lines: handler / program (protocol)",
    ]
    rows = []
    echo = by_name.get("echo 1 KiB")
    for server in servers:
        passed, run, _ = conformance_counts(conformance, server)
        cells = [", ".join(enforces(server)) or "nothing", f"{passed} of {run}" if run else "n/a"]
        for name in columns:
            entry = summary[name].get(server.name)
            if not isinstance(entry, dict) or entry.get("figure") is None:
                cells.append("n/a")
                continue
            text = value_text(entry, by_name[name])
            if entry.get("saturated"):
                text += f" (saturated: {entry['achieved_rate']:,.0f}/s)"
            cells.append(text)
        entry = summary["echo 1 KiB"].get(server.name) if echo else None
        if echo and isinstance(entry, dict) and entry.get("user_us_per_message"):
            user, system = entry["user_us_per_message"], entry["system_us_per_message"]
            cells.append(f"{user:,.1f} + {system:,.1f} µs")
        elif echo and isinstance(entry, dict) and entry.get("figure") is not None:
            low, high = entry["cpu_min"], entry["cpu_max"]  # a run that did not split it
            total = entry["server_cpu_us_per_message"]
            cells.append(f"{total:,.1f} µs [{low:,.1f} to {high:,.1f}], not split")
        else:
            cells.append("n/a")
        if counted:
            cells.append(counted.get(server.name, "n/a"))
        code = lines_of_code(server)
        cells.append(f"{code.handler:,} / {code.program:,} ({code.protocol:,})")
        rows.append([labels.get(server.name, server.label), *cells])
    return [*lines, *table(header, rows), ""]


def conformance_table(outcomes: list[dict[str, str]], servers: list[Server]) -> list[str]:
    cases: list[str] = []
    for outcome in outcomes:
        if outcome["case"] not in cases:
            cases.append(outcome["case"])
    by_key = {(o["server"], o["case"]): o for o in outcomes}
    symbols = {"passed": "✓", "xpass": "✓?", "xfail": "✗", "failed": "✗!", "skipped": "n/a"}
    lines = [
        "## Conformance",
        "",
        "✓ conforms; ✗ does not (an expected failure, reason below); ✓? passed this time a"
        " case it fails by a race (reason below); n/a: no such mode; ✗! an unexpected failure.",
        "",
    ]
    rows = []
    reasons: list[str] = []
    for case in cases:
        cells = []
        for server in servers:
            outcome = by_key.get((server.name, case))
            cells.append(symbols.get(outcome["outcome"], "?") if outcome else "")
            if outcome and outcome["outcome"] in ("xfail", "xpass", "failed") and outcome["reason"]:
                reasons.append(f"- {server.label}, {case}: {outcome['reason']}")
        rows.append([case, *cells])
    lines += [*table(["case", *(s.label for s in servers)], rows), ""]
    lines += [*sorted(set(reasons)), ""]
    return lines


def environment() -> dict[str, object]:
    """What figures measured now are measured with: `benchmarks.provenance.environment`."""
    return dict(provenance.environment())


def machine_facts(environment: Mapping[str, object]) -> dict[str, object]:
    """The facts the pages print of a results file's environment: ``date``,
    ``cpus``, ``machine`` (system, release and architecture) and ``python``
    (its version), from `environment`'s record or from the older one that
    kept them under those names."""
    if "recorded_at" not in environment:
        return {key: environment[key] for key in ("date", "cpus", "machine", "python")}
    when = datetime.datetime.fromisoformat(str(environment["recorded_at"]))
    return {
        "date": when.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": environment["cpu_count"],
        "machine": f"{environment['kernel']} {environment['machine']}",
        "python": str(environment["python"]).split()[0],
    }


def scaling_table(results: list[Scaling]) -> list[str]:
    if not results:
        return []
    base = results[0].messages_per_second
    lines = [
        "## trio_echo --workers: connection rate by worker processes",
        "",
        "count, 100 B messages, 50 connections, a new connection per message. Not pinned: "
        f"the load generator shares this machine's {os.cpu_count()} CPUs with the workers, so "
        "past one worker the workers and the client compete for the same cores, and the "
        "figures say how the rate grows here, not what more cores would give.",
        "",
    ]
    rows = [
        [
            entry.workers,
            f"{entry.messages_per_second:,.0f} ({entry.min:,.0f}-{entry.max:,.0f})",
            f"{entry.messages_per_second / base if base else 0:.2f}x",
            f"{entry.server_cpus_busy:.2f}",
            f"{entry.client_cpu_utilization:.0%}",
        ]
        for entry in results
    ]
    header = ["workers", "messages/s", "vs 1 worker", "server CPUs busy", "client CPU"]
    return [*lines, *table(header, rows), ""]


def servers_table(servers: list[Server]) -> list[str]:
    """The servers compared, each with its concurrency model."""
    rows = [[server.label, server.model] for server in servers]
    return ["## The servers", "", *table(["server", "model"], rows), ""]
