"""The pages a run's results write: the report, the plots, and the parts of
README.md and docs/models.md between markers.

A generated part sits between two markers, and nothing else in the page is
touched::

    <!-- generated: NAME (benchmarks/pages.py writes this part) -->
    ...
    <!-- end of generated: NAME -->

``python benchmarks/harness.py --report --commit-results`` writes them
again from ``benchmarks/results/``, and ``tests/test_pages.py`` fails when a
committed page differs from what the committed results write. Every number
in a generated part comes from the results; the prose around it names no
figure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measuring import Cell, Run, Scaling, Settings, median
from benchmarks.reporting import (
    and_list,
    conformance_counts,
    conformance_table,
    exceptions_text,
    markdown,
    noise,
    per_model_table,
    plots,
    ranked,
    scaling_table,
    servers_table,
    summarise,
    value_text,
    verdict,
    verdicts,
    who_leads,
)
from benchmarks.servers import ROOT, SERVERS, Server
from benchmarks.verdicts import against_goal, by_repetition, compare, needed

Summary = dict[str, dict[str, object]]


@dataclass
class Results:
    """One harness run, as its folder keeps it."""

    environment: dict[str, object]
    settings: Settings
    runs: list[Run]
    scaling: list[Scaling]
    conformance: list[dict[str, str]] | None
    servers: list[Server]
    summary: Summary
    framer: dict[str, object] | None = None
    tls: dict[str, Any] | None = None
    floor: dict[str, Any] | None = None

    @classmethod
    def load(cls, folder: Path) -> Results:
        """The results in ``folder`` (its benchmark.json and conformance.json)."""
        data = json.loads((folder / "benchmark.json").read_text())
        saved = data["settings"]
        scaling = [Scaling(**entry) for entry in data["scaling"]]
        settings = Settings(
            duration=saved["duration"],
            warmup=saved["warmup"],
            repeat=saved["repeat"],
            idle_connections=saved["idle_connections"],
            cells=[Cell(**cell) for cell in saved["cells"]],
            scaling=bool(scaling),
        )
        runs = [Run(**run) for run in data["runs"]]
        measured = {run.server for run in runs}
        servers = [server for name, server in SERVERS.items() if name in measured]
        conformance_path = folder / "conformance.json"
        conformance = (
            json.loads(conformance_path.read_text()) if conformance_path.exists() else None
        )
        framer_path = folder / "framer.json"
        framer = json.loads(framer_path.read_text()) if framer_path.exists() else None
        tls_path = folder / "tls.json"
        tls = json.loads(tls_path.read_text()) if tls_path.exists() else None
        floor_path = folder / "floor.json"
        floor = json.loads(floor_path.read_text()) if floor_path.exists() else None
        return cls(
            framer=framer,
            tls=tls,
            floor=floor,
            environment=data["environment"],
            settings=settings,
            runs=runs,
            scaling=scaling,
            conformance=conformance,
            servers=servers,
            summary=summarise(runs, servers, settings),
        )

    def cell(self, name: str) -> Cell | None:
        return next((cell for cell in self.settings.cells if cell.name == name), None)

    def entry(self, cell: str, server: str) -> dict[str, object] | None:
        entry = self.summary.get(cell, {}).get(server)
        return entry if isinstance(entry, dict) and entry.get("figure") is not None else None


# -- the report -------------------------------------------------------------------


def report(results: Results, skipped: list[str] | None = None) -> str:
    """The whole report, benchmark.md.

    Args:
        results: The run.
        skipped: A line for each server the run could not measure, and why;
            by default, every known server it has no runs of.
    """
    if skipped is None:
        names = {server.name for server in results.servers}
        skipped = [
            f"- {server.label}: not measured in this run"
            for name, server in SERVERS.items()
            if name not in names and not name.endswith("-baseline")
        ]
    text = markdown(
        results.summary,
        results.servers,
        results.settings,
        results.conformance,
        results.environment,
    )
    not_measured = ["## Not measured here", "", *skipped, ""] if skipped else []
    floor = ["## trio_echo against trio's own floor", "", *floor_section(results.floor), ""]
    return text + "\n".join(
        [
            *servers_table(results.servers),
            *not_measured,
            *scaling_table(results.scaling),
            *floor,
        ]
    )


def write_report(results: Results, folder: Path, skipped: list[str] | None = None) -> list[Path]:
    """Write benchmark.md and the plots into ``folder``; return what was written."""
    path = folder / "benchmark.md"
    path.write_text(report(results, skipped))
    return [path, *plots(results.summary, results.servers, results.settings, folder)]


# -- the generated parts of the pages ----------------------------------------


def run_line(results: Results) -> str:
    """Where the figures come from, in one sentence."""
    env, settings = results.environment, results.settings
    return (
        f"From the run committed in `benchmarks/results/` ({env['date']}; {env['cpus']} CPUs,"
        f" {env['machine']}, Python {env['python']}; each server on one core, the load"
        f" generator on another): the median of {settings.repeat} interleaved repetitions of"
        f" {settings.duration:g} s, in square brackets the lowest and the highest; ⚠: the"
        " load generator used 90% or more of its core, so the figure is a lower bound."
    )


def _cell_text(results: Results, cell: Cell, server: Server) -> str:
    entry = results.entry(cell.name, server.name)
    if entry is None:
        return "n/a"
    text = value_text(entry, cell)
    if entry.get("saturated"):
        text += f" (saturated: {entry['achieved_rate']:,.0f}/s)"
    return text


def figures_table(results: Results, names: list[str], titles: dict[str, str]) -> list[str]:
    """A table with a row per server and a column per load in ``names``."""
    cells = [cell for name in names if (cell := results.cell(name))]
    lines = [
        "| server | " + " | ".join(titles.get(cell.name, cell.name) for cell in cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
    for server in results.servers:
        texts = [_cell_text(results, cell, server) for cell in cells]
        lines.append(f"| {server.label} | " + " | ".join(texts) + " |")
    return lines


def ratio_text(results: Results, cell_name: str, one: str, other: str, what: str) -> str:
    """``one``'s figure on a load as a multiple of ``other``'s, the median of
    the ratios taken in each repetition, and the verdict's count:
    ``1.20x what (better in 5 of 5 paired repetitions)``, or ``(better in 3 of
    5 paired repetitions: not decided)``."""
    cell = results.cell(cell_name)
    a, b = results.entry(cell_name, one), results.entry(cell_name, other)
    if cell is None or a is None or b is None:
        return f"no figure for {what}"
    said = verdict((SERVERS[one], a), (SERVERS[other], b), cell)
    if said.ratio is None:
        return f"no ratio for {what}"
    return f"{said.ratio:.2f}x {what} ({said.outcome()})"


def _comparison(results: Results, one: str, other: str) -> str:
    rate = [cell.name for cell in results.settings.cells if cell.group == "cpu"]
    parts = [
        ratio_text(results, "count 100 B", one, other, "the connection rate"),
        ratio_text(results, "echo 1 KiB", one, other, "the echo rate (1 KiB)"),
        *(
            ratio_text(
                results, name, one, other, f"the CPU per connection at {name.split(' at ')[-1]}"
            )
            for name in rate[-1:]
        ),
    ]
    return and_list(parts)


HEADLINE = ["count 100 B", "echo 1 KiB", "framed 100 B x16", "count 10 MB"]
COSTS = [
    "count 100 B at 1,000/s",
    "count 100 B at 5,000/s",
    "idle connections",
    "fairness",
]
TITLES = {
    "count 100 B": "count 100 B (50 conn.), msg/s",
    "echo 1 KiB": "echo 1 KiB (50 conn.), msg/s",
    "framed 100 B x16": "framed 100 B x16, msg/s",
    "count 10 MB": "count 10 MB (4 conn.), MB/s",
    "count 100 B at 1,000/s": "CPU per connection at 1,000/s",
    "count 100 B at 5,000/s": "CPU per connection at 5,000/s",
    "idle connections": "memory per idle connection",
    "fairness": "p99 of a 100 B client beside a 10 MB stream",
}


def readme_sections(results: Results) -> dict[str, list[str]]:
    """The README's generated parts."""
    leads = [
        f"- {cell.name}: {text}"
        for name in HEADLINE + COSTS
        if (cell := results.cell(name))
        and (text := who_leads(results.summary, results.servers, cell))
    ]
    trio = [
        "What trio_echo's design buys over idiomatic trio: against trio's tutorial form (a"
        " task per connection that reads, then sends), "
        + _comparison(results, "trio-echo", "trio-tutorial")
        + "; against its conforming form (with a writer task), "
        + _comparison(results, "trio-echo", "trio")
        + ". A ratio of CPU below 1 is less CPU."
    ]
    return {
        "servers": servers_table(list(SERVERS.values()))[2:-1],
        "conformance": conformance_table(results.conformance or [], list(SERVERS.values()))[2:-1]
        if results.conformance
        else ["(no conformance run in these results)"],
        "headline": [
            run_line(results),
            "",
            noise(results.summary, results.servers),
            "",
            "Throughput:",
            "",
            *figures_table(results, HEADLINE, TITLES),
            "",
            "Costs: server CPU per connection at a fixed rate of count 100 B connections"
            " (the rate it reached, where it fell short); memory per idle connection"
            f" ({results.settings.idle_connections:,} open); a small client's p99 latency"
            " beside a 10 MB stream:",
            "",
            *figures_table(results, COSTS, TITLES),
            "",
            "Who leads (the best median, and how it fares against the others repetition by"
            " repetition: a server leads another when it did better in at least 80% of the"
            " repetitions that measured both; at a fixed rate, only servers that kept up"
            " count):",
            "",
            *leads,
            "",
            *trio,
        ],
        "framer": framer_table(results),
    }


