"""Counted work (benchmarks/work.py): intervals by difference, system calls
split by time, the flags, the guard, and figures tied to the code they
measured."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks import work
from benchmarks.provenance import describe_stale, stale
from benchmarks.servers import SERVERS


class FakeDriver:
    """Rounds that take no time: what `work.repetition` asks of a driver."""

    def __init__(self, load: work.Load) -> None:
        self.load = load
        self.rounds: list[int] = []

    def busy(self, rounds: int) -> work.Busy:
        self.rounds.append(rounds)
        return work.Busy(rounds * self.load.pipeline, seconds=0.0, p90_us=100.0 * len(self.rounds))

    def units(self, messages: int) -> int:
        return messages if self.load.unit == "message" else messages // self.load.pipeline


def test_a_repetition_counts_n_rounds_by_difference_and_subtracts_the_idle_interval():
    load = work.LOADS["count 100 B"]
    driver = FakeDriver(load)
    start_up, per_round, idle = 1_000_000, 250, 7
    marks = iter(
        [
            Counter(Ir=start_up + 10 * per_round),  # N rounds, and what opening costs
            Counter(Ir=start_up + 20 * per_round + idle),  # 2N rounds, and the idle timers
            Counter(Ir=idle),
        ]
    )
    counted, units, p90 = work.repetition(driver, lambda: next(marks), 10)  # type: ignore[arg-type]
    assert driver.rounds == [10, 20]
    assert (counted["Ir"], units) == (10 * per_round, 10)
    assert p90 == 200.0  # the worse of the two busy intervals


def test_a_framed_round_is_pipeline_messages():
    load = work.LOADS["framed 100 B x16"]
    driver = FakeDriver(load)
    marks = iter([Counter(Ir=0), Counter(Ir=16_000), Counter()])
    counted, units, _ = work.repetition(driver, lambda: next(marks), 5)  # type: ignore[arg-type]
    assert units == 5 * 16
    assert counted["Ir"] / units == 200


def test_system_calls_are_counted_by_their_start_between_two_instants(tmp_path: Path):
    trace = tmp_path / "strace"
    trace.write_text(
        "\n".join(
            [
                "100 10.000100 epoll_wait(3, [], 1, -1) = 1",
                "100 10.500000 recvfrom(7, <unfinished ...>",
                "101 10.600000 futex(0x1, FUTEX_WAKE, 1) = 0",
                '100 10.700000 <... recvfrom resumed>"ab", 65536, 0, NULL, NULL) = 2',
                '100 11.000000 sendto(7, "ab", 2, 0, NULL, 0) = 2',
                "100 11.500000 +++ exited with 0 +++",
                "100 12.000000 --- SIGTERM {si_signo=SIGTERM} ---",
            ]
        )
        + "\n"
    )
    assert work.syscalls_between(trace, 10.0, 11.0) == Counter(
        epoll_wait=1, recvfrom=1, futex=1
    )  # the resumed half is the same call; sendto began at 11.0, the end
    assert work.syscalls_between(trace, 11.0, 13.0) == Counter(sendto=1)


def test_counts_that_disagree_or_rounds_slower_than_the_pace_are_flagged():
    trio_echo = next(s for s in work.subjects(work.LOADS["count 100 B"]) if s.name == "trio-echo")
    assert work.flag(trio_echo, [100_000, 101_000], [900.0, 1_000.0], pace=0.01) == ""
    assert "differ by 3.0%" in work.flag(trio_echo, [100_000, 103_000], [900.0], pace=0.01)
    assert "p90 12.0 ms, paced 10 ms" in work.flag(trio_echo, [100_000, 100_000], [12_000.0], 0.01)
    info = next(s for s in work.subjects(work.LOADS["count 100 B"]) if s.name == "trio-echo-info")
    assert "log writer" in work.flag(info, [100_000, 110_000], [900.0], pace=0.01)


def test_every_server_of_the_comparison_is_counted_on_each_of_its_modes():
    for load in work.LOADS.values():
        if load.tls:
            continue
        counted = {subject.name for subject in work.subjects(load)}
        expected = {
            server.name
            for server in SERVERS.values()
            if load.mode in server.modes
            and server.missing() is None
            and server.name != "trio-echo-baseline"
        }
        assert expected <= counted, load.name
    assert "trio-echo-info" in {s.name for s in work.subjects(work.LOADS[work.LOG_LOAD])}
    assert "floor" in {s.name for s in work.subjects(work.LOADS["echo 1 KiB"])}


def test_only_the_forking_server_is_counted_with_its_children():
    forking = [s.name for s in work.subjects(work.LOADS["count 100 B"]) if s.forks]
    assert forking == ["forking"]
    plain = work.Callgrind(Path("/tmp"), forks=False).command(["server"])
    children = work.Callgrind(Path("/tmp"), forks=True).command(["server"])
    assert "--trace-children=yes" not in plain
    assert {"--trace-children=yes", "--zero-before=PyOS_AfterFork_Child"} <= set(children)
    assert plain[:2] == ["env", "PYTHONHASHSEED=0"]


def committed(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"figures": figures}


def test_the_guard_fails_on_three_percent_more_work_counted_twice(
    monkeypatch: pytest.MonkeyPatch,
):
    before = {
        "count 100 B": {"trio-echo": {"label": "trio_echo", "instructions": [100_000, 100_000]}}
    }
    runs: list[list[int]] = []

    def counting(*counts: list[int]) -> None:
        pending = list(counts)

        def run(loads: list[work.Load], names: set[str], jobs: int) -> dict[str, Any]:
            assert "trio-echo" in names
            instructions = pending.pop(0)
            runs.append(instructions)
            return {
                "count 100 B": {"trio-echo": {"label": "trio_echo", "instructions": instructions}}
            }

        runs.clear()
        monkeypatch.setattr(work, "run", run)

    counting([102_900, 104_000])  # the lower count decides: within the guard
    assert work.check(committed(before), [work.LOADS["count 100 B"]], jobs=1) == []
    assert len(runs) == 1
    counting([103_100, 103_200], [100_500, 100_400])  # over once, within when counted again
    assert work.check(committed(before), [work.LOADS["count 100 B"]], jobs=1) == []
    assert len(runs) == 2
    counting([103_100, 103_200], [103_300, 103_900])  # over twice: more work
    [failure] = work.check(committed(before), [work.LOADS["count 100 B"]], jobs=1)
    assert "trio_echo" in failure
    assert "103,300 instructions per connection, +3.3% on the committed 100,000" in failure
    assert "(the first count: 103,100 instructions per connection, +3.1%" in failure


def test_the_committed_counts_were_made_by_the_code_the_servers_run_today():
    """A change to a server's code (for trio_echo, anything in its package)
    needs its figures counted again: ``python benchmarks/work.py
    --commit-results``, or ``--servers`` and merging, takes minutes."""
    document = json.loads(work.TOOL.committed.read_text())
    servers = work.counted_servers()
    changed = stale(document["code"], servers)
    assert not changed, describe_stale(changed, servers)
    counted = {server for row in document["figures"].values() for server in row}
    assert counted == set(document["code"])


def test_the_committed_counts_cover_every_load_and_repeat_each_figure():
    document = json.loads(work.TOOL.committed.read_text())
    assert set(document["figures"]) == set(work.LOADS)
    for load, row in document["figures"].items():
        assert {subject.name for subject in work.subjects(work.LOADS[load])} == set(row), load
        for server, entry in row.items():
            assert "error" not in entry, (load, server, entry.get("error"))
            assert len(entry["instructions"]) == 2
            assert min(entry["instructions"]) > 0


needs_valgrind = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("valgrind", "callgrind_control", "strace", "cc")),
    reason="counting needs valgrind, strace and a C compiler (apt-get install valgrind strace gcc)",
)


@needs_valgrind
def test_the_c_server_is_counted_under_callgrind_and_strace(tmp_path: Path):
    load = work.Load("count 100 B", "count", 100, "connection", n=20)
    [subject] = [s for s in work.subjects(load) if s.name == "c-epoll"]
    rig = work.Rig(work.compile_c(work.LOADGEN_SOURCE), None, None, None)
    entry = work.count(subject, load, rig)
    # Per connection the C server accepts, reads, writes and closes: a few
    # thousand instructions, and at least those four system calls.
    assert all(500 < count < 100_000 for count in entry["instructions"]), entry
    for by_name in entry["syscalls_by_name"]:
        assert by_name.get("close", 0) >= 1, by_name
        assert sum(by_name.get(name, 0) for name in ("accept", "accept4")) >= 1, by_name
    assert all(calls >= 4 for calls in entry["syscalls"]), entry


def test_servers_counted_again_take_the_place_of_their_committed_figures():
    committed_document = {
        "environment": {"commit": "a" * 40},
        "code": {"trio-echo": "old", "floor": "floor-hash"},
        "minutes": 30.0,
        "figures": {
            "count 100 B": {
                "trio-echo": {"instructions": [1, 1]},
                "floor": {"instructions": [2, 2]},
            }
        },
    }
    update = {
        "environment": {"commit": "b" * 40},
        "code": {"trio-echo": "new", "floor": "floor-now"},
        "minutes": 2.0,
        "figures": {"count 100 B": {"trio-echo": {"instructions": [3, 3]}}},
    }
    merged = work.merge(committed_document, update)
    assert merged["figures"]["count 100 B"] == {
        "trio-echo": {"instructions": [3, 3]},
        "floor": {"instructions": [2, 2]},
    }
    assert list(merged["figures"]["count 100 B"]) == ["trio-echo", "floor"]  # the tool's order
    assert merged["code"] == {"trio-echo": "new", "floor": "floor-hash"}  # only what was counted
    assert merged["environment"] == {"commit": "a" * 40}
    assert merged["updates"] == [
        {
            "servers": ["trio-echo"],
            "loads": ["count 100 B"],
            "minutes": 2.0,
            "environment": {"commit": "b" * 40},
        }
    ]
    assert committed_document["code"]["trio-echo"] == "old"  # not changed in place


def test_an_unknown_server_or_load_is_one_sentence(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stopped:
        work.main(["--servers", "trio-echo,nope"])
    assert stopped.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: no server named nope (there are: twisted-original," in said


def test_a_load_whose_name_holds_a_comma_can_be_chosen():
    known = list(work.LOADS)
    assert work._names("TLS, count 100 B,echo 1 KiB", known, "load") == [
        "TLS, count 100 B",
        "echo 1 KiB",
    ]
    assert work._names("count 100 B, TLS, count 100 B", known, "load") == [
        "count 100 B",
        "TLS, count 100 B",
    ]
    with pytest.raises(ValueError, match="no load named TLS"):
        work._names("TLS", known, "load")
