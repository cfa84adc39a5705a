# `trio-echo client --repeat N`: a load run, its figures printed as text or
# JSON, and an exit status named by its first failure. On a terminal, its
# figures so far are shown on one line while it runs; interrupted (Ctrl-C),
# it prints the figures of what it did.
from __future__ import annotations

import json
import random
import sys

import trio

from .._status import ExitStatus, fail
from .._tls import TLSFileError, certificate_failure
from ..client._endpoint import HandshakeError
from ..client._load import LoadReport, LoadRun
from ..client._replies import EchoMismatchError
from ..protocol import RemoteProtocolError, rules_of
from ._client_options import ClientOptions
from ._client_output import LoadProgress

__all__ = ["run_load_command"]


def run_load_command(options: ClientOptions) -> int:
    """Run a load run as the command line asked; return the exit status."""
    repeat = options.repeat
    assert repeat is not None, "a load run has --repeat"
    if options.message or options.file is not None:
        return fail(
            "a load run (--repeat) makes its own messages; give no MESSAGE or --file",
            ExitStatus.USAGE,
        )
    try:
        endpoint = options.endpoint()
    except TLSFileError as error:
        return fail(str(error), ExitStatus.USAGE)
    run = LoadRun(
        endpoint,
        rules_of(options.mode),
        random.Random(0).randbytes(options.size),
        options.timeout,
        repeat=repeat,
        concurrency=options.concurrency,
    )
    progress = LoadProgress(run) if sys.stderr is not None and sys.stderr.isatty() else None
    interrupted = False
    try:
        trio.run(_run, run, progress)
    except* KeyboardInterrupt:  # alone, or from inside a nursery
        interrupted = True
    finally:
        if progress is not None:
            progress.finish()
    report = run.report()
    _print(report, as_json=options.json)
    if interrupted:
        return fail(
            f"interrupted after {report.messages + report.errors:,} of {repeat:,} messages",
            ExitStatus.INTERRUPTED,
        )
    if report.errors:
        return fail(
            f"{report.errors} of {report.errors + report.messages} messages failed"
            f" ({_kinds(report)}); the first: {report.first_error}",
            _status_of(report.first_failure),
        )
    return ExitStatus.OK


async def _run(run: LoadRun, progress: LoadProgress | None) -> None:
    if progress is None:
        await run.run()
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress.run)
        await run.run()
        nursery.cancel_scope.cancel()


def _kinds(report: LoadReport) -> str:
    """The failures by kind: ``3 refused, 2 reset``."""
    return ", ".join(f"{count} {kind}" for kind, count in report.errors_by_kind.items())


def _print(report: LoadReport, *, as_json: bool) -> None:
    """Print the figures of ``report`` on standard output, as text or JSON."""
    summary = report.summary()
    if not report.messages:
        summary["latency_ms"] = None  # no message completed: there is no latency
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    latency = summary["latency_ms"]
    errors = f"{report.errors} errors" + (f" ({_kinds(report)})" if report.errors else "")
    print(
        f"{report.mode} mode, {report.size} B messages, {report.concurrency} connections: "
        f"{report.messages} echoed, {errors} in {report.seconds:.2f} s"
    )
    if isinstance(latency, dict):
        print(
            f"throughput: {report.messages_per_second:,.0f} messages/s, "
            f"{report.megabytes_per_second:,.2f} MB/s\n"
            f"latency (ms): p50 {latency['p50']}, p90 {latency['p90']}, "
            f"p99 {latency['p99']}, max {latency['max']}"
        )
    else:
        print("no message completed: no throughput or latency to show")


def _status_of(failure: BaseException | None) -> ExitStatus:
    """The exit status for a load run, by the cause of its first failure."""
    if failure is not None and certificate_failure(failure):
        return ExitStatus.CERTIFICATE
    for kind, status in (
        (HandshakeError, ExitStatus.RESET),
        (EchoMismatchError, ExitStatus.MISMATCH),
        (trio.TooSlowError, ExitStatus.TIMEOUT),
        (trio.BrokenResourceError, ExitStatus.RESET),
        (RemoteProtocolError, ExitStatus.PROTOCOL),
        (OSError, ExitStatus.REFUSED),
    ):
        if isinstance(failure, kind):
            return status
    return ExitStatus.MISMATCH
