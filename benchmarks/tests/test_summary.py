"""The pieces every tool's summary and pages are made of."""

from __future__ import annotations

from benchmarks.reporting import table
from benchmarks.summary import Spread, grouped


def test_a_spread_is_the_median_lowest_and_highest_of_what_was_measured() -> None:
    assert Spread.of([3.0, None, 1.0, 10.0]) == Spread(median=3.0, min=1.0, max=10.0)
    assert Spread.of([2.0, 4.0]).median == 3.0
    assert Spread.of([None, None]) == Spread(None, None, None)
    assert Spread.of([]).as_dict() == {"median": None, "min": None, "max": None}


def test_runs_are_grouped_by_load_then_server_in_their_order() -> None:
    runs = [("echo", "a", 1), ("count", "b", 2), ("echo", "a", 3), ("echo", "b", 4)]
    groups = grouped(runs, lambda run: run[0], lambda run: run[1])
    assert list(groups) == ["echo", "count"]
    assert groups["echo"] == {"a": [runs[0], runs[2]], "b": [runs[3]]}
    assert groups["count"] == {"b": [runs[1]]}


def test_a_table_is_githubs_markdown_with_its_cells_as_written() -> None:
    lines = table(["server", "msg/s"], [["trio_echo", "1,000 [900 to 1,100]"], ["C", "05"]])
    assert lines[0] == "| server | msg/s |"
    assert set(lines[1]) <= {"|", "-", ":"}
    assert lines[2] == "| trio_echo | 1,000 [900 to 1,100] |"
    assert lines[3] == "| C | 05 |"  # not read as the number 5, nor padded
    assert len(lines) == 4