def framer_table(results: Results) -> list[str]:
    """The framer alone (benchmarks/framer.py --commit-results), as a table."""
    if not results.framer:
        return ["(no framer results: python benchmarks/framer.py --commit-results)"]
    env = results.framer["environment"]
    rows = results.framer["results"]
    assert isinstance(env, dict)
    assert isinstance(rows, list)
    lines = [
        f"The framer alone (`python benchmarks/framer.py`; {env['date']}, Python"
        f" {env['python']}; the median of {rows[0]['repeat']} runs, with the lowest and the"
        " highest):",
        "",
        "| case | median | lowest to highest |",
        "|---|---|---|",
    ]
    for row in rows:
        digits = 0 if row["median"] >= 100 else 2
        lines.append(
            f"| {row['case']} | {row['median']:,.{digits}f} {row['unit']} |"
            f" {row['min']:,.{digits}f} to {row['max']:,.{digits}f} |"
        )
    return lines


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def criterion(
    results: Results, name: str, what: str, words: tuple[str, str] = ("least", "most")
) -> str:
    """A "which should I choose" line: who does best and worst on load
    ``name`` (``words`` for best and worst), and where trio_echo stands."""
    cell = results.cell(name)
    if cell is None:
        return ""
    ranking = ranked(results.summary, results.servers, cell)
    if not ranking:
        return ""
    (best_server, best_entry), (worst_server, worst_entry) = ranking[0], ranking[-1]
    best = exceptions_text(verdicts(ranking, best_server, cell), first=True)
    worst = exceptions_text(verdicts(ranking, worst_server, cell), first=False)
    text = (
        f"- **{what}** ({name}): {words[0]}, {best_server.label}"
        f" ({value_text(best_entry, cell)}){best}; {words[1]},"
        f" {worst_server.label} ({value_text(worst_entry, cell)}){worst}"
    )
    places = [index for index, (server, _) in enumerate(ranking) if server.name == "trio-echo"]
    if places:
        server, mine = ranking[places[0]]
        leaders = [v.leader for _, v in verdicts(ranking, server, cell)]
        ahead = leaders.count(server.label)
        undecided = leaders.count(None)
        text += (
            f"; trio_echo {_ordinal(places[0] + 1)} of {len(ranking)} by its median"
            f" ({value_text(mine, cell)}; by paired repetitions, ahead of {ahead}, behind"
            f" {len(leaders) - ahead - undecided}, not decided against {undecided})"
        )
    behind = [
        server.label
        for server in results.servers
        if (entry := results.entry(name, server.name)) and cell.rate and entry.get("saturated")
    ]
    if behind:
        text += f". Did not keep up with {cell.rate:,.0f}/s: {and_list(behind)}"
    return text + "."


