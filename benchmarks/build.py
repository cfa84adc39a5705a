"""Compile the C programs of the benchmarks on demand, into a cache.

The binaries are built with the system's C compiler (``$CC``, else ``cc``
or ``gcc``) the first time they are needed, and again whenever their
source changes; they live in ``benchmarks/.cache/``, never in the
repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
LOADGEN_SOURCE = HERE / "loadgen.c"
C_EPOLL_SOURCE = HERE / "peers" / "c_epoll.c"


class NoCompilerError(RuntimeError):
    """No C compiler on this machine."""


def find_compiler() -> str | None:
    """Return the C compiler to use, or None if there is none."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def compile_c(source: Path) -> Path:
    """Return the path of ``source`` compiled with -O2, building it if needed.

    Raises:
        NoCompilerError: If there is no C compiler (with what to install).
        subprocess.CalledProcessError: If the compiler fails.
    """
    compiler = find_compiler()
    if compiler is None:
        raise NoCompilerError(
            f"building {source.name} needs a C compiler and none was found "
            "(set $CC, or install one: on Debian or Ubuntu, apt-get install gcc)"
        )
    digest = hashlib.sha256(source.read_bytes() + compiler.encode()).hexdigest()[:16]
    binary = CACHE / f"{source.stem}-{digest}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [compiler, "-O2", "-Wall", "-o", str(partial), str(source)],
            check=True,
            capture_output=True,
        )
        os.replace(partial, binary)
    return binary
