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
C_TLS_SOURCE = HERE / "peers" / "c_tls.c"


class NoCompilerError(RuntimeError):
    """No C compiler on this machine."""


def find_compiler() -> str | None:
    """Return the C compiler to use, or None if there is none."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


class NoTlsError(RuntimeError):
    """A program cannot be built with libssl here (the reason says why)."""


def compile_c(
    source: Path, *, defines: tuple[str, ...] = (), libraries: tuple[str, ...] = ()
) -> Path:
    """Return the path of ``source`` compiled with -O2, building it if needed.

    Args:
        source: The C file.
        defines: Preprocessor names to define (``-D``).
        libraries: Libraries to link (``-l``).

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
    flags = [f"-D{name}" for name in defines]
    digest = hashlib.sha256(
        source.read_bytes() + " ".join([compiler, *flags, *libraries]).encode()
    ).hexdigest()[:16]
    binary = CACHE / f"{source.stem}-{digest}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [
                compiler,
                "-O2",
                "-Wall",
                *flags,
                "-o",
                str(partial),
                str(source),
                *(f"-l{name}" for name in libraries),
            ],
            check=True,
            capture_output=True,
        )
        os.replace(partial, binary)
    return binary


def compile_tls_loadgen() -> Path:
    """The load generator built with TLS (libssl), building it if needed.

    Raises:
        NoCompilerError: If there is no C compiler.
        NoTlsError: If it does not build with libssl here (its headers or
            library missing: on Debian or Ubuntu, apt-get install libssl-dev).
    """
    return compile_with_libssl(LOADGEN_SOURCE, defines=("LOADGEN_TLS",))


def compile_with_libssl(source: Path, *, defines: tuple[str, ...] = ()) -> Path:
    """``source`` compiled and linked with libssl (see `compile_c`).

    Raises:
        NoCompilerError: If there is no C compiler.
        NoTlsError: If it does not build with libssl here (its headers or
            library missing: on Debian or Ubuntu, apt-get install libssl-dev).
    """
    try:
        return compile_c(source, defines=defines, libraries=("ssl", "crypto"))
    except subprocess.CalledProcessError as error:
        said = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        reason = next((line for line in said if "error" in line), said[-1] if said else "")
        raise NoTlsError(
            f"{source.name} does not build with libssl here (apt-get install libssl-dev): " + reason
        ) from error