def conformance_line(results: Results) -> str:
    """Who passes every case, and what the others fail."""
    if not results.conformance:
        return "- **Conformance**: not run with these results."
    clean, failing = [], []
    for server in results.servers:
        _passed, run, failed = conformance_counts(results.conformance, server)
        if not run:
            continue
        if failed:
            failing.append(f"{server.label} fails {len(failed)} of {run} ({', '.join(failed)})")
        else:
            clean.append(server.label)
    text = f"- **Conformance**: {and_list(clean)} pass every case they can run"
    return text + (f"; {'; '.join(failing)}." if failing else ".")


def stream_line(results: Results) -> str:
    """How fast the 10 MB stream went beside the fairness client: a low p99
    bought by slowing the stream is a different trade."""
    rates = {
        server.name: rate
        for server in results.servers
        if (rate := _stream(results, server.name)) is not None
    }
    cell = results.cell("fairness")
    ranking = ranked(results.summary, results.servers, cell) if cell else []
    if not rates or not ranking:
        return ""
    leader = ranking[0][0]
    (low, slowest), (high, fastest) = (
        min((rate, name) for name, rate in rates.items()),
        max((rate, name) for name, rate in rates.items()),
    )
    return (
        f"  The 10 MB stream beside it ran at {rates.get(leader.name, 0.0):,.0f} MB/s beside"
        f" {leader.label}; across the servers, a median of {median(rates.values()):,.0f} MB/s,"
        f" from {low:,.0f} ({SERVERS[slowest].label}) to {high:,.0f} ({SERVERS[fastest].label})."
    )


