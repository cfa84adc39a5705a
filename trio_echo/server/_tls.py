# A TLS server's files, the pair read from them, and its context made from
# that pair (the contexts and their failures, for both ends, are in
# trio_echo/_tls.py).
#
# The server's pair can be loaded again while it serves (`ServerTLS.reload`):
# the files are read once, a new context is made from what was read, and
# used for connections accepted from then on; connections already open keep
# the one they began with. A bad new file, whatever is wrong with it, is one
# warning, and the pair in use stays. The pair in use is kept as read
# (`ServerTLS.pair`): a supervisor hands it to its workers, which never read
# the files themselves (`ServerTLS.use`), so that a bad file on disk cannot
# stop a worker from starting.
from __future__ import annotations

import logging
import ssl

import attrs

from .._tls import MINIMUM_VERSION, TLSFileError, _load_authorities, _load_chain, _read

__all__ = ["CertificatePair", "ServerTLS", "TLSFiles"]

logger = logging.getLogger("trio_echo.server")


@attrs.frozen
class CertificatePair:
    """What a server's files held when they were read: PEM text.

    Attributes:
        chain: The certificate chain, the server's certificate first.
        key: Its private key.
        client_ca: The client authorities' certificates, if clients must
            present one.
    """

    chain: bytes
    key: bytes
    client_ca: bytes | None = None


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

    def read(self) -> CertificatePair:
        """Read the files, as they are now.

        Raises:
            TLSFileError: If a file is missing, unreadable or not a regular
                file.
        """
        client_ca = None
        if self.client_ca is not None:
            client_ca = _read(self.client_ca, "client authority file")
        return CertificatePair(
            _read(self.cert, "server certificate"), _read(self.key, "server key"), client_ca
        )

    def load(self, pair: CertificatePair | None = None) -> ssl.SSLContext:
        """Make a server context from ``pair``, or from the files as they are now.

        TLS 1.2 or newer, from `ssl.create_default_context`. A key protected
        by a pass phrase is refused: none is ever asked for.

        Args:
            pair: What the files held when they were read; read now if None.
                Errors name the files.

        Raises:
            TLSFileError: If a file is missing or unreadable, does not parse,
                is protected by a pass phrase, or the key does not match the
                certificate.
        """
        pair = self.read() if pair is None else pair
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = MINIMUM_VERSION
        _load_chain(context, pair.chain, pair.key, cert=self.cert, key_name=self.key, what="server")
        if self.client_ca is not None:  # and none given is none trusted: fails closed
            what = "client authority file"
            _load_authorities(context, pair.client_ca or b"", cafile=self.client_ca, what=what)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class ServerTLS:
    """A server's TLS context, which can be made anew from its files.

    Args:
        files: The files to load, now and on each `reload`.
        pair: What they held, if they were read already (by a worker's
            supervisor); read now if None.

    Attributes:
        files: The files.
        pair: What the files held when the context in use was made.
        context: The context new connections are wrapped with.

    Raises:
        TLSFileError: If the files (or the pair) cannot be loaded.
    """

    def __init__(self, files: TLSFiles, pair: CertificatePair | None = None) -> None:
        self.files = files
        self.pair = files.read() if pair is None else pair
        self.context = files.load(self.pair)

    def reload(self) -> bool:
        """Read and load the files again; on a failure keep the pair in use.

        Logs one line either way. Blocks while the files are read: call it
        from a thread.

        Returns:
            Whether the new files are in use.
        """
        try:
            pair = self.files.read()
            context = self.files.load(pair)
        except TLSFileError as error:
            logger.warning("TLS certificate not reloaded, the one in use stays: %s", error)
            return False
        self.pair, self.context = pair, context
        logger.info("TLS certificate reloaded from %s", self.files.cert)
        return True

    def use(self, pair: CertificatePair) -> bool:
        """Load ``pair``, as read by someone else (a worker's supervisor).

        On a failure keep the pair in use, with one warning.

        Returns:
            Whether ``pair`` is in use.
        """
        try:
            context = self.files.load(pair)
        except TLSFileError as error:
            logger.warning("TLS certificate not reloaded, the one in use stays: %s", error)
            return False
        self.pair, self.context = pair, context
        logger.info("TLS certificate reloaded, as its supervisor read it")
        return True
