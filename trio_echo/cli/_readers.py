# How the command line reads each kind of value: sizes with binary units,
# seconds, rates, counts, ports, hosts and file permissions. Each reader
# raises argparse.ArgumentTypeError with a sentence that names the value,
# which argparse prints after the flag.
from __future__ import annotations

import argparse
import math
import re

__all__ = [
    "MAX_LOAD_IN_FLIGHT",
    "MAX_LOAD_SIZE",
    "MAX_SIZE",
    "parse_size",
    "read_count",
    "read_fd",
    "read_file_mode",
    "read_host_and_port",
    "read_load_size",
    "read_metrics_address",
    "read_number",
    "read_port",
    "read_server_name",
    "read_size",
    "size_text",
]

_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)\s*$")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

MAX_SIZE = 1 << 40
"""The largest size a flag takes: 1 TiB."""


def parse_size(text: str) -> int:
    """Parse a byte count such as ``4096``, ``64KiB``, ``64M`` or ``1g``.

    Units are binary: K is 1024 bytes, M is 1024 K, G is 1024 M, T is 1024 G.

    Raises:
        argparse.ArgumentTypeError: If ``text`` is not such a count.
    """
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 4096, 64KiB, 1MiB)")
    return int(match[1]) * _UNITS[match[2][:1].lower()]


def read_size(text: str) -> int:
    """A size from 1 byte to `MAX_SIZE`."""
    size = parse_size(text)
    if not 1 <= size <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size from 1 byte to 1TiB")
    return size


def read_number(text: str, *, zero: bool, unit: str = "seconds") -> float:
    """A number of ``unit``: positive, or also zero if ``zero``; never infinite."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 if zero else value > 0) or math.isinf(value):
        kind = "zero or a positive number" if zero else "a positive number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind} of {unit}")
    return value


MAX_LOAD_SIZE = 1 << 30
"""The largest message of a load run: its messages are made in memory."""

MAX_LOAD_IN_FLIGHT = 4 << 30
"""The most a load run has in flight at once, ``--size`` times ``--concurrency``:
4GiB. Its client holds the payload once, but each connection's message and
echo are held by the kernel and the server while they are under way."""


def read_load_size(text: str) -> int:
    size = read_size(text)
    if size > MAX_LOAD_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than 1GiB, the largest message a load run makes (in memory)"
        )
    return size


def read_port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def read_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def read_host_and_port(text: str) -> tuple[str, int | None]:
    """A host, and the port it names if it names one.

    As the server prints its address (``[::1]:5000``, ``127.0.0.1:5000``),
    or a bracketed, bare name or address (``[::1]``, ``::1``, ``localhost``).
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a host ([::1] or [::1]:PORT)")
        return host, read_port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, read_port(port)
    return text, None


def read_metrics_address(text: str) -> tuple[str, int]:
    """Where to serve metrics: ``HOST:PORT``, or ``:PORT`` (this machine only).

    Hosts as `read_host_and_port` takes them: ``[::1]:9100``, ``127.0.0.1:9100``.
    """
    if text.startswith(":"):
        text = "127.0.0.1" + text
    host, port = read_host_and_port(text)
    if port is None or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (127.0.0.1:9100)")
    return host, port


def read_server_name(text: str) -> str:
    """A name a server's certificate may carry: a host name or an address.

    The ssl library refuses an empty name, one that begins with a dot, and
    one that IDNA cannot encode; this says so before a connection is made.
    """
    try:
        valid = bool(text) and not text.startswith(".") and bool(text.encode("idna"))
    except UnicodeError:
        valid = False
    if not valid or "\0" in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a name a certificate can carry (example: localhost)"
        )
    return text


def read_fd(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file descriptor number")
    return int(text)


def read_file_mode(text: str) -> int:
    """File permissions in octal: ``600``, ``0660``."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not file permissions in octal (0600)")
    return mode


def size_text(size: int) -> str:
    """A byte count as the flags write it: ``64MiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)
