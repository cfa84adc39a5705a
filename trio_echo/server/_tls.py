# A TLS server's files, and its context made from them (the contexts and
# their failures, for both ends, are in trio_echo/_tls.py).
#
# The server's pair can be loaded again while it serves (`ServerTLS.reload`):
# a new context is made from the files and used for connections accepted
# from then on; connections already open keep the one they began with. A bad
# new file keeps the context in use.
from __future__ import annotations

import logging
import ssl

import attrs

from .._tls import MINIMUM_VERSION, TLSFileError, _load_authorities, _load_chain

__all__ = ["ServerTLS", "TLSFiles"]

logger = logging.getLogger("trio_echo.server")


@attrs.frozen
class TLSFiles:
    """The PEM files a TLS server is given.

    Attributes:
        cert: The certificate chain, the server's certificate first.
        key: Its private key.
        client_ca: Certificates of the authorities a client's certificate
            must come from; if given, every client must present one.
    """

    cert: str
    key: str
    client_ca: str | None = None

    def load(self) -> ssl.SSLContext:
        """Make a server context from the files, as they are now.

        TLS 1.2 or newer, from `ssl.create_default_context`.

        Raises:
            TLSFileError: If a file is missing or unreadable, does not parse,
                or the key does not match the certificate.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = MINIMUM_VERSION
        _load_chain(context, self.cert, self.key, what="server")
        if self.client_ca is not None:
            _load_authorities(context, self.client_ca, what="client authority file")
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class ServerTLS:
    """A server's TLS context, which can be made anew from its files.

    Args:
        files: The files to load, now and on each `reload`.

    Raises:
        TLSFileError: If the files cannot be loaded.
    """

    def __init__(self, files: TLSFiles) -> None:
        self.files = files
        self.context = files.load()
        """The context new connections are wrapped with."""

    def reload(self) -> bool:
        """Load the files again; on a failure keep the context in use.

        Logs one line either way. Blocks while the files are read: call it
        from a thread.

        Returns:
            Whether the new files are in use.
        """
        try:
            context = self.files.load()
        except TLSFileError as error:
            logger.warning("TLS certificate not reloaded, the one in use stays: %s", error)
            return False
        self.context = context
        logger.info("TLS certificate reloaded from %s", self.files.cert)
        return True
