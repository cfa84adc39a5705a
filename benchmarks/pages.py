"""The pages a run's results write: the report, the plots, and every
generated part of README.md and the documentation.

A generated part sits between two markers, and nothing else in the page is
touched::

    <!-- generated: NAME (benchmarks/pages.py writes this part) -->
    ...
    <!-- end of generated: NAME -->

``python benchmarks/harness.py --report --commit-results`` writes them
again, from ``benchmarks/results/`` and, for the table of bounds in
docs/discussion/bounds.md, from the settings' declarations; and
``benchmarks/tests/test_pages.py`` fails when a committed page differs from
what they write. Every number in a generated part comes from what writes
it; the prose around it names no figure.

`fill` is the one mechanism, written here rather than taken from a tool
such as cogapp: a page keeps only its two markers per part, not the Python
that writes it (which a reader of the page on a forge would see), and one
load of the results serves every part of every page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measuring import Cell, Run, Scaling, Settings, median
from benchmarks.plots import plots
from benchmarks.provenance import stale
from benchmarks.reporting import (
    and_list,
    conformance_counts,
    conformance_table,
    exceptions_text,
    machine_facts,
    markdown,
    noise,
    per_model_table,
    ranked,
    scaling_table,
    servers_table,
    summarise,
    table,
    value_text,
    verdict,
    verdicts,
    who_leads,
)
from benchmarks.running import PSS
from benchmarks.servers import ROOT, SERVERS, Server
from benchmarks.summary import Spread
from benchmarks.verdicts import Verdict, against_goal, by_repetition, compare, needed

Summary = dict[str, dict[str, object]]


@dataclass
class Results:
    """One harness run, as its folder keeps it, and the other tools' results beside it."""

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
    work: dict[str, Any] | None = None
    code: dict[str, str] | None = None

    @classmethod
    def load(cls, folder: Path) -> Results:
        """The results in ``folder``: its benchmark.json, and conformance.json,
        framer.json, tls.json, floor.json and work.json where they are."""
        data = json.loads((folder / "benchmark.json").read_text())
        saved = data["settings"]
        scaling = [Scaling(**entry) for entry in data["scaling"]]
        settings = Settings(
            duration=saved["duration"],
            warmup=saved["warmup"],
            repeat=saved["repeat"],
            idle_connections=saved["idle_connections"],
            memory=saved.get("memory", PSS),  # results that do not say measured PSS
            cells=[Cell(**cell) for cell in saved["cells"]],
            scaling=bool(scaling),
        )
        runs = [Run.from_record(run) for run in data["runs"]]
        measured = {run.server for run in runs}
        servers = [server for name, server in SERVERS.items() if name in measured]
        conformance = _optional(folder / "conformance.json")
        if isinstance(conformance, dict):  # the outcomes, with where they came from
            conformance = conformance["outcomes"]
        return cls(
            framer=_optional(folder / "framer.json"),
            tls=_optional(folder / "tls.json"),
            floor=_optional(folder / "floor.json"),
            work=_optional(folder / "work.json"),
            code=data.get("code"),
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

    def provenance(self) -> Provenance:
        """Which of the harness's figures were measured on older code."""
        return provenance({"environment": self.environment, "code": self.code}, self.servers)


def _optional(path: Path) -> Any:
    """A results file's document, or None where there is none."""
    return json.loads(path.read_text()) if path.exists() else None


# -- where the figures came from -------------------------------------------------

OLDER_CODE = "measured before the results recorded their code: every figure may be from older code"
"""What a results file that records no code hashes (or no commit) is said to be."""


@dataclass(frozen=True)
class Provenance:
    """Which of a results file's figures were measured on code that has changed since.

    Attributes:
        note: What to say once for the whole file, when it records no code
            (`OLDER_CODE`, with the commit it records, if any); empty otherwise.
        marks: For each server whose code changed since its figures were
            measured: ``measured at abc1234, on older code``.
    """

    note: str = ""
    marks: dict[str, str] = field(default_factory=dict)

    def label(self, name: str, label: str, *others: str) -> str:
        """``label``, with the mark of ``name`` (or of one of ``others``) if it has one."""
        mark = next((self.marks[key] for key in (name, *others) if key in self.marks), "")
        return f"{label} ({mark})" if mark else label

    def sentence(self) -> str:
        """`note` as a sentence of its own, or ``""``."""
        return f" {self.note[0].upper()}{self.note[1:]}." if self.note else ""


def provenance(document: Mapping[str, Any] | None, servers: Iterable[Server]) -> Provenance:
    """What a results document says of the code it measured, against today's.

    Args:
        document: The document, with its ``environment`` and, if it records
            them, its ``code`` hashes by server name.
        servers: The servers its figures are of, as `benchmarks.provenance`
            hashes them.

    Returns:
        A note for the whole file when it records no code hashes or no
        commit; else a mark for each server whose code changed since.
    """
    if not document:
        return Provenance()
    env = document.get("environment") or {}
    commit = env.get("commit") or env.get("trio_echo_commit")
    code = document.get("code")
    if not code or not env.get("commit"):
        return Provenance(note=OLDER_CODE + (f" (measured at {str(commit)[:7]})" if commit else ""))
    changed = stale(code, servers)
    return Provenance(
        marks={name: f"measured at {str(commit)[:7]}, on older code" for name in changed}
    )


def code_servers() -> dict[str, Server]:
    """Every server a results file may record, by name, as its code is hashed:
    the comparison's, the floor tool's and the TLS tool's."""
    from benchmarks.floor import servers as floor_servers
    from benchmarks.tls import peer_servers

    return {**floor_servers(ROOT), **peer_servers(), **SERVERS}


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
    said = results.provenance()
    if said.marks:
        note = (
            "On code changed since: "
            + ", ".join(
                said.label(server.name, server.label)
                for server in results.servers
                if server.name in said.marks
            )
            + "."
        )
    else:
        note = said.sentence().strip()
    text = markdown(
        results.summary,
        results.servers,
        results.settings,
        results.conformance,
        results.environment,
        note=note,
    )
    not_measured = ["## Not measured here", "", *skipped, ""] if skipped else []
    floor = [
        "## trio_echo against trio's own floor",
        "",
        *floor_section(results.floor, idle=comparison_idle(results)),
        "",
    ]
    counted = ["## Counted work", "", *work_section(results.work), ""] if results.work else []
    return text + "\n".join(
        [
            *servers_table(results.servers),
            *not_measured,
            *scaling_table(results.scaling),
            *floor,
            *counted,
        ]
    )


def write_report(results: Results, folder: Path, skipped: list[str] | None = None) -> list[Path]:
    """Write benchmark.md and the plots into ``folder``; return what was written."""
    path = folder / "benchmark.md"
    path.write_text(report(results, skipped))
    return [path, *plots(results.summary, results.servers, results.settings, folder)]


# -- the generated parts of the pages ----------------------------------------


def run_line(results: Results) -> str:
    """Where the figures come from, in one sentence (and what code they are of)."""
    env, settings = machine_facts(results.environment), results.settings
    return (
        f"From the run committed in `benchmarks/results/` ({env['date']}; {env['cpus']} CPUs,"
        f" {env['machine']}, Python {env['python']}; each server on one core, the load"
        f" generator on another): the median of {settings.repeat} interleaved repetitions of"
        f" {settings.duration:g} s, in square brackets the lowest and the highest; ⚠: the"
        " load generator used 90% or more of its core, so the figure is a lower bound."
        " trio_echo runs at `--log-level WARNING`, as the other servers log nothing: its"
        " default, INFO, adds a line per connection, whose cost the counted work gives."
        + results.provenance().sentence()
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
    said = results.provenance()
    rows = [
        [said.label(server.name, server.label)]
        + [_cell_text(results, cell, server) for cell in cells]
        for server in results.servers
    ]
    return table(["server", *(titles.get(cell.name, cell.name) for cell in cells)], rows)


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
    counted = [
        text
        for load in COUNTED_LOADS
        if (
            text := counted_text(
                results.work, load, one, other, f"the instructions per {{unit}} on {load}"
            )
        )
    ]
    return and_list(parts) + (f"; counted, {and_list(counted)}" if counted else "")


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
    """The README's generated part: the comparison's headline table."""
    return {
        "headline": [
            run_line(results),
            "",
            noise(results.summary, results.servers),
            "",
            *figures_table(results, HEADLINE, TITLES),
        ],
    }


def leads_section(results: Results) -> list[str]:
    """Who leads on each headline load and cost, and what trio_echo's design
    buys over idiomatic trio, repetition by repetition."""
    leads = [
        f"- {cell.name}: {text}"
        for name in HEADLINE + COSTS
        if (cell := results.cell(name))
        and (text := who_leads(results.summary, results.servers, cell))
    ]
    return [
        "The best median on each load, and how it fares against the others"
        " repetition by repetition: a server leads another when it did better in at"
        " least 80% of the repetitions that measured both; at a fixed rate, only"
        " servers that kept up count.",
        "",
        *leads,
        "",
        "What trio_echo's design buys over idiomatic trio: against trio's tutorial form (a"
        " task per connection that reads, then sends), "
        + _comparison(results, "trio-echo", "trio-tutorial")
        + "; against its conforming form (with a writer task), "
        + _comparison(results, "trio-echo", "trio")
        + ". A ratio of CPU below 1 is less CPU.",
    ]


def framer_table(results: Results) -> list[str]:
    """The framer alone (benchmarks/framer.py --commit-results), as a table."""
    if not results.framer:
        return ["(no framer results: python benchmarks/framer.py --commit-results)"]
    env = results.framer["environment"]
    rows = results.framer["results"]
    assert isinstance(env, dict)
    assert isinstance(rows, list)
    facts = machine_facts(env)
    from benchmarks.framer import server as framer_server

    said = provenance(results.framer, [framer_server()])
    mark = f" ({said.marks['framer']})" if "framer" in said.marks else ""
    lines = [
        f"The framer alone (`python benchmarks/framer.py`; {facts['date']}, Python"
        f" {facts['python']}; the median of {rows[0]['repeat']} runs, with the lowest and the"
        f" highest){mark}:",
        "",
    ]
    figures = []
    for row in rows:
        digits = 0 if row["median"] >= 100 else 2
        figures.append(
            [
                row["case"],
                f"{row['median']:,.{digits}f} {row['unit']}",
                f"{row['min']:,.{digits}f} to {row['max']:,.{digits}f}",
            ]
        )
    lines += table(["case", "median", "lowest to highest"], figures)
    if said.note:
        lines += ["", said.sentence().strip()]
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
        if (entry := results.entry(name, server.name)) and cell.saturable and entry.get("saturated")
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
    cpus = machine_facts(results.environment)["cpus"]
    text = (
        f"- **What this machine can say**: {cpus} shared CPUs, each"
        " server pinned to one core: the figures compare what one core does under each model."
        " Models that can spread over cores (forking, `trio-echo --workers`) are not shown at"
        " their multi-core best here; CPython 3.11's threads run Python code one at a time"
        " (the GIL), so a second core would give the threads peers little. The shared"
        " machine's noise is the spread in brackets."
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


def _tls_figures(document: dict[str, Any], load: str, peer: str) -> dict[int, float]:
    """``peer``'s figures on ``load``, by repetition (see `verdicts.by_repetition`)."""
    return by_repetition(
        (run["repetition"], run["figure"])
        for run in document["runs"]
        if run["peer"] == peer and run["load"] == load and run["figure"] is not None
    )


def _tls_ratio(document: dict[str, Any], load: str, one: str, other: str) -> str:
    """The median of ``one``'s CPU over ``other``'s in each repetition of
    ``load``, with the verdict's count (less CPU is better)."""
    said = compare(
        one,
        other,
        _tls_figures(document, load, one),
        _tls_figures(document, load, other),
        lower_is_better=True,
    )
    if said.ratio is None:
        return "n/a"
    return f"{said.ratio:.2f}x ({said.outcome()})"


TLS_REFERENCE = "c-tls"
"""The TLS peer that is libssl alone (benchmarks/peers/c_tls.c)."""


def _tls_added(document: dict[str, Any], load: str, peer: dict[str, Any]) -> float | None:
    """What TLS adds to ``peer``'s CPU on ``load``: the median, over the
    repetitions, of its figure less its plain twin's in the same repetition."""
    tls = _tls_figures(document, load, peer["name"])
    plain = _tls_figures(document, load, peer["plain"])
    return Spread.of(tls[rep] - plain[rep] for rep in tls if rep in plain).median


def _tls_added_lines(document: dict[str, Any]) -> list[str]:
    """A line per TLS server: what TLS adds per handshake and per MB, and its
    multiple of what it adds to libssl alone (`TLS_REFERENCE`)."""
    peers = [peer for peer in document["peers"] if peer["tls"]]
    reference = next((peer for peer in peers if peer["name"] == TLS_REFERENCE), None)
    if reference is None:
        return []
    floor = {load: _tls_added(document, load, reference) for load in ("handshakes", "bulk")}
    lines = [
        "",
        "What TLS adds: each server's CPU over TLS less its plain-TCP twin's, the median of"
        " the differences in each repetition, and its multiple of what TLS adds to the C"
        " server with libssl alone, the reference (what libssl and the kernel cannot help"
        " costing):",
        "",
    ]
    for peer in peers:
        parts = []
        for load, unit, digits in (("handshakes", "µs per handshake", 0), ("bulk", "ms per MB", 2)):
            added, base = _tls_added(document, load, peer), floor[load]
            if added is None:
                parts.append("n/a")
                continue
            text = f"{added:,.{digits}f} {unit}"
            if peer is not reference and base:
                text += f" ({added / base:.2f}x libssl's)"
            parts.append(text)
        lines.append(f"- {peer['label']}: {', '.join(parts)}")
    return lines


def tls_section(document: dict[str, Any] | None, work: dict[str, Any] | None = None) -> list[str]:
    """The TLS costs (benchmarks/tls.py --commit-results), as a table and ratios,
    with the counted instructions per connection (``work``) beside the ratios."""
    if not document:
        return ["(no TLS results: python benchmarks/tls.py --commit-results)"]
    settings = document["settings"]
    env = machine_facts(document["environment"])
    said = provenance(document, code_servers().values())
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
        " over plain TCP, in the same run." + said.sentence(),
        "",
    ]
    rows = [
        [
            said.label(peer["name"], peer["label"], peer["plain"]),
            _tls_figure(summary["handshakes"].get(peer["name"]), "µs"),
            _tls_figure(summary["handshakes"].get(peer["plain"]), "µs"),
            _tls_figure(summary["bulk"].get(peer["name"]), "ms"),
            _tls_figure(summary["bulk"].get(peer["plain"]), "ms"),
        ]
        for peer in document["peers"]
        if peer["tls"]
    ]
    header = [
        "server",
        "TLS, per handshake",
        "plain TCP, per connection",
        "TLS, per MB",
        "plain TCP, per MB",
    ]
    lines += table(header, rows)
    lines += _tls_added_lines(document)
    pairs = [
        ("trio-echo-tls", "trio-tls", "trio_echo against the minimal trio SSLStream server"),
        ("trio-echo", "trio", "the same two over plain TCP, trio_echo against trio (plain)"),
        ("trio-tls", "asyncio-streams-tls", "trio SSLStream against asyncio streams"),
        ("trio-tls", "uvloop-protocol-tls", "trio SSLStream against the uvloop protocol peer"),
        (
            "trio-tls-bio",
            "trio-tls",
            "the trio server on a MemoryBIO stream against the same server on SSLStream",
        ),
    ]
    tls = {peer["name"]: peer["tls"] for peer in document["peers"]}
    lines += [
        "",
        "Each ratio is the median of the ratios taken in each repetition (below 1: less"
        " CPU), beside it in how many of the repetitions the first used less CPU (better) or"
        " more (worse); short of 80% of them"
        f" ({needed(settings['repeat'])} of {settings['repeat']}), the pair is not decided.",
        "",
    ]
    for one, other, what in pairs:
        over_tls = tls.get(one, True)
        counted = counted_text(
            work,
            TLS_COUNTED if over_tls else PLAIN_COUNTED,
            one,
            other,
            "the instructions per {unit}",
        )
        lines.append(
            f"- {what}: {_tls_ratio(document, 'handshakes', one, other)} per"
            f" {'handshake' if over_tls else 'connection'},"
            f" {_tls_ratio(document, 'bulk', one, other)} per MB"
            + (f"; counted, {counted}" if counted else "")
        )
    return lines


TLS_COUNTED = "TLS, count 100 B"
"""The counted load (benchmarks/work.py) that is the TLS handshake load."""
PLAIN_COUNTED = "count 100 B"
"""The counted load that is the same over plain TCP."""


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
    server = str(labels.get(target["server"], target["server"]))
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


def comparison_idle(results: Results) -> dict[str, Any] | None:
    """trio_echo's memory per idle connection in the comparison's run, in KiB:
    its value in each repetition, and their median, lowest and highest."""
    values = by_repetition(
        (run.repetition, run.figure / 1024)
        for run in results.runs
        if run.server == "trio-echo" and run.cell == "idle connections" and run.figure is not None
    )
    if not values:
        return None
    entry = results.entry("idle connections", "trio-echo")
    figure = entry["figure"] if entry else median(values.values()) * 1024
    assert isinstance(figure, float)
    return {
        "values": list(values.values()),
        "median": figure / 1024,
        "min": min(values.values()),
        "max": max(values.values()),
    }


def _with_idle(document: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    """The floor's document with trio_echo's harness memory per idle connection
    taken from the comparison's run (``idle``), target and figure alike."""
    targets = []
    for target in document["targets"]:
        if target["load"] == "idle connections" and target["server"] == "trio-echo":
            targets.append(
                dict(
                    target,
                    values=idle["values"],
                    value=idle["median"],
                    min=idle["min"],
                    max=idle["max"],
                )
            )
        else:
            targets.append(target)
    summary = {load: dict(row) for load, row in document["summary"].items()}
    if "trio-echo" in summary.get("idle connections", {}):
        kib = {key: idle[key] * 1024 for key in ("median", "min", "max")}
        summary["idle connections"]["trio-echo"] = dict(
            summary["idle connections"]["trio-echo"], figure=kib
        )
    return dict(document, targets=targets, summary=summary)


def _counted_target(target: dict[str, Any], work: dict[str, Any] | None) -> str:
    """A target's counted figure (benchmarks/work.py), on the counted load it names."""
    load = next(
        (
            name
            for name in COUNTED_LOADS
            if target["load"] == name or target["load"].startswith(name + " ")
        ),
        None,
    )
    if work is None or load is None:
        return ""
    if target["kind"] == "difference":
        one = _counted_entry(work, load, target["server"])
        others = [_counted_entry(work, load, name) for name in target["against"]]
        if one is None or len(others) != 1 or others[0] is None:
            return ""
        extra = _mean(one["instructions"]) - _mean(others[0]["instructions"])
        return f"{_signed(extra, _count(extra))} instructions per {_unit(work, load)}"
    if target["kind"] != "ratio":
        return ""
    return counted_text(
        work, load, target["server"], list(target["against"]), "the instructions per {unit}"
    )


def floor_section(
    document: dict[str, Any] | None,
    work: dict[str, Any] | None = None,
    *,
    idle: dict[str, Any] | None = None,
) -> list[str]:
    """trio_echo against trio's floor (benchmarks/floor.py --commit-results):
    each target, then the figures it comes from.

    Args:
        document: floor.json's document.
        work: work.json's, for the counted figure beside each target that
            has one.
        idle: trio_echo's memory per idle connection in the comparison's
            run (`comparison_idle`), shown in place of the floor run's, so
            that the page gives one figure for it.
    """
    if not document:
        return ["(no floor results: python benchmarks/floor.py --commit-results)"]
    if idle is not None:
        document = _with_idle(document, idle)
    env, settings = document["environment"], document["settings"]
    facts = machine_facts(env)
    origin = provenance(document, code_servers().values())
    labels = {
        server["name"]: origin.label(server["name"], server["label"])
        for server in document["servers"]
    }
    commit = str(env.get("commit") or env["trio_echo_commit"])
    subject = str(env["trio_echo_subject"])
    subject = subject if len(subject) <= 72 else subject[:71].rstrip() + "…"
    measured = env.get("trio_echo_measured", "the working tree")
    if measured == "the working tree" and (env.get("dirty") or env.get("trio_echo_uncommitted")):
        measured += ", with changes not committed"
    after = env.get("trio_echo_checkout_head_after", commit)
    if after != commit:
        moved = f"; the checkout moved on to {str(after)[:7]} during the run"
        changed = env.get("trio_echo_changed_after")
        measured += moved + (", its trio_echo unchanged" if changed is False else ", not measured")
    lines = [
        f"From `benchmarks/results/floor.json` (`python benchmarks/floor.py`; {facts['date']};"
        f" {facts['cpus']} CPUs, {facts['machine']}, Python {facts['python']}; trio_echo at"
        f' {commit[:7]}, "{subject}" ({measured});'
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
        " servers, the reference in each repetition is the best of them." + origin.sentence(),
        "",
        floor_noise(document),
        "",
    ]
    counted = work is not None
    if counted:
        lines += [
            "Beside each target that a counted load matches, the same comparison counted"
            " (benchmarks/work.py, above): instructions per connection or message, which decide"
            " outright.",
            "",
        ]
    header = [
        "target",
        "what",
        "median [lowest to highest]",
        "goal",
        "verdict (repetitions that met the goal)",
        *(["counted"] if counted else []),
    ]
    rows = []
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
        rows.append(
            [
                target["what"],
                _against(target, labels),
                _target_value(target),
                target["goal"],
                met,
                *([_counted_target(target, work)] if counted else []),
            ]
        )
    lines += table(header, rows)
    if undecided:
        lines += ["", "Not decided:", "", *undecided]
    lines += [
        "",
        "The figures: throughput (flat out) or, at a fixed rate, the rate reached; the"
        " server's CPU per connection or per message (per MB for 10 MB messages) beside it;"
        " p99 latency (at a fixed rate, from when each message was due). Memory: the"
        f" harness's, by {settings.get('memory', PSS)}, with"
        f" {settings['idle_connections']:,} idle connections open, and"
        " benchmarks/idle_memory.py's tracemalloc with"
        f" {settings['tracemalloc_connections']:,}."
        + (
            " trio_echo's memory per idle connection, target and figure, is the comparison's"
            " (benchmarks/results/benchmark.json, in the tables above), not this run's, so"
            " that the page gives one figure for it."
            if idle is not None
            else ""
        ),
        "",
    ]
    rows = []
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
            rows.append([name, labels.get(server, server), *cells])
    header = ["load", "server", "throughput or memory", "server CPU", "rate reached", "p99"]
    return lines + table(header, rows)


# -- counted work (benchmarks/work.py) -----------------------------------------------

COUNTED_LOADS = ["count 100 B", "echo 1 KiB", "framed 100 B x16"]
"""The loads that benchmarks/work.py counts and the timed comparison also measures."""

LOG_LOAD = "count 100 B"
"""The load on which trio_echo at INFO is counted beside trio_echo at WARNING."""


def _count(value: float) -> str:
    """A count in three figures: ``249k``, ``24.9k``, ``2.49k``, ``932``."""
    size = abs(value)
    sign = "-" if value < 0 else ""
    if size >= 1e6:
        return f"{sign}{size / 1e6:.2f}M"
    if size >= 99_950:
        return f"{sign}{size / 1e3:.0f}k"
    if size >= 9_995:
        return f"{sign}{size / 1e3:.1f}k"
    if size >= 1_000:
        return f"{sign}{size / 1e3:.2f}k"
    return f"{sign}{size:.0f}"


def _signed(value: float, text: str) -> str:
    return text if value < 0 else f"+{text}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _counted_entry(
    document: dict[str, Any] | None, load: str, server: str
) -> dict[str, Any] | None:
    """A server's counted figures on a load, or None where it has none (or an error)."""
    if not document:
        return None
    entry = document["figures"].get(load, {}).get(server)
    return entry if entry and "error" not in entry else None


def _unit(document: dict[str, Any], load: str) -> str:
    return str(document["settings"]["loads"].get(load, {}).get("unit", "message"))


def counted_verdict(
    document: dict[str, Any] | None, load: str, one: str, against: str | list[str]
) -> Verdict | None:
    """``one``'s instructions against ``against``'s (the fewest of several, in
    each repetition) on ``load``: a counted verdict, which decides outright."""
    others = [against] if isinstance(against, str) else against
    mine = _counted_entry(document, load, one)
    theirs = [_counted_entry(document, load, name) for name in others]
    if mine is None or not others or any(entry is None for entry in theirs):
        return None
    columns = zip(*(entry["instructions"] for entry in theirs if entry), strict=True)
    best = [min(values) for values in columns]
    pairs = tuple(zip(mine["instructions"], best, strict=False))
    return Verdict(one, " ".join(others), pairs, lower_is_better=True, outright=True)


def counted_text(
    document: dict[str, Any] | None, load: str, one: str, against: str | list[str], what: str
) -> str:
    """``0.76x what (better in 2 of 2 counted measurements)`` (``{unit}`` in
    ``what`` is the load's unit), or ``""`` without figures for both."""
    said = counted_verdict(document, load, one, against)
    if document is None or said is None or said.ratio is None:
        return ""
    return f"{said.ratio:.2f}x {what.format(unit=_unit(document, load))} ({said.outcome()})"


def _tls_plain() -> dict[str, str]:
    """Each TLS server's plain-TCP twin, as benchmarks/tls.py pairs them."""
    from benchmarks.tls import PEERS_COMPARED

    return {peer.name: peer.plain for peer in PEERS_COMPARED if peer.tls}


def _counted_rows(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The table's rows: for each, the server counted on each load. A TLS
    server shares its plain-TCP twin's row where the twin is counted."""
    loads = document["settings"]["loads"]
    plain = _tls_plain()
    rows: dict[str, dict[str, str]] = {}
    for load, row in document["figures"].items():
        if not loads.get(load, {}).get("tls"):
            for server in row:
                rows.setdefault(server, {})[load] = server
    for load, row in document["figures"].items():
        if loads.get(load, {}).get("tls"):
            for server in row:
                twin = plain.get(server, server)
                rows.setdefault(twin if twin in rows else server, {})[load] = server
    return rows


def _flag_text(flag: str) -> str:
    return flag.replace("|", "\\|").replace("\n", " ")


def work_section(document: dict[str, Any] | None, *, heading: bool = False) -> list[str]:
    """The counted work (benchmarks/work.py --commit-results): a table with a
    row per server and a column per load, what the log line and TLS add, and
    what such counts can say; nothing without results."""
    if not document:
        return []
    env, figures = document["environment"], document["figures"]
    title = ["## Counted work", ""] if heading else []
    loads = list(figures)
    said = provenance(document, code_servers().values())
    rows = _counted_rows(document)
    flags: list[str] = []
    lines = [
        *title,
        f"From `benchmarks/results/work.json` (`python benchmarks/work.py`, {document['minutes']:g}"
        f" minutes, at {str(env.get('commit'))[:7]}"
        + (", with changes not committed" if env.get("dirty") else "")
        + f"; {env.get('kernel')} {env.get('machine')}; OPENSSL_ia32cap"
        f" {document['openssl_ia32cap'].get('native')} natively,"
        f" {document['openssl_ia32cap'].get('valgrind')} under valgrind). In each cell: the"
        " instructions per connection or per message, the mean of two repetitions (each in"
        " parentheses), its multiple of trio_echo's on the same load, then the system calls."
        " The TLS column gives each server's TLS form; trio (plain)'s is the trio SSLStream"
        " server, the same pump on an SSLStream." + said.sentence(),
        "",
    ]
    table_rows = []
    for name, by_load in rows.items():
        cells = []
        label = name
        for load in loads:
            server = by_load.get(load, "")
            entry = figures[load].get(server) if server else None
            if entry is None:
                cells.append("")
                continue
            label = entry["label"] if label == name else label
            if "error" in entry:
                cells.append(f"error: {_flag_text(str(entry['error']))}")
                continue
            mean = _mean(entry["instructions"])
            text = f"{_count(mean)} ({', '.join(_count(value) for value in entry['instructions'])})"
            reference = rows.get("trio-echo", {}).get(load)
            ratio = counted_verdict(document, load, server, reference) if reference else None
            if ratio is not None and ratio.ratio is not None and reference != server:
                text += f", {ratio.ratio:.2f}x"
            text += f"; {_mean(entry['syscalls']):,.2f} calls"
            if entry.get("flag"):
                flags.append(
                    f"[{len(flags) + 1}] {entry['label']}, {load}: {_flag_text(entry['flag'])}."
                )
                text += f" [{len(flags)}]"
            cells.append(text)
        table_rows.append([said.label(name, label, *by_load.values()), *cells])
    header = ["server", *(f"{load}, per {_unit(document, load)}" for load in loads)]
    lines += table(header, table_rows)
    if flags:
        lines += ["", "Flagged:", "", *(f"- {flag}" for flag in flags)]
    extras = [
        *_floor_lines(document),
        *_log_line(document),
        *_tls_extra(document, rows),
    ]
    if extras:
        lines += ["", *extras]
    lines += [
        "",
        "What these counts say. Each server is counted on one connection at a time, paced so"
        " that every message (or connection) has a wake-up of its own: the count is the"
        " user-space work that one message costs when nothing else is waiting. Under load, a"
        " server that serves several messages per wake-up (an event loop that finds many"
        " sockets ready) does less per message, so for the event-loop servers the count is an"
        " upper bound on the work per message; it says nothing of latency, of the kernel's"
        " time, of cache misses or of scheduling, which the timed figures carry. valgrind runs"
        " a program's threads one at a time, so the threads and forking servers' counts are"
        " their work, not their parallelism. The TLS counts are OpenSSL's code path on"
        " valgrind's CPU, whose OPENSSL_ia32cap (above) differs from this machine's, so they"
        " may not be the path it takes natively. Two repetitions that differ by more than 2%"
        " are flagged.",
    ]
    return lines


def _floor_lines(document: dict[str, Any]) -> list[str]:
    parts = [
        text
        for load in document["figures"]
        if (
            text := counted_text(
                document,
                load,
                "trio-echo",
                "floor",
                f"the floor's instructions per {{unit}} on {load}",
            )
        )
    ]
    return [f"- trio_echo against the trio floor: {and_list(parts)}."] if parts else []


def _difference(one: dict[str, Any], other: dict[str, Any]) -> str:
    extra = _mean(one["instructions"]) - _mean(other["instructions"])
    calls = _mean(one["syscalls"]) - _mean(other["syscalls"])
    return (
        f"{_signed(extra, _count(extra))} instructions ({_count(_mean(one['instructions']))}"
        f" minus {_count(_mean(other['instructions']))}) and {_signed(calls, f'{calls:.2f}')}"
        " system calls"
    )


def _log_line(document: dict[str, Any]) -> list[str]:
    info = _counted_entry(document, LOG_LOAD, "trio-echo-info")
    warning = _counted_entry(document, LOG_LOAD, "trio-echo")
    if info is None or warning is None:
        return []
    return [
        f"- The log line at INFO, per {_unit(document, LOG_LOAD)} on {LOG_LOAD} (trio_echo,"
        f" --log-level info minus trio_echo at WARNING): {_difference(info, warning)}."
    ]


def _tls_extra(document: dict[str, Any], rows: dict[str, dict[str, str]]) -> list[str]:
    loads = document["settings"]["loads"]
    parts = []
    for load, settings in loads.items():
        if not settings.get("tls") or load not in document["figures"]:
            continue
        plain = next(
            (
                name
                for name, other in loads.items()
                if not other.get("tls")
                and (other["mode"], other["size"], other["pipeline"])
                == (settings["mode"], settings["size"], settings["pipeline"])
            ),
            None,
        )
        if plain is None:
            continue
        for by_load in rows.values():
            tls = _counted_entry(document, load, by_load.get(load, ""))
            twin = _counted_entry(document, plain, by_load.get(plain, ""))
            if tls and twin:
                parts.append(f"{tls['label']}, {_difference(tls, twin)}")
        if parts:
            return [
                f"- What TLS adds per {_unit(document, load)} ({load} minus {plain}):"
                f" {'; '.join(parts)}."
            ]
    return []


def counted_column(results: Results) -> dict[str, str] | None:
    """Each server's instructions per connection on count 100 B, for the
    per-model table; None without counted results."""
    if not results.work or LOG_LOAD not in results.work["figures"]:
        return None
    column = {}
    for server, entry in results.work["figures"][LOG_LOAD].items():
        if "error" in entry:
            column[server] = "error"
        else:
            values = entry["instructions"]
            column[server] = f"{_count(_mean(values))} ({', '.join(_count(v) for v in values)})"
    return column


def models_sections(results: Results) -> dict[str, list[str]]:
    """docs/models.md's generated parts."""
    said = results.provenance()
    return {
        "servers": servers_table(list(SERVERS.values()))[2:-1],
        "conformance": conformance_table(results.conformance or [], list(SERVERS.values()))[2:-1]
        if results.conformance
        else ["(no conformance run in these results)"],
        "leads": leads_section(results),
        "framer": framer_table(results),
        "tls": tls_section(results.tls, results.work),
        "floor": floor_section(results.floor, results.work, idle=comparison_idle(results)),
        "counted": work_section(results.work, heading=True),
        "figures": [
            run_line(results),
            "",
            noise(results.summary, results.servers),
            "",
            *per_model_table(
                results.summary,
                results.servers,
                results.settings,
                results.conformance,
                counted=counted_column(results),
                labels={name: said.label(name, SERVERS[name].label) for name in said.marks},
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


def bounds_sections(_results: Results) -> dict[str, list[str]]:
    """docs/discussion/bounds.md's generated part: the table of bounds, from
    the settings' declarations (the results have no part in it)."""
    from trio_echo.cli._settings import bounds_rows

    return {"bounds": table(["flag", "default", "what it bounds"], bounds_rows())}


PAGES: dict[str, Callable[[Results], dict[str, list[str]]]] = {
    "README.md": readme_sections,
    "docs/models.md": models_sections,
    "docs/discussion/bounds.md": bounds_sections,
}

_MARKED = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) \(benchmarks/pages\.py writes this part\) -->\n)"
    r".*?"
    r"(<!-- end of generated: (?P=name) -->)",
    re.DOTALL,
)


def fill(text: str, sections: dict[str, list[str]]) -> str:
    """``text`` with each marked part replaced by its section (an empty
    section leaves the two markers alone together).

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
        body = "".join(line + "\n" for line in sections[name])
        return match[1] + body + match[3]

    filled = _MARKED.sub(replace, text)
    if missing := set(sections) - seen:
        raise LookupError(f"no markers for {', '.join(sorted(missing))}")
    return filled


def write_committed(results: Results, folder: Path) -> list[Path]:
    """Write what a committed results file changes: the pages' parts, and the
    harness's report, benchmark.md, whose sections come from every file."""
    written = write_pages(results)
    path = folder / "benchmark.md"
    text = report(results)
    if path.read_text() != text:
        path.write_text(text)
        written.append(path)
    return written


def write_pages(results: Results, root: Path = ROOT) -> list[Path]:
    """Write every generated part of every page (`PAGES`)."""
    written = []
    for page, sections in PAGES.items():
        path = root / page
        text = path.read_text()
        filled = fill(text, sections(results))
        if filled != text:
            path.write_text(filled)
            written.append(path)
    return written
