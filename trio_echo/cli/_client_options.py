# What the client command is asked to do, as typed values. Each option is
# declared once, as the server's are (see protocol/_limits.py): the command
# line's flags, their --help lines and their readers are built from the
# declarations (cli/_settings.py).
from __future__ import annotations

import attrs

from .._ports import DEFAULT_PORT
from .._tls import client_context
from ..client._endpoint import Endpoint
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Mode
from ..protocol._declarations import documented, setting, settings

__all__ = ["LOAD_FLAGS", "LOAD_RUN", "TLS", "TLS_FLAGS", "ClientOptions"]

EXCHANGE = ""
"""The section of --help for one exchange: the command's own options."""

TLS = "TLS"
LOAD_RUN = "load run"


@documented
@attrs.frozen(kw_only=True)
class ClientOptions:
    """What the client command was asked to do, as typed values.

    The command line's defaults are these.
    """

    message: tuple[str, ...] = setting(
        (),
        converter=tuple,
        flag="MESSAGE",
        doc=(
            "the message to send, or - to read it from standard input; framed mode takes"
            " several and pipelines them on one connection"
        ),
        group=EXCHANGE,
        unit="messages",
    )
    file: str | None = setting(
        None, flag="--file", doc="send the contents of PATH", group=EXCHANGE, unit="path"
    )
    host: str = setting(
        "127.0.0.1",
        flag="--host",
        doc="the server's host, or HOST:PORT as the server prints it ([::1]:50007)",
        group=EXCHANGE,
        unit="host[:port]",
    )
    port: int = setting(
        DEFAULT_PORT, flag="--port", doc="the server's port", group=EXCHANGE, unit="port"
    )
    unix: str | None = setting(
        None,
        flag="--unix",
        doc="connect to the server's unix socket at PATH, instead of a host and a port",
        group=EXCHANGE,
        unit="path",
    )
    tls: bool = setting(
        False,
        flag="--tls",
        doc="speak TLS: the server's certificate must verify and carry the server's name",
        group=TLS,
        unit="switch",
    )
    cafile: str | None = setting(
        None,
        flag="--cafile",
        doc="trust the certificate authorities in FILE (PEM)",
        group=TLS,
        unit="file",
        default_text="the system's trust store",
    )
    server_name: str | None = setting(
        None,
        flag="--server-name",
        doc="the name the server's certificate must carry",
        group=TLS,
        unit="server name",
        default_text="the host; over {unix}, localhost",
    )
    cert: str | None = setting(
        None,
        flag="--cert",
        doc=(
            "present this client certificate (PEM) to a server that asks for one;"
            " the file may hold its key too"
        ),
        group=TLS,
        unit="file",
    )
    key: str | None = setting(
        None,
        flag="--key",
        doc="the client certificate's private key (PEM)",
        group=TLS,
        unit="file",
        default_text="in the {cert} file",
    )
    mode: Mode = setting(
        Mode.COUNT,
        converter=Mode,
        flag="--mode",
        doc="the server's mode",
        group=EXCHANGE,
        unit="choice",
        choices=tuple(mode.value for mode in Mode),
    )
    timeout: float = setting(
        60.0,
        flag="--timeout",
        doc="give up after this long; in a load run, per message",
        group=EXCHANGE,
        unit="seconds",
        positive=True,
    )
    max_message_size: int = setting(
        DEFAULT_MAX_MESSAGE_SIZE,
        flag="--max-message-size",
        doc=(
            "the longest message to send in count and framed mode (a server refuses one"
            " longer than its own), and the longest framed answer to take; in those modes"
            " input that is not a regular file (a pipe) is first copied to a temporary file"
            " in $TMPDIR (else /tmp), and refused once it is longer. In echo mode such input"
            " is sent as it is read, without a bound"
        ),
        group=EXCHANGE,
        unit="bytes",
        least=0,
    )
    lines: bool = setting(
        False,
        flag="--lines",
        doc=(
            "in framed mode, end each answer with a newline, as on a terminal (into a pipe"
            " or a file, the answers are written as they came, without one)"
        ),
        group=EXCHANGE,
        unit="switch",
    )
    quiet: bool = setting(
        False,
        flag="--quiet, -q",
        doc="do not write the echo to standard output (it is still checked)",
        group=EXCHANGE,
        unit="switch",
    )
    repeat: int | None = setting(
        None,
        flag="--repeat",
        doc="messages to send in all; without it, one exchange",
        group=LOAD_RUN,
        unit="count",
    )
    concurrency: int = setting(
        10,
        flag="--concurrency",
        doc="connections at once",
        group=LOAD_RUN,
        unit="count",
        least=1,
    )
    size: int = setting(
        100,
        flag="--size",
        doc=(
            "payload bytes per message, at most 1GiB; times {concurrency}, at most 4GiB"
            " (the bytes under way at once)"
        ),
        group=LOAD_RUN,
        unit="load size",
        least=1,
    )
    json: bool = setting(
        False, flag="--json", doc="print the figures as JSON", group=LOAD_RUN, unit="switch"
    )

    def endpoint(self) -> Endpoint:
        """Where the server is, and how to reach it; over TLS, with the context made.

        Raises:
            TLSFileError: If a TLS file cannot be used.
        """
        tls = client_context(self.cafile, self.cert, self.key) if self.tls else None
        return Endpoint(
            host=self.host, port=self.port, unix=self.unix, tls=tls, server_name=self.server_name
        )


def _in_group(group: str, but: str) -> tuple[str, ...]:
    return tuple(
        field.name
        for field, declared in settings(ClientOptions)
        if declared.group == group and field.name != but
    )


LOAD_FLAGS = _in_group(LOAD_RUN, but="repeat")
"""The options that only a load run takes: those of its section but --repeat."""

TLS_FLAGS = _in_group(TLS, but="tls")
"""The options that only a TLS client takes: those of its section but --tls."""
