"""The report's plots: small multiples, a panel per group of servers.

Sixteen servers on one axis are sixteen lines nobody can tell apart, so
every plot has a column per group of `benchmarks.servers.FAMILIES` (trio,
asyncio, Twisted and gevent, threads and processes), with C epoll, the
floor, drawn in grey in each. A point is the median over the repetitions;
its error bar runs from the lowest repetition to the highest. A point where
the load generator was the limit in the median repetition (⚠ in the
tables) is circled in red: the server did at least that much. Where the
number of connections changes along a plot's axis, a dotted line says so.

Plots need matplotlib (the ``bench`` extra); without it there are none.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.measuring import Cell, Settings
from benchmarks.reporting import LATENCY_KEYS
from benchmarks.servers import FAMILIES, Server, family

Summary = dict[str, dict[str, object]]

_MARKERS = "osD^v<>p"
_FLOOR_STYLE = {"color": "0.55", "marker": ".", "linestyle": "--"}

CDF_CELLS = ("count 100 B at 1,000/s", "fairness")
"""The loads whose latency distribution is plotted: short connections at a
rate every server should keep up with, and a small client beside a stream."""


def plots(summary: Summary, servers: list[Server], settings: Settings, out: Path) -> list[Path]:
    """Write the report's plots into ``out``.

    Returns:
        The files written: none without matplotlib, or without the loads
        they draw.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for group, x_of, xlabel in (
        ("size", lambda c: c.size, "message size (bytes)"),
        ("concurrency", lambda c: c.connections, "connections"),
    ):
        cells = [cell for cell in settings.cells if cell.group == group]
        if len(cells) >= 2:
            figure = _by_load(plt, summary, servers, cells, x_of=x_of, xlabel=xlabel)
            written.append(_save(plt, figure, out / f"echo-by-{group}.png"))
    cells = [cell for cell in settings.cells if cell.name in CDF_CELLS]
    if cells:
        written.append(
            _save(plt, _latency_cdf(plt, summary, servers, cells), out / "latency-cdf.png")
        )
    echo = next((cell for cell in settings.cells if cell.name == "echo 1 KiB"), None)
    if echo is not None:
        figure = _cpu_split(plt, summary, servers, echo)
        if figure is not None:
            written.append(_save(plt, figure, out / "cpu-per-message.png"))
    return written