def _stream(results: Results, server: str) -> float | None:
    """The median rate of the 10 MB stream beside ``server``'s fairness client."""
    entry = results.entry("fairness", server)
    rate = entry.get("megabytes_per_second") if entry else None
    return rate if isinstance(rate, float) else None


def cost_of_conforming(results: Results) -> list[str]:
    """What the writer that makes trio and threads conform costs them."""
    lines = []
    for conforming, tutorial, model in (
        ("trio", "trio-tutorial", "trio"),
        ("threads", "threads-tutorial", "threads"),
    ):
        if not (results.entry("echo 1 KiB", conforming) and results.entry("echo 1 KiB", tutorial)):
            continue
        lines.append(
            f"- **The cost of conforming, {model}**: against the tutorial form, the form with"
            " a writer (which a client that sends a whole message before it reads needs) has"
            f" {_comparison(results, conforming, tutorial)}."
        )
    return lines


def machine_line(results: Results) -> str:
    """What this machine lets the figures say."""
    limited = sorted(
        {
            cell
            for cell, row in results.summary.items()
            for entry in row.values()
            if isinstance(entry, dict) and entry.get("client_limited")
        }
    )
    text = (
        f"- **What this machine can say**: {results.environment['cpus']} shared CPUs, each"
        " server pinned to one core: the figures compare what one core does under each model."
        " Models that spread over cores (threads, forking, `trio-echo --workers`) are not"
        " shown at their multi-core best here, and the shared machine's noise is the spread"
        " in brackets."
    )
    if limited:
        text += f" The load generator was the limit (⚠) on {and_list(limited)}."
    return text


