"""Sessions: the tests (with coverage), lint, type checking, the benchmarks'
own tests, the counted-work guard, the documentation site, and the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# The sans-IO core, all of it, must be covered branch for branch.
SANS_IO_MODULES = "trio_echo/protocol/*"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the product's tests (tests/), a worker per CPU, and report branch coverage."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--numprocesses=auto",
        "--dist=worksteal",
        "--cov",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
    )
    if not session.posargs:
        # The gate is the whole suite's: a subset (-- -k NAME) covers less.
        session.run("coverage", "report", f"--include={SANS_IO_MODULES}", "--fail-under=100")


@nox.session
def benchmark_tests(session: nox.Session) -> None:
    """Run the benchmarks' own tests (benchmarks/tests/), a worker per CPU.

    The harness, the pages, the counted work, and every compared server held
    to the conformance cases. Not among the default sessions: they test the
    benchmarks, not trio_echo (CI runs them after the default sessions).
    """
    session.install("-e", ".[test,bench]")
    session.run(
        "pytest",
        "--numprocesses=auto",
        "--dist=worksteal",
        "benchmarks/tests",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff."""
    session.install(".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict."""
    session.install("-e", ".[typecheck]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html, warnings as errors.

    Every cross-reference is checked (nitpicky, in docs/conf.py); the
    inventories it links to are shipped in docs/_inventories/, so the build
    fetches nothing.
    """
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build",
        "--fail-on-warning",
        "--nitpicky",
        "--fresh-env",
        "--builder",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session
def work_guard(session: nox.Session) -> None:
    """Count trio_echo's work again; fail when a load takes 3% more than committed.

    Instructions under valgrind, not time: the count does not move with the
    machine (benchmarks/work.py; about four minutes here).
    """
    session.install("-e", ".[test,bench]")
    session.run("python", "benchmarks/work.py", "--check", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks: the framer alone, then every server on every load.

    Pass ``-- --quick`` for a short run of the whole path. Results go to
    benchmarks/.cache/results/; ``-- --commit-results`` (a full run) writes
    the committed report in benchmarks/results/ instead.
    """
    session.install("-e", ".[test,bench]")
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run("python", "benchmarks/framer.py", *quick)
    session.run("python", "benchmarks/harness.py", "--conformance", *session.posargs)