def _save(plt: Any, figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _panels(servers: list[Server]) -> tuple[list[tuple[str, list[Server]]], list[Server]]:
    """The groups with a server among ``servers``, and the servers drawn in every
    panel (those of no group: C epoll)."""
    groups = [
        (name, [server for server in servers if server.name in members])
        for name, members in FAMILIES.items()
    ]
    return [(name, mine) for name, mine in groups if mine], [
        server for server in servers if family(server) is None
    ]


def _style(index: int) -> dict[str, object]:
    """A colour and a marker for the server at ``index`` within its panel."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    return {"color": colours[index % len(colours)], "marker": _MARKERS[index % len(_MARKERS)]}


def _entry(summary: Summary, cell: Cell, server: Server) -> dict[str, Any] | None:
    entry = summary.get(cell.name, {}).get(server.name)
    return entry if isinstance(entry, dict) and isinstance(entry.get("figure"), float) else None


def _by_load(
    plt: Any,
    summary: Summary,
    servers: list[Server],
    cells: list[Cell],
    *,
    x_of: Callable[[Cell], float],
    xlabel: str,
) -> Any:
    """Throughput (top row) and p99 latency (bottom row) along ``cells``."""
    groups, everywhere = _panels(servers)
    figure, axes = plt.subplots(
        2, len(groups), figsize=(4.2 * len(groups), 7.5), sharex=True, sharey="row", squeeze=False
    )
    for column, (name, members) in enumerate(groups):
        top, bottom = axes[0][column], axes[1][column]
        drawn = [(server, _style(index)) for index, server in enumerate(members)]
        drawn += [(server, _FLOOR_STYLE) for server in everywhere]
        limited: list[tuple[float, float]] = []
        for server, style in drawn:
            points = [
                (x_of(cell), entry) for cell in cells if (entry := _entry(summary, cell, server))
            ]
            if not points:
                continue
            xs = [x for x, _ in points]
            rate = [(e["figure"], e["min"], e["max"]) for _, e in points]
            p99 = [
                (e["latency_us"]["p99"] / 1000, e["p99_min"] / 1000, e["p99_max"] / 1000)
                if e.get("p99_min") is not None
                else (e["latency_us"]["p99"] / 1000,) * 3
                for _, e in points
            ]
            for axis, values in ((top, rate), (bottom, p99)):
                middle = [value for value, _, _ in values]
                axis.errorbar(
                    xs,
                    middle,
                    yerr=[
                        [value - low for value, low, _ in values],
                        [high - value for value, _, high in values],
                    ],
                    capsize=2,
                    markersize=4,
                    linewidth=1,
                    label=server.label,
                    **style,
                )
            limited += [(x, e["figure"]) for x, e in points if e.get("client_limited")]
        if limited:
            top.scatter(
                *zip(*limited, strict=True),
                s=120,
                facecolors="none",
                edgecolors="red",
                zorder=5,
                label="⚠ the generator's limit",
            )
        top.set_title(name)
        _mark_connections(top, bottom, cells, x_of)
        for axis in (top, bottom):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.grid(True, which="both", alpha=0.3)
        bottom.set_xlabel(xlabel)
        _legend(top, loc="best")
    axes[0][0].set_ylabel("messages/s")
    axes[1][0].set_ylabel("p99 latency (ms)")
    figure.suptitle(
        f"echo, by {xlabel}: the median of the repetitions, bars from the lowest to the highest"
    )
    figure.tight_layout()
    return figure


def _legend(axis: Any, *, loc: str) -> None:
    """The panel's legend, if it has anything to name."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc=loc)


def _mark_connections(
    top: Any, bottom: Any, cells: list[Cell], x_of: Callable[[Cell], float]
) -> None:
    """A dotted line where the next load has another number of connections."""
    for before, after in itertools.pairwise(cells):
        if before.connections != after.connections and x_of(before) != x_of(after):
            x = (x_of(before) * x_of(after)) ** 0.5
            for axis in (top, bottom):
                axis.axvline(x, color="0.3", linestyle=":", linewidth=1)
            top.annotate(
                f"{before.connections} → {after.connections} connections",
                (x, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=7,
            )


def _latency_cdf(plt: Any, summary: Summary, servers: list[Server], cells: list[Cell]) -> Any:
    """The latency distribution on ``cells`` (a row each), a line a server:
    each percentile the median over the repetitions."""
    groups, everywhere = _panels(servers)
    figure, axes = plt.subplots(
        len(cells),
        len(groups),
        figsize=(4.2 * len(groups), 4 * len(cells)),
        sharey=True,
        squeeze=False,
    )
    shares = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]
    for row, cell in enumerate(cells):
        for column, (name, members) in enumerate(groups):
            axis = axes[row][column]
            drawn = [(server, _style(index)) for index, server in enumerate(members)]
            drawn += [(server, _FLOOR_STYLE) for server in everywhere]
            for server, style in drawn:
                entry = _entry(summary, cell, server)
                if entry is None:
                    continue
                latency = entry["latency_us"]
                keys = [key for key in LATENCY_KEYS if key in latency and key != "max"]
                label = server.label + (" (saturated)" if entry.get("saturated") else "")
                axis.plot(
                    [latency[key] / 1000 for key in keys],
                    [_share(key) for key in keys],
                    label=label,
                    markersize=4,
                    linewidth=1,
                    **style,
                )
            axis.set_xscale("log")
            axis.set_yscale("logit")
            axis.set_yticks(shares, [f"{share:.1%}".replace(".0%", "%") for share in shares])
            axis.minorticks_off()
            axis.grid(True, which="both", alpha=0.3)
            axis.set_title(f"{cell.name}: {name}", fontsize=9)
            axis.set_xlabel("latency (ms)")
            _legend(axis, loc="lower right")
        axes[row][0].set_ylabel("share of messages at or below")
    figure.tight_layout()
    return figure


def _share(key: str) -> float:
    """The share of messages a percentile key stands for (``p999``: 0.999)."""
    digits = key[1:]
    return int(digits) / 10 ** len(digits) if len(digits) > 2 else int(digits) / 100


def _cpu_split(plt: Any, summary: Summary, servers: list[Server], cell: Cell) -> Any:
    """The server CPU per message on ``cell``, a bar a server, in user space and
    in the kernel (or whole, from a run that did not split it); None if no
    server has the figure."""
    entries = [
        (server.label, entry) for server in servers if (entry := _entry(summary, cell, server))
    ]
    if not entries:
        return None
    figure, axis = plt.subplots(figsize=(10, 0.35 * len(entries) + 1.5))
    labels = [label for label, _ in entries]
    if all(entry.get("user_us_per_message") for _, entry in entries):
        user = [entry["user_us_per_message"] for _, entry in entries]
        system = [entry["system_us_per_message"] for _, entry in entries]
        axis.barh(labels, user, label="user space", color="tab:blue")
        axis.barh(labels, system, left=user, label="kernel", color="tab:orange")
        axis.legend(loc="lower right")
    else:
        total = [entry["server_cpu_us_per_message"] for _, entry in entries]
        axis.barh(labels, total, color="tab:blue")
    axis.invert_yaxis()
    # The run's own connections: a quick run has fewer than a full one.
    axis.set_xlabel(f"server CPU µs per message (echo 1 KiB, {cell.connections} connections)")
    axis.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
