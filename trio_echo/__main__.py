"""``python -m trio_echo`` and the ``trio-echo`` command: the command line.

The shutdown signals are recorded from the first moment, before the heavy
imports (trio, attrs, the server), so that a signal while the program starts
is handled as the signals are documented (``trio-echo server --help``, and
docs/reference/signals.md), never as a traceback.
"""

from __future__ import annotations

import sys

from ._status import give_stderr_a_sink
from .server._signals import install_early_handlers


def main() -> int:
    """Run the command line; return its exit status."""
    install_early_handlers()
    give_stderr_a_sink()
    from .cli._parser import main as cli_main  # noqa: PLC0415 (after the handlers)

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
