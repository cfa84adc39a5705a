# What the server command is asked to do, besides `ServerConfig`: where to
# listen, how many workers, TLS, metrics and the log. Each option is declared
# once, as `ServerConfig`'s and `Limits`' settings are (see
# protocol/_limits.py): the command line's flags and --help are built from
# the declarations.
from __future__ import annotations

import attrs

from .._ports import DEFAULT_PORT
from ..protocol._declarations import documented, setting
from ..server._config import ServerConfig
from ..server._listeners import ALL_INTERFACES, format_address
from ..server._log import LOG_FORMATS
from ..server._tls import TLSFiles

__all__ = ["LISTENING", "ServerOptions"]

LISTENING = "listening"
_SERVING = "serving"
_TLS = "TLS"
_WATCHING = "metrics and log"


@documented
@attrs.frozen(kw_only=True)
class ServerOptions:
    """What the server command was asked to do, as typed values.

    The command line's defaults are these, and `ServerConfig`'s: ``config``
    says how to serve connections, and ``tcp`` whether to listen on TCP
    (``host``, ``port``), which it does not when only a unix socket is
    asked for.
    """

    config: ServerConfig = attrs.Factory(ServerConfig)
    host: str = setting(
        "127.0.0.1",
        flag="--host",
        doc=(
            f"address or name to listen on; '{ALL_INTERFACES}' listens on every interface,"
            " IPv4 and IPv6; '::' on IPv6"
        ),
        group=LISTENING,
        unit="host",
        default_text="127.0.0.1, this machine only",
    )
    port: int = setting(
        DEFAULT_PORT,
        flag="--port",
        doc="port to listen on; 0 picks a free one",
        group=LISTENING,
        unit="port",
    )
    unix: str | None = setting(
        None,
        flag="--unix",
        doc=(
            "listen on a unix socket at PATH too (only there, unless {host} or {port} is"
            " given); a stale socket file is removed first, anything else there is refused;"
            " the file is removed on exit"
        ),
        group=LISTENING,
        unit="path",
        default_text="none",
    )
    unix_mode: int = setting(
        0o600,
        flag="--unix-mode",
        doc="the unix socket file's permissions, in octal",
        group=LISTENING,
        unit="octal",
    )
    fds: tuple[int, ...] = setting(
        (),
        converter=tuple,
        flag="--fd",
        doc=(
            "serve on this inherited listening socket instead of binding (repeatable);"
            " sockets passed by systemd (LISTEN_FDS) are used without it"
        ),
        group=LISTENING,
        unit="fd",
    )
    reuse_port: bool = setting(
        False,
        flag="--reuse-port",
        doc="bind with SO_REUSEPORT, so that other processes can share the port",
        group=LISTENING,
        unit="switch",
    )
    tcp: bool = True
    grace: float = setting(
        10.0,
        flag="--grace",
        doc=(
            "time open connections have to finish, on SIGINT, SIGTERM or SIGHUP, before"
            " they are cut; a second such signal, or SIGQUIT, cuts them at once"
        ),
        group=_SERVING,
        unit="seconds",
        least=0,
        bound=True,
    )
    workers: int = setting(
        1,
        flag="--workers",
        doc=(
            "serve with N processes, each a single-threaded server, sharing the port"
            " (SO_REUSEPORT) under a supervising parent that restarts one that dies"
        ),
        group=_SERVING,
        unit="count",
        least=1,
        default_text="1, no parent",
    )
    worker_timeout: float = setting(
        5.0,
        flag="--worker-timeout",
        doc=(
            "time a worker may go without answering its supervisor's heartbeat (stopped, or"
            " stuck) before it is killed and replaced"
        ),
        group=_SERVING,
        unit="seconds",
        positive=True,
        bound=True,
    )
    tls_cert: str | None = setting(
        None,
        flag="--tls-cert",
        doc="the server's certificate chain, PEM, its own certificate first",
        group=_TLS,
        unit="file",
        default_text="no TLS",
    )
    tls_key: str | None = setting(
        None,
        flag="--tls-key",
        doc="the certificate's private key, PEM",
        group=_TLS,
        unit="file",
        default_text="in the {tls_cert} file",
    )
    tls_client_ca: str | None = setting(
        None,
        flag="--tls-client-ca",
        doc="require a client certificate issued by an authority in FILE, PEM, for mutual TLS",
        group=_TLS,
        unit="file",
        default_text="none asked for",
    )
    metrics: tuple[str, int] | None = setting(
        None,
        flag="--metrics",
        doc=(
            "serve Prometheus metrics at http://HOST:PORT/metrics (:PORT: this machine"
            " only); with {workers}, one scrape covers every worker, labelled by worker;"
            " needs the metrics extra: pip install '.[metrics]' from the project's directory"
        ),
        group=_WATCHING,
        unit="host:port",
        default_text="off",
    )
    log_level: str = setting(
        "INFO",
        flag="--log-level",
        doc="INFO logs one line per connection; DEBUG adds every chunk",
        group=_WATCHING,
        unit="choice",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    log_format: str = setting(
        "text",
        flag="--log-format",
        doc="text, or json for one JSON object per line",
        group=_WATCHING,
        unit="choice",
        choices=LOG_FORMATS,
    )

    @property
    def where(self) -> str:
        """The address asked for, as ``host:port``."""
        return format_address(self.host, self.port)

    @property
    def tls_files(self) -> TLSFiles | None:
        """The TLS files, if the server is to speak TLS."""
        if self.tls_cert is None:
            return None
        return TLSFiles(self.tls_cert, self.tls_key or self.tls_cert, self.tls_client_ca)