def _tls_figure(entry: dict[str, Any] | None, unit: str, rate: bool = True) -> str:
    if not entry or entry.get("figure") is None:
        return "n/a"
    digits = 0 if unit == "µs" else 2
    text = (
        f"{entry['figure']:,.{digits}f} {unit} [{entry['min']:,.{digits}f} to"
        f" {entry['max']:,.{digits}f}]"
    )
    if rate:
        text += f" at {entry['achieved_rate']:,.1f}/s"
    if entry.get("saturated"):
        text += " (saturated)"
    if entry.get("errors"):
        text += f" ({entry['errors']:,} errors)"
    return text


def _tls_ratio(document: dict[str, Any], load: str, one: str, other: str) -> str:
    """The median of ``one``'s CPU over ``other``'s in each repetition of
    ``load``, with the verdict's count (less CPU is better)."""

    def figures(peer: str) -> dict[int, float]:
        return by_repetition(
            (run["repetition"], run["figure"])
            for run in document["runs"]
            if run["peer"] == peer and run["load"] == load and run["figure"] is not None
        )

    said = compare(one, other, figures(one), figures(other), lower_is_better=True)
    if said.ratio is None:
        return "n/a"
    return f"{said.ratio:.2f}x ({said.outcome()})"


def tls_section(document: dict[str, Any] | None) -> list[str]:
    """The TLS costs (benchmarks/tls.py --commit-results), as a table and ratios."""
    if not document:
        return ["(no TLS results: python benchmarks/tls.py --commit-results)"]
    env, settings = document["environment"], document["settings"]
    loads = {load["name"]: load for load in settings["loads"]}
    handshakes, bulk = loads["handshakes"], loads["bulk"]
    summary = document["summary"]
    lines = [
        f"From `benchmarks/results/tls.json` (`python benchmarks/tls.py`; {env['date']};"
        f" {env['cpus']} CPUs, {env['machine']}, Python {env['python']}; each server on one"
        " core, the load generator, C with libssl, on another): the server's CPU, the median"
        f" of {settings['repeat']} interleaved repetitions of {settings['duration']:g} s, in"
        " square brackets the lowest and the highest, with the rate each reached. Handshakes:"
        f" count {handshakes['size']:,} B at {handshakes['rate']:,.0f} connections/s"
        f" ({handshakes['connections']} at a time), each a full TLS 1.3 handshake (ECDSA P-256,"
        f" no resumption), CPU per connection. Bulk: count {bulk['size'] / 1e6:,.0f} MB at"
        f" {bulk['rate']:,.0f} messages/s over {bulk['connections']} connections"
        f" ({bulk['rate'] * bulk['size'] / 1e6:,.0f} MB/s each way), CPU per MB. Beside each,"
        " the same server (for the trio rows, trio (plain): the same pump on a SocketStream)"
        " over plain TCP, in the same run.",
        "",
        "| server | TLS, per handshake | plain TCP, per connection | TLS, per MB | plain TCP,"
        " per MB |",
        "|---|---|---|---|---|",
    ]
    for peer in (peer for peer in document["peers"] if peer["tls"]):
        plain = peer["plain"]
        lines.append(
            f"| {peer['label']} |"
            f" {_tls_figure(summary['handshakes'].get(peer['name']), 'µs')} |"
            f" {_tls_figure(summary['handshakes'].get(plain), 'µs')} |"
            f" {_tls_figure(summary['bulk'].get(peer['name']), 'ms')} |"
            f" {_tls_figure(summary['bulk'].get(plain), 'ms')} |"
        )
    pairs = [
        ("trio-echo-tls", "trio-tls", "trio_echo against the minimal trio SSLStream server"),
        ("trio-tls", "asyncio-streams-tls", "trio SSLStream against asyncio streams"),
        ("trio-tls", "uvloop-protocol-tls", "trio SSLStream against the uvloop protocol peer"),
        (
            "trio-tls-bio",
            "trio-tls",
            "the trio server on a MemoryBIO stream against the same server on SSLStream",
        ),
    ]
    lines += [
        "",
        "Each ratio is the median of the ratios taken in each repetition (below 1: less"
        " CPU), beside it in how many of the repetitions the first used less CPU (better) or"
        " more (worse); short of 80% of them"
        f" ({needed(settings['repeat'])} of {settings['repeat']}), the pair is not decided.",
        "",
    ]
    for one, other, what in pairs:
        lines.append(
            f"- {what}: {_tls_ratio(document, 'handshakes', one, other)} per handshake,"
            f" {_tls_ratio(document, 'bulk', one, other)} per MB"
        )
    return lines


