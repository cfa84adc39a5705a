"""What every measuring tool's command line shares.

Each tool (``harness.py``, ``floor.py``, ``tls.py``, ``framer.py``,
``work.py``) measures, writes what it measured to a results file, by
default in ``benchmarks/.cache/results/``, and with ``--commit-results``
writes the committed one in ``benchmarks/results/`` instead, then the
pages generated from the committed results. ``--quick`` runs the whole
path, short; ``--report`` measures nothing and writes the pages again. A
committed file is a full run: ``--commit-results`` refuses ``--quick`` and
whatever else narrows the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.build import CACHE

COMMITTED = Path(__file__).resolve().parent / "results"
"""Where the committed results are, and what the pages are written from."""

SCRATCH = CACHE / "results"
"""Where a run's results go unless they are committed."""


@dataclass(frozen=True)
class Tool:
    """A measuring tool's name and its results file.

    Attributes:
        name: How it names itself in what it prints: ``floor``.
        results: Its results file's name, in `COMMITTED` or `SCRATCH`
            (``floor.json``); empty for a tool that writes a folder.
    """

    name: str
    results: str

    @property
    def committed(self) -> Path:
        """The committed results file."""
        return COMMITTED / self.results

    @property
    def scratch(self) -> Path:
        """Where a run's results go by default."""
        return SCRATCH / self.results

    def parser(
        self,
        description: str,
        *,
        quick: str | None = "the whole path, short",
        report: str | None = "measure nothing: write the pages again from the committed results",
        commit: str | None = None,
    ) -> argparse.ArgumentParser:
        """A parser with the flags every tool shares.

        Args:
            description: What the tool does (its docstring's first line).
            quick: ``--quick``'s help; None for a tool without it.
            report: ``--report``'s help; None for a tool without it.
            commit: ``--commit-results``'s help, if it says more than the
                usual.
        """
        parser = argparse.ArgumentParser(description=description)
        if quick is not None:
            parser.add_argument("--quick", action="store_true", help=quick)
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--out",
            type=Path,
            default=self.scratch,
            help=f"where the results go (default: {self.scratch})",
        )
        where.add_argument(
            "--commit-results",
            action="store_true",
            help=commit or f"write {self.committed} and the pages written from it (a full run)",
        )
        if report is not None:
            parser.add_argument("--report", action="store_true", help=report)
        return parser

    def full_run_only(
        self, parser: argparse.ArgumentParser, args: argparse.Namespace, **narrowing: object
    ) -> None:
        """Refuse ``--commit-results`` with ``--quick`` or any flag given in
        ``narrowing`` (by its name, with its value: given when truthy)."""
        given = [name for name, value in narrowing.items() if value]
        if getattr(args, "quick", False):
            given.insert(0, "quick")
        if args.commit_results and given:
            flags = " or ".join("--" + name.replace("_", "-") for name in given)
            parser.error(f"--commit-results writes the full run: no {flags}")

    def out(self, args: argparse.Namespace) -> Path:
        """Where this run's results go."""
        return self.committed if args.commit_results else Path(args.out)

    def write(self, document: dict[str, Any], path: Path) -> Path:
        """Write ``document`` as the results file ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
        return path

    def publish(self) -> list[Path]:
        """Write the pages, and the report, from the committed results; say which."""
        from benchmarks.pages import Results, write_committed

        written = write_committed(Results.load(COMMITTED), COMMITTED)
        self.say("wrote " + (", ".join(str(path) for path in written) or "nothing new"))
        return written

    def say(self, text: str) -> None:
        """One line on standard error, with the tool's name."""
        print(f"{self.name}: {text}", file=sys.stderr, flush=True)
