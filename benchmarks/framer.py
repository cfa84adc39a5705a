"""Throughput of the CountFramer alone, with no I/O.

Reports, as medians over repetitions (with the spread as min-max):
- MB/s framing large messages fed in 64 KiB chunks (the server's read size),
  where whole chunks pass through without a copy;
- MB/s framing 64 KiB messages whose chunks each straddle two messages, so
  that every payload piece is one slice (one copy);
- messages/s framing small pipelined messages fed in 64 KiB chunks;
- messages/s framing small messages fed one message per chunk;
- MB/s feeding 1 MiB one byte at a time (linear cost, not quadratic).

Run: ``python benchmarks/framer.py`` (``--quick`` for a short run, ``--json``
for machine-readable output; its results go to
``benchmarks/.cache/results/framer.json``, or with ``--commit-results`` to
``benchmarks/results/framer.json``, from which the comparison page's table
is written: see benchmarks/pages.py and benchmarks/tool.py).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tool import Tool
from trio_echo import NEED_DATA, CountFramer, EndOfMessage, encode_message

if TYPE_CHECKING:
    from benchmarks.servers import Server

CHUNK = 64 * 1024


def chunked(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def run_framer(chunks: list[bytes]) -> int:
    """Frame ``chunks``; return the number of messages seen."""
    framer = CountFramer()
    messages = 0
    receive_data, next_event = framer.receive_data, framer.next_event
    for chunk in chunks:
        receive_data(chunk)
        while (event := next_event()) is not NEED_DATA:
            if isinstance(event, EndOfMessage):
                messages += 1
    return messages


def measure(label: str, unit: str, work: Callable[[], float], repeat: int) -> dict[str, object]:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        amount = work()
        rates.append(amount / (time.perf_counter() - start))
    return {
        "case": label,
        "unit": unit,
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "repeat": repeat,
    }


def server() -> Server:
    """What the framer's figures measure, as `benchmarks.provenance` hashes it:
    trio_echo's package (the framer is its ``CountFramer``)."""
    from dataclasses import replace

    from benchmarks.servers import SERVERS

    return replace(SERVERS["trio-echo"], name="framer", label="the framer alone")


TOOL = Tool("framer", "framer.json")


def main(argv: list[str] | None = None) -> None:
    parser = TOOL.parser(__doc__.splitlines()[0], quick="smaller inputs, fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    TOOL.full_run_only(parser, args)
    if args.report:
        TOOL.publish()
        return
    repeat = 3 if args.quick else 7
    big_size = 8 if args.quick else 64  # MiB in one message
    small_count = 20_000 if args.quick else 200_000

    big = encode_message(bytes(big_size * 1024 * 1024))
    big_chunks = chunked(big, CHUNK)
    small = [encode_message(b"x" * 100) for _ in range(small_count)]
    small_coalesced = chunked(b"".join(small), CHUNK)
    trickle = chunked(encode_message(bytes(1024 * 1024)), 1)
    # Every chunk straddles two messages, so every payload piece is a slice.
    straddling_count = 128 if args.quick else 1024
    straddling = chunked(
        b"".join(encode_message(bytes(CHUNK)) for _ in range(straddling_count)), CHUNK
    )
    straddling_bytes = sum(map(len, straddling))

    def big_messages() -> float:
        assert run_framer(big_chunks) == 1
        return len(big) / 1e6

    def small_coalesced_messages() -> float:
        assert run_framer(small_coalesced) == small_count
        return small_count

    def small_messages_one_per_chunk() -> float:
        assert run_framer(small) == small_count
        return small_count

    def straddling_messages() -> float:
        assert run_framer(straddling) == straddling_count
        return straddling_bytes / 1e6

    def one_byte_at_a_time() -> float:
        assert run_framer(trickle) == 1
        return len(trickle) / 1e6

    results = [
        measure(f"{big_size} MiB message, 64 KiB chunks", "MB/s", big_messages, repeat),
        measure(
            "64 KiB messages, chunks straddling messages",
            "MB/s",
            straddling_messages,
            repeat,
        ),
        measure(
            "100 B messages, pipelined in 64 KiB chunks",
            "messages/s",
            small_coalesced_messages,
            repeat,
        ),
        measure(
            "100 B messages, one per chunk", "messages/s", small_messages_one_per_chunk, repeat
        ),
        measure("1 MiB message, one byte per chunk", "MB/s", one_byte_at_a_time, repeat),
    ]
    from benchmarks.provenance import code_hashes, environment

    document = {"environment": environment(), "code": code_hashes([server()]), "results": results}
    TOOL.write(document, TOOL.out(args))
    if args.commit_results:
        TOOL.publish()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'case':<46} {'median':>12} {'min-max':>21}  unit")
    for r in results:
        digits = 0 if float(r["median"]) >= 100 else 2  # type: ignore[arg-type]
        spread = f"{r['min']:,.{digits}f}-{r['max']:,.{digits}f}"
        print(f"{r['case']:<46} {r['median']:>12,.{digits}f} {spread:>21}  {r['unit']}")


if __name__ == "__main__":
    main()