def _spread_text(spread: dict[str, Any] | None, digits: int, unit: str = "") -> str:
    if not spread or spread.get("median") is None:
        return "n/a"
    unit = f" {unit}" if unit else ""
    return (
        f"{spread['median']:,.{digits}f}{unit} [{spread['min']:,.{digits}f} to"
        f" {spread['max']:,.{digits}f}]"
    )


def _target_value(target: dict[str, Any]) -> str:
    if target["value"] is None:
        return "n/a"
    if target["kind"] == "ratio":
        return f"{target['value']:.2f}x [{target['min']:.2f}x to {target['max']:.2f}x]"
    spread = {"median": target["value"], "min": target["min"], "max": target["max"]}
    return _spread_text(spread, 1, target["unit"])


def _against(target: dict[str, Any], labels: dict[str, str]) -> str:
    server = labels.get(target["server"], target["server"])
    others = [labels.get(name, name) for name in target["against"]]
    if target["kind"] == "ratio":
        return f"{server} over {and_list(others) if len(others) < 3 else ', '.join(others)}"
    if target["kind"] == "difference":
        return f"{server} minus {and_list(others)}"
    return server


def _floor_row(load: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """The figure, the server's CPU, the rate reached and p99 of one server on one load."""
    metric = load["metric"]
    runs = entry["runs"]
    if load["workload"] == "idle":
        figure = entry["figure"]
        kib = {key: value / 1024 if value is not None else None for key, value in figure.items()}
        return [_spread_text(kib, 1, "KiB"), "", "", ""]
    if metric == "megabytes_per_second":
        figure = _spread_text(entry["megabytes_per_second"], 0, "MB/s")
    elif metric == "messages_per_second":
        figure = _spread_text(entry["messages_per_second"], 0, "msg/s")
    else:
        figure = ""
    cpu = entry["cpu_us_per_message"]
    if load["size"] >= 1_000_000:  # per MB, not per 10 MB message
        per_mb = load["size"] / 1e6 * 1000
        cpu = {k: v / per_mb if v is not None else None for k, v in cpu.items()}
        cpu_text = _spread_text(cpu, 2, "ms per MB")
    else:
        per = "connection" if load["workload"] == "count" else "message"
        cpu_text = _spread_text(cpu, 1, f"µs per {per}")
    rate = _spread_text(entry["messages_per_second"], 0, "per s")
    if load["rate"]:
        rate += f" of {load['rate']:,.0f}"
    if entry["saturated"]:
        rate += f" (saturated in {entry['saturated']} of {runs})"
    if entry["client_limited"]:
        rate += f" (⚠ the load generator's limit in {entry['client_limited']} of {runs})"
    p99 = entry["p99_us"]
    p99_ms = {k: v / 1000 if v is not None else None for k, v in p99.items()}
    return [figure, cpu_text, rate, _spread_text(p99_ms, 2, "ms")]


def floor_noise(document: dict[str, Any]) -> str:
    """How much one server's figure on one load moved between repetitions."""
    labels = {server["name"]: server["label"] for server in document["servers"]}
    spreads = [
        ((figure["max"] - figure["min"]) / figure["median"], labels.get(server, server), load)
        for load, row in document["summary"].items()
        for server, entry in row.items()
        if (figure := entry["figure"]).get("median")
    ]
    if not spreads:
        return ""
    widest = max(spreads)
    return (
        "Between repetitions, one server's figure on one load varied by a median of"
        f" {median(spread for spread, _, _ in spreads):.0%} of its median (at most"
        f" {widest[0]:.0%}: {widest[1]}, {widest[2]}); a target's range is its ratio's"
        " spread over the same repetitions."
    )


def floor_section(document: dict[str, Any] | None) -> list[str]:
    """trio_echo against trio's floor (benchmarks/floor.py --commit-results):
    each target, then the figures it comes from."""
    if not document:
        return ["(no floor results: python benchmarks/floor.py --commit-results)"]
    env, settings = document["environment"], document["settings"]
    labels = {server["name"]: server["label"] for server in document["servers"]}
    subject = str(env["trio_echo_subject"])
    subject = subject if len(subject) <= 72 else subject[:71].rstrip() + "…"
    measured = env.get("trio_echo_measured", "the working tree")
    if measured == "the working tree" and env.get("trio_echo_uncommitted"):
        measured += ", with changes not committed"
    after = env.get("trio_echo_checkout_head_after", env["trio_echo_commit"])
    if after != env["trio_echo_commit"]:
        moved = f"; the checkout moved on to {str(after)[:7]} during the run"
        changed = env.get("trio_echo_changed_after")
        measured += moved + (", its trio_echo unchanged" if changed is False else ", not measured")
    lines = [
        f"From `benchmarks/results/floor.json` (`python benchmarks/floor.py`; {env['date']};"
        f" {env['cpus']} CPUs, {env['machine']}, Python {env['python']}; trio_echo at"
        f' {str(env["trio_echo_commit"])[:7]}, "{subject}" ({measured});'
        " each server on one core, the load generator on another; load average"
        f" {env['load_average_before'][0]:.2f} before, {env['load_average_after'][0]:.2f}"
        f" after): {settings['repeat']} repetitions; in each, a load's servers run one after"
        f" the other, {settings['duration']:g} s each, then again in the mirrored order (A B"
        " C C B A), and a server's figure in the repetition is the mean of its two runs"
        " (memory: one run). Each target's value is taken in each repetition (between runs"
        " seconds apart), and given as the median of the repetitions, in square brackets the"
        " lowest and the highest. A target is met when its value met the goal in at least 80%"
        f" of the repetitions ({needed(settings['repeat'])} of {settings['repeat']}), not met"
        " when it missed in at least as many, and not decided otherwise. Against several"
        " servers, the reference in each repetition is the best of them.",
        "",
        floor_noise(document),
        "",
        "| target | what | median [lowest to highest] | goal | verdict (repetitions that met"
        " the goal) |",
        "|---|---|---|---|---|",
    ]
    undecided = []
    for target in document["targets"]:
        goal = against_goal(target["values"], target["bound"], at_most=target["at_most"])
        if not goal.count:
            met = "not measured"
        else:
            said = "**not met**" if goal.verdict == "not met" else goal.verdict
            met = f"{said} ({goal.met_in} of {goal.count})"
        if goal.verdict == "not decided":
            undecided.append(
                f"- {target['what']}: met in {goal.met_in} of {goal.count} repetitions, where a"
                f" verdict needs {needed(goal.count)} either way; its value,"
                f" {_target_value(target)}, lies on both sides of the goal ({target['goal']}),"
                " so the verdict could flip within its own spread."
            )
        if target["saturated"]:
            met += "; a run saturated"
        lines.append(
            f"| {target['what']} | {_against(target, labels)} | {_target_value(target)} |"
            f" {target['goal']} | {met} |"
        )
    if undecided:
        lines += ["", "Not decided:", "", *undecided]
    lines += [
        "",
        "The figures: throughput (flat out) or, at a fixed rate, the rate reached; the"
        " server's CPU per connection or per message (per MB for 10 MB messages) beside it;"
        " p99 latency (at a fixed rate, from when each message was due). Memory: the"
        f" harness's PSS with {settings['idle_connections']:,} idle connections open, and"
        " benchmarks/idle_memory.py's tracemalloc with"
        f" {settings['tracemalloc_connections']:,}.",
        "",
        "| load | server | throughput or memory | server CPU | rate reached | p99 |",
        "|---|---|---|---|---|---|",
    ]
    loads = {load["name"]: load for load in settings["loads"]}
    idle = {"workload": "idle", "metric": "bytes_per_idle_connection", "size": 0, "rate": 0}
    for name, row in document["summary"].items():
        load = loads.get(name, idle)
        for server, entry in row.items():
            cells = _floor_row(load, entry)
            if entry["errors"]:
                cells[0] += f" ({entry['errors']:,} errors)"
            if entry["failed"]:
                cells[0] += f" ({entry['failed']} runs failed)"
            lines.append(f"| {name} | {labels.get(server, server)} | " + " | ".join(cells) + " |")
    return lines


def models_sections(results: Results) -> dict[str, list[str]]:
    """docs/models.md's generated parts."""
    return {
        "tls": tls_section(results.tls),
        "floor": floor_section(results.floor),
        "figures": [
            run_line(results),
            "",
            noise(results.summary, results.servers),
            "",
            *per_model_table(
                results.summary, results.servers, results.settings, results.conformance
            )[4:-1],
        ],
        "choose": [
            line
            for line in (
                conformance_line(results),
                criterion(results, "count 100 B at 1,000/s", "CPU per connection below saturation"),
                criterion(
                    results, "echo 1 KiB", "Echo rate, persistent connections", ("most", "least")
                ),
                criterion(results, "idle connections", "Memory per idle connection"),
                criterion(results, "fairness", "p99 beside a 10 MB stream"),
                stream_line(results),
                *cost_of_conforming(results),
                machine_line(results),
            )
            if line
        ],
    }


PAGES: dict[str, Callable[[Results], dict[str, list[str]]]] = {
    "README.md": readme_sections,
    "docs/models.md": models_sections,
}

_MARKED = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) \(benchmarks/pages\.py writes this part\) -->\n)"
    r".*?"
    r"(<!-- end of generated: (?P=name) -->)",
    re.DOTALL,
)


def fill(text: str, sections: dict[str, list[str]]) -> str:
    """``text`` with each marked part replaced by its section.

    Raises:
        LookupError: If a section has no markers in ``text``, or a marked
            part has no section.
    """
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in sections:
            raise LookupError(f"no section {name!r} to write")
        seen.add(name)
        return match[1] + "\n".join(sections[name]) + "\n" + match[3]

    filled = _MARKED.sub(replace, text)
    if missing := set(sections) - seen:
        raise LookupError(f"no markers for {', '.join(sorted(missing))}")
    return filled


def write_floor(results: Results, folder: Path) -> list[Path]:
    """Write what the floor's results change: the pages' parts, and benchmark.md's
    section (the rest of it as the committed run writes it)."""
    written = write_pages(results)
    path = folder / "benchmark.md"
    text = report(results)
    if path.read_text() != text:
        path.write_text(text)
        written.append(path)
    return written


def write_pages(results: Results, root: Path = ROOT) -> list[Path]:
    """Write the generated parts of README.md and docs/models.md."""
    written = []
    for page, sections in PAGES.items():
        path = root / page
        text = path.read_text()
        filled = fill(text, sections(results))
        if filled != text:
            path.write_text(filled)
            written.append(path)
    return written
