# The port both ends use when none is given: the server listens on it, the
# client connects to it.
from __future__ import annotations

__all__ = ["DEFAULT_PORT"]

DEFAULT_PORT = 50007
"""The port the original Twisted server listened on."""
