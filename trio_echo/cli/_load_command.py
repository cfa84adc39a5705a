# `trio-echo client --repeat N`: a load run, its figures printed as text or
# JSON, and an exit status named by its first failure.
from __future__ import annotations

import json

import trio

from .._status import ExitStatus, fail
from .._tls import TLSFileError, certificate_failure
from ..client._endpoint import HandshakeError
from ..client._load import run_load
from ..client._replies import EchoMismatchError
from ..protocol import RemoteProtocolError
from ._client_options import ClientOptions

__all__ = ["run_load_command"]


def run_load_command(options: ClientOptions) -> int:
    """Run a load run as the command line asked; return the exit status."""
    repeat = options.repeat
    assert repeat is not None, "a load run has --repeat"
    if options.message or options.file is not None:
        return fail(
            "client: a load run (--repeat) makes its own messages; give no MESSAGE or --file",
            ExitStatus.USAGE,
        )
    try:
        endpoint = options.endpoint()
    except TLSFileError as error:
        return fail(f"client: {error}", ExitStatus.USAGE)
    report = trio.run(
        lambda: run_load(
            endpoint.host,
            endpoint.port,
            unix=endpoint.unix,
            tls=endpoint.tls,
            server_name=endpoint.server_name,
            mode=options.mode,
            repeat=repeat,
            concurrency=options.concurrency,
            size=options.size,
            timeout=options.timeout,
        )
    )
    summary = report.summary()
    if not report.messages:
        summary["latency_ms"] = None  # no message completed: there is no latency
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        latency = summary["latency_ms"]
        print(
            f"{report.mode} mode, {report.size} B messages, {report.concurrency} connections: "
            f"{report.messages} echoed, {report.errors} errors in {report.seconds:.2f} s"
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
    if report.errors:
        return fail(
            f"client: {report.errors} of {report.errors + report.messages} messages failed;"
            f" the first: {report.first_error}",
            _status_of(report.first_failure),
        )
    return ExitStatus.OK


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
