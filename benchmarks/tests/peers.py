"""The servers the benchmarks compare, as ``benchmarks/servers.py`` lists them
when run as a program (the list a reader of the benchmarks sees)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass

from tests.support.processes import ROOT


@dataclass(frozen=True)
class Peer:
    """A server the benchmarks compare, as ``benchmarks/servers.py`` lists it."""

    name: str
    label: str
    modes: tuple[str, ...]
    command: tuple[str, ...]  # with {port} and {mode} to fill in
    missing: str | None  # why it cannot run here, if it cannot


@functools.cache
def peers() -> dict[str, Peer]:
    """Every peer server, by name."""
    listing = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "servers.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return {
        entry["name"]: Peer(
            name=entry["name"],
            label=entry["label"],
            modes=tuple(entry["modes"]),
            command=tuple(entry["command"]),
            missing=entry["missing"],
        )
        for entry in json.loads(listing)
    }
