"""What every tool's summary is made of: runs grouped by load and server,
and each figure's median with its lowest and highest over the repetitions.

The harness (``reporting.summarise``), ``floor.py`` and ``tls.py`` each
summarise their runs with these two, then add what their own pages say
(ratios to the original, saturation, failed passes).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Spread:
    """A figure over repetitions: its median, lowest and highest.

    All three are None when no repetition measured it.
    """

    median: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        """The spread of the values measured (None is a repetition that was not)."""
        measured = [value for value in values if value is not None]
        if not measured:
            return cls(None, None, None)
        return cls(statistics.median(measured), min(measured), max(measured))

    def as_dict(self) -> dict[str, float | None]:
        """``{"median": ..., "min": ..., "max": ...}``, as the results files keep it."""
        return asdict(self)


def grouped(
    runs: Iterable[R], load: Callable[[R], str], server: Callable[[R], str]
) -> dict[str, dict[str, list[R]]]:
    """Runs by load, then by server, each list in the order the runs came."""
    groups: dict[str, dict[str, list[R]]] = {}
    for run in runs:
        groups.setdefault(load(run), {}).setdefault(server(run), []).append(run)
    return groups
