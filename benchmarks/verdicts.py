"""Verdicts: which of two servers did better on a load, and whether a target
is met, from the repetitions in which both were measured.

The tools measure every server on every load in several interleaved
repetitions, so that a drift of the shared machine weighs on the servers of
one repetition alike. The lowest-to-highest ranges of two servers do not
use that pairing: one slow repetition widens a range until it overlaps
another server's, however large the gap between the two in every other
repetition. A verdict compares the two repetition by repetition instead:

- a server LEADS another when it did better in at least `SHARE` of the
  repetitions in which both have a figure (4 of 5, 6 of 7);
- otherwise the pair is NOT DECIDED, said with its count ("3 of 5");
- with fewer than `FEWEST` such repetitions there is no verdict.

Each verdict carries its count and the median of the per-repetition ratios.
A target (benchmarks/floor.py) is judged alike: met when its value meets
the goal in at least `SHARE` of the repetitions, not met when it misses in
at least as many, and not decided otherwise.

A counted figure (an instruction count, which does not move between runs)
decides outright: one paired measurement is enough, and every pair must
agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

SHARE = Fraction(4, 5)
"""The share of the paired repetitions a server must win to lead."""

FEWEST = 2
"""The fewest paired repetitions that can give a verdict."""


def needed(count: int) -> int:
    """The wins that decide among ``count`` repetitions: `SHARE` of them,
    rounded up (4 of 5, 6 of 7, 2 of 2)."""
    return math.ceil(SHARE * count)


def by_repetition(figures: Iterable[tuple[int, float]]) -> dict[int, float]:
    """One figure per repetition from ``(repetition, figure)`` pairs: the mean
    of a repetition's figures when it has several."""
    grouped: dict[int, list[float]] = {}
    for repetition, figure in figures:
        grouped.setdefault(repetition, []).append(figure)
    return {repetition: statistics.fmean(values) for repetition, values in sorted(grouped.items())}


@dataclass(frozen=True)
class Verdict:
    """Two servers compared on one load, one repetition at a time.

    Attributes:
        one: The first server's name, as the text says it.
        other: The second server's.
        pairs: ``(one's figure, other's figure)`` in each repetition where
            both have one.
        lower_is_better: Whether the smaller figure is the better one.
        outright: Whether the figures are counted, not timed: then one pair
            decides, and every pair must agree.
    """

    one: str
    other: str
    pairs: tuple[tuple[float, float], ...]
    lower_is_better: bool
    outright: bool = False

    @property
    def count(self) -> int:
        """The paired repetitions."""
        return len(self.pairs)

    @property
    def wins(self) -> int:
        """The paired repetitions in which ``one`` did better."""
        return sum(1 for mine, theirs in self.pairs if self._better(mine, theirs))

    @property
    def losses(self) -> int:
        """The paired repetitions in which ``other`` did better."""
        return sum(1 for mine, theirs in self.pairs if self._better(theirs, mine))

    def _better(self, figure: float, than: float) -> bool:
        return figure < than if self.lower_is_better else figure > than

    @property
    def ratio(self) -> float | None:
        """The median of ``one``'s figure over ``other``'s, pair by pair
        (None if no pair has a ratio)."""
        ratios = [mine / theirs for mine, theirs in self.pairs if theirs]
        return statistics.median(ratios) if ratios else None

    @property
    def enough(self) -> bool:
        """Whether there are pairs enough for a verdict."""
        return self.count >= (1 if self.outright else FEWEST)

    @property
    def leader(self) -> str | None:
        """Who leads: ``one``, ``other``, or None when it is not decided."""
        if not self.enough:
            return None
        wanted = self.count if self.outright else needed(self.count)
        if self.wins >= wanted:
            return self.one
        if self.losses >= wanted:
            return self.other
        return None

    def reversed(self) -> Verdict:
        """The same verdict, said from ``other``'s side."""
        return Verdict(
            self.other,
            self.one,
            tuple((theirs, mine) for mine, theirs in self.pairs),
            self.lower_is_better,
            self.outright,
        )

    def tally(self) -> str:
        """The count from ``one``'s side, the larger way round: ``better in 5
        of 5 paired repetitions``, ``worse in 3 of 5 paired repetitions``."""
        what = "counted measurement" if self.outright else "paired repetition"
        if not self.enough:
            return f"{self.count} {what}{'s' * (self.count != 1)}, too few for a verdict"
        better = self.wins >= self.losses
        won = self.wins if better else self.losses
        return f"{'better' if better else 'worse'} in {won} of {self.count} {what}s"

    def outcome(self) -> str:
        """`tally`, with ``: not decided`` when the count falls short."""
        undecided = self.enough and self.leader is None
        return self.tally() + (": not decided" if undecided else "")

    def ratio_text(self) -> str:
        """``median ratio 1.21x`` (``ratio`` for counted figures), or ``""``."""
        if self.ratio is None:
            return ""
        return f"{'ratio' if self.outright else 'median ratio'} {self.ratio:.2f}x"

    def text(self) -> str:
        """The verdict in a sentence, from the side of the one that won more:
        ``A beat B in 5 of 5 paired repetitions, median ratio 2.38x``, with
        ``: not decided`` when the count falls short."""
        if not self.enough:
            return f"{self.one} and {self.other}: {self.tally()}"
        if self.losses > self.wins:
            return self.reversed().text()
        what = "counted measurement" if self.outright else "paired repetition"
        text = f"{self.one} beat {self.other} in {self.wins} of {self.count} {what}s"
        if self.ratio_text():
            text += f", {self.ratio_text()}"
        if self.leader is None:
            return text + ": not decided"
        return text + (": decided outright" if self.outright else "")


def compare(
    one: str,
    other: str,
    mine: Mapping[int, float],
    theirs: Mapping[int, float],
    *,
    lower_is_better: bool,
    outright: bool = False,
) -> Verdict:
    """``one`` against ``other`` from their figures by repetition; only the
    repetitions in which both have a figure count."""
    paired = tuple((mine[rep], theirs[rep]) for rep in sorted(mine.keys() & theirs.keys()))
    return Verdict(one, other, paired, lower_is_better, outright)


@dataclass(frozen=True)
class Goal:
    """A target's verdict: in how many repetitions its value met the goal.

    Attributes:
        met_in: The repetitions whose value met the goal.
        count: The repetitions with a value.
    """

    met_in: int
    count: int

    @property
    def met(self) -> bool | None:
        """True if met, False if not, None when not decided (or too few values)."""
        if self.count < FEWEST:
            return None
        if self.met_in >= needed(self.count):
            return True
        if self.count - self.met_in >= needed(self.count):
            return False
        return None

    @property
    def verdict(self) -> str:
        """``met``, ``not met``, ``not decided`` or ``no verdict`` (too few values)."""
        if self.count < FEWEST:
            return "no verdict"
        return {True: "met", False: "not met", None: "not decided"}[self.met]

    def tally(self) -> str:
        """``met in 5 of 7``."""
        return f"met in {self.met_in} of {self.count}"


def against_goal(values: Iterable[float], bound: float, *, at_most: bool) -> Goal:
    """How ``values`` (one a repetition) fare against ``<= bound`` (or ``>=``)."""
    values = list(values)
    met_in = sum(1 for value in values if (value <= bound if at_most else value >= bound))
    return Goal(met_in, len(values))
