"""Where a benchmark figure came from: the code it measured and the machine.

A server's figures depend on its own files and on every repository module
they import. Those files are found by reading the source with `ast`, never
by importing it, and they are hashed by path and content (`code_hash`), so
that a committed figure can be checked against today's code (`stale`). The
third-party libraries, the interpreter, the compiler and the machine are
recorded by name and version instead (`environment`).

How imports are resolved, as Python would for a peer run as a script:

- Absolute imports are searched in the folder of each of the server's
  scripts (its files outside a regular package: a script's own folder
  comes first on ``sys.path``, which is how the peers import ``_common``),
  in every folder that a ``sys.path.insert`` or ``sys.path.append`` of a
  path built from ``__file__`` adds, and in the repository's top folder.
  A name found in none of them is a third-party or standard module and is
  left out.
- Importing a dotted name runs each enclosing package's ``__init__.py``.
- ``from package import name`` follows only the module that defines
  ``name``: a submodule of that name, or the module the package's
  ``__init__.py`` re-exports it from. trio_echo imports its names lazily,
  so a peer that uses the protocol depends on the protocol's modules and
  not on the client's.
- Imports under ``if TYPE_CHECKING:`` run only for the type checker: they
  are no dependency, though their names still say where a package's
  re-exports come from.

A server whose program lies in the trio_echo package depends on the whole
package, and a C program on its source and the headers it includes with
quotes.
"""

from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import ssl
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TypedDict

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import find_compiler
from benchmarks.servers import SERVERS, Server

ROOT = Path(__file__).resolve().parent.parent
"""The repository's top folder: the default ``root`` of every function here."""

PACKAGE = "trio_echo"
"""The package whose servers depend on all of it."""

LOADGEN = PurePath("benchmarks/loadgen.c")
"""The load generator's source, relative to the repository's top folder."""

HASH_LENGTH = 16
"""Hex digits kept of a SHA-256 digest."""

LIBRARIES = ("trio", "anyio", "uvloop", "twisted", "gevent", "attrs")
"""The installed distributions whose versions `environment` records."""

_CPU_MODEL_KEYS = ("model name", "hardware", "model", "cpu model", "cpu")
"""Keys of /proc/cpuinfo that name the processor, the x86 one first."""

_LOCAL_INCLUDE = re.compile(rb'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


class Environment(TypedDict):
    """What a set of figures was measured with.

    Attributes:
        commit: The repository's ``HEAD`` commit, or None outside a git
            checkout (or without git).
        dirty: Whether the checkout differed from that commit, or None
            without a commit. The folders results are written to,
            ``benchmarks/.cache`` and ``benchmarks/results``, are left
            aside: a run writes its journal there while it measures.
        python: The interpreter's full version (``sys.version``).
        libraries: The version of each of `LIBRARIES`, or None where it is
            not installed.
        openssl: The OpenSSL that Python's ``ssl`` module is linked with.
        compiler: The first line of the C compiler's ``--version``, or None
            without one.
        kernel: The operating system and its release (``uname``).
        machine: The processor architecture.
        cpu_model: The processor's name, or None where it cannot be read.
        cpu_count: The processors of the machine.
        cpus_available: The processors this process may run on.
        loadgen_hash: The load generator's source hash (as `code_hash`).
        recorded_at: When this was recorded, in UTC (ISO 8601).
    """

    commit: str | None
    dirty: bool | None
    python: str
    libraries: dict[str, str | None]
    openssl: str
    compiler: str | None
    kernel: str
    machine: str
    cpu_model: str | None
    cpu_count: int | None
    cpus_available: int | None
    loadgen_hash: str
    recorded_at: str


def code_files(server: Server, *, root: Path = ROOT) -> list[Path]:
    """The files that a server's figures depend on.

    Args:
        server: The server. One without a ``program`` (the baseline, a
            checkout outside the repository) has no files.
        root: The repository's top folder.

    Returns:
        The paths relative to ``root``, sorted.

    Raises:
        FileNotFoundError: If a file of the server's program is missing.
        SyntaxError: If one of the Python files does not parse.
    """
    return program_files(server.program, root=root)


def program_files(program: Iterable[str], *, root: Path = ROOT) -> list[Path]:
    """The files that a program's figures depend on (see `code_files`): the
    files it imports (`imported_files`), and the whole of trio_echo's
    package if any of them is in it.

    Args:
        program: Its places, as ``Server.program`` writes them: ``"path"``
            or ``"path::name"``, relative to ``root``.
        root: The repository's top folder.

    Returns:
        The paths relative to ``root``, sorted.

    Raises:
        FileNotFoundError: If a file of the program is missing.
        SyntaxError: If one of the Python files does not parse.
    """
    return _closure(program, root=root, whole_package=True)


def imported_files(program: Iterable[str], *, root: Path = ROOT) -> list[Path]:
    """A program's files and every file of the repository they import, at
    run time, however deep (a C file's local includes).

    Args:
        program: Its places, as ``Server.program`` writes them: ``"path"``
            or ``"path::name"``, relative to ``root``.
        root: The repository's top folder.

    Returns:
        The paths relative to ``root``, sorted.

    Raises:
        FileNotFoundError: If a file of the program is missing.
        SyntaxError: If one of the Python files does not parse.
    """
    return _closure(program, root=root, whole_package=False)


def _closure(program: Iterable[str], *, root: Path, whole_package: bool) -> list[Path]:
    root = root.resolve()
    entries = sorted({root / entry.partition("::")[0] for entry in program})
    for path in entries:
        if not path.is_file():
            raise FileNotFoundError(f"{path.relative_to(root)} is not a file")
    scripts = [path.parent for path in entries if not (path.parent / "__init__.py").is_file()]
    package = root / PACKAGE
    if whole_package and any(path.is_relative_to(package) for path in entries):
        entries += sorted(package.rglob("*.py"))
    found = _Dependencies(root, scripts).closure(entries)
    return sorted((path.relative_to(root) for path in found), key=PurePath.as_posix)


def hash_files(files: Iterable[PurePath], *, root: Path = ROOT) -> str:
    """A digest of files' paths and contents, the same in any checkout.

    Line endings are read as ``\\n``, so a checkout that converts them
    hashes the same.

    Args:
        files: The files, relative to ``root``.
        root: The repository's top folder.

    Returns:
        The first `HASH_LENGTH` hex digits of a SHA-256 digest.
    """
    digest = hashlib.sha256()
    for relative in sorted(set(files), key=PurePath.as_posix):
        content = (root / relative).read_bytes().replace(b"\r\n", b"\n")
        digest.update(f"{relative.as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:HASH_LENGTH]


def code_hash(server: Server, *, root: Path = ROOT) -> str:
    """The hash of a server's files (`code_files`), as `hash_files` makes it."""
    return hash_files(code_files(server, root=root), root=root)


def code_hashes(servers: Iterable[Server], *, root: Path = ROOT) -> dict[str, str]:
    """Each server's `code_hash`, by name."""
    return {server.name: code_hash(server, root=root) for server in servers}


def stale(
    recorded: Mapping[str, str], servers: Iterable[Server], *, root: Path = ROOT
) -> dict[str, tuple[str, str]]:
    """The servers whose code changed since their figures were recorded.

    Args:
        recorded: The code hashes recorded with the figures, by server name.
            A name no longer among ``servers`` is passed over.
        servers: Today's servers. One without a recorded hash is passed over.
        root: The repository's top folder.

    Returns:
        For each server whose hash differs: its recorded hash and today's.
    """
    changed = {}
    for server in servers:
        if server.name in recorded:
            now = code_hash(server, root=root)
            if recorded[server.name] != now:
                changed[server.name] = (recorded[server.name], now)
    return changed


def describe_stale(
    changed: Mapping[str, tuple[str, str]], servers: Iterable[Server], *, root: Path = ROOT
) -> str:
    """Say which figures no longer describe the code, and which files decide it.

    Args:
        changed: What `stale` found.
        servers: The servers it was given.
        root: The repository's top folder.

    Returns:
        A line per stale server, naming its hashes and its files; empty if
        none is stale.
    """
    by_name = {server.name: server for server in servers}
    lines = []
    for name, (recorded, now) in sorted(changed.items()):
        files = ", ".join(path.as_posix() for path in code_files(by_name[name], root=root))
        lines.append(
            f"{name}: figures recorded for code {recorded}, the code is now {now} ({files})"
        )
    return "\n".join(lines)


def environment(*, root: Path = ROOT) -> Environment:
    """What figures measured now are measured with.

    Nothing here fails for want of git, a compiler or /proc: what cannot
    be found is None.

    Args:
        root: The repository's top folder.

    Returns:
        The commit, the versions and the machine (see `Environment`).
    """
    root = root.resolve()
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        commit = None
    status = None
    if commit is not None:
        status = _git(
            root,
            "status",
            "--porcelain",
            "--",
            ".",
            ":(exclude)benchmarks/.cache",
            ":(exclude)benchmarks/results",
        )
    uname = platform.uname()
    return {
        "commit": commit,
        "dirty": None if status is None else bool(status),
        "python": sys.version,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "openssl": ssl.OPENSSL_VERSION,
        "compiler": _compiler(),
        "kernel": f"{uname.system} {uname.release}",
        "machine": uname.machine,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        ),
        "loadgen_hash": hash_files(_c_closure(root / LOADGEN, root), root=root),
        "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _run(command: list[str], directory: Path | None = None) -> str | None:
    """The output of a command that succeeded, stripped; None if it did not run or failed."""
    try:
        done = subprocess.run(
            command, cwd=directory, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _git(root: Path, *arguments: str) -> str | None:
    return _run(["git", *arguments], root)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _compiler() -> str | None:
    compiler = find_compiler()
    said = _run([compiler, "--version"]) if compiler else None
    return said.splitlines()[0] if said else None


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    for key in _CPU_MODEL_KEYS:
        if key in fields and not fields[key].isdigit():  # x86's "model" is a number
            return fields[key]
    return platform.processor() or None


def _c_closure(source: Path, root: Path) -> set[Path]:
    """A C file and the files it includes with quotes, relative to ``root``."""
    found: set[Path] = set()
    pending = [source]
    while pending:
        path = pending.pop()
        if path in found or not path.is_file() or not path.is_relative_to(root):
            continue
        found.add(path)
        for name in _LOCAL_INCLUDE.findall(path.read_bytes()):
            pending.append((path.parent / name.decode()).resolve())
    return {path.relative_to(root) for path in found}


class _Dependencies:
    """Follows a program's imports through the repository's Python files.

    Args:
        root: The repository's top folder, resolved.
        script_directories: The folders of the program's scripts: the first
            places an absolute import is searched.
    """

    def __init__(self, root: Path, script_directories: Iterable[Path]) -> None:
        self.root = root
        self.search = list(dict.fromkeys([*script_directories, root]))
        self.reexports: dict[Path, dict[str, _Reexport]] = {}
        self.names_seen: set[tuple[Path, str]] = set()

    def closure(self, entries: Iterable[Path]) -> set[Path]:
        """Every file of ``entries`` and every repository file they import."""
        found: set[Path] = set()
        pending = list(entries)
        while pending:
            path = pending.pop()
            if path in found:
                continue
            found.add(path)
            if path.suffix == ".py":
                pending += self._imports(path)
            else:
                pending += (self.root / include for include in _c_closure(path, self.root))
        return found

    def _imports(self, path: Path) -> list[Path]:
        """The repository files that running ``path`` imports."""
        nodes = list(_runtime_nodes(_parse(path)))
        for node in nodes:
            self._extend_search(node, path)
        imported: list[Path] = []
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    files, package = self._absolute(alias.name)
                    imported += files
                    if package is not None:  # its names are unknown: all of them
                        imported += self._names(package, ["*"])
            elif isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
                imported += self._from(path, node.module, node.level, names)
        return imported

    def _from(self, path: Path, module: str | None, level: int, names: list[str]) -> list[Path]:
        """The files that ``from module import names``, written in ``path``, runs."""
        parts = module.split(".") if module else []
        if level:
            base = path.parent
            for _ in range(level - 1):
                base = base.parent
            if not base.is_relative_to(self.root):
                return []
            files, package = self._locate(base, parts)
            if (base / "__init__.py").is_file():
                files.insert(0, base / "__init__.py")
        else:
            files, package = self._absolute(module or "")
        if package is not None:
            files += self._names(package, names)
        return files

    def _names(self, package: Path, names: list[str]) -> list[Path]:
        """The files of the modules that define ``names`` in ``package`` (``*``: all)."""
        reexports = self._reexports(package / "__init__.py")
        files: list[Path] = []
        for name in sorted(reexports) if "*" in names else names:
            if (package, name) in self.names_seen:
                continue
            self.names_seen.add((package, name))
            submodule, subpackage = self._locate(package, [name])
            if submodule or subpackage is not None:
                files += submodule
            elif name in reexports:
                where = reexports[name]
                files += self._from(where.path, where.module, where.level, [where.name])
        return files

    def _reexports(self, init: Path) -> dict[str, _Reexport]:
        """The names a package's ``__init__.py`` imports with ``from``, by the name bound.

        Imports for the type checker count: they are where a lazy package
        says its names come from.
        """
        if init not in self.reexports:
            table: dict[str, _Reexport] = {}
            if init.is_file():
                for node in ast.walk(_parse(init)):
                    if isinstance(node, ast.ImportFrom):
                        for alias in node.names:
                            if alias.name != "*":
                                table[alias.asname or alias.name] = _Reexport(
                                    init, node.module, node.level, alias.name
                                )
            self.reexports[init] = table
        return self.reexports[init]

    def _absolute(self, module: str) -> tuple[list[Path], Path | None]:
        """What ``import module`` runs (see `_locate`); nothing if it is not the repository's."""
        parts = module.split(".")
        for directory in self.search:
            if (directory / f"{parts[0]}.py").is_file() or (
                directory / parts[0] / "__init__.py"
            ).is_file():
                return self._locate(directory, parts)
        for directory in self.search:  # a namespace package, the last resort
            if (directory / parts[0]).is_dir():
                return self._locate(directory, parts)
        return [], None

    def _locate(self, directory: Path, parts: list[str]) -> tuple[list[Path], Path | None]:
        """What importing the dotted name ``parts`` from ``directory`` runs.

        Returns:
            The files run (each package's ``__init__.py``, then the module),
            and the folder of the package the name is, or None if it is a
            module or is not found.
        """
        files = []
        for part in parts:
            if (directory / part / "__init__.py").is_file():
                directory = directory / part
                files.append(directory / "__init__.py")
            elif (directory / f"{part}.py").is_file():
                files.append(directory / f"{part}.py")
                return files, None
            elif (directory / part).is_dir():
                directory = directory / part
            else:
                return files, None
        return files, directory

    def _extend_search(self, node: ast.AST, path: Path) -> None:
        """Add to the search the folder that a ``sys.path.insert`` or ``append`` adds."""
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("insert", "append")
            and _dotted(node.func.value) == "sys.path"
            and node.args
        ):
            return
        directory = _evaluate_path(node.args[-1], path)
        if directory is None or not directory.is_relative_to(self.root):
            return
        if directory not in self.search:
            if node.func.attr == "insert":
                self.search.insert(0, directory)
            else:
                self.search.append(directory)


@dataclass(frozen=True)
class _Reexport:
    """A name that a package's ``__init__.py`` imports from a module.

    Attributes:
        path: The ``__init__.py``.
        module: The module named in its ``from`` import.
        level: The import's dots (0: absolute).
        name: The name in that module (before any ``as``).
    """

    path: Path
    module: str | None
    level: int
    name: str


def _parse(path: Path) -> ast.Module:
    return _parse_source(path.read_bytes(), str(path))


@functools.lru_cache(maxsize=512)
def _parse_source(source: bytes, filename: str) -> ast.Module:
    """A file's tree, parsed once for each content (the trees are only read)."""
    return ast.parse(source, filename=filename)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:``."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _dotted(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            pending += node.orelse
        else:
            pending += ast.iter_child_nodes(node)


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _evaluate_path(node: ast.AST, path: Path) -> Path | None:
    """The folder an expression built from ``__file__`` names, written in ``path``.

    Understands ``Path(__file__)``, ``.resolve()``, ``.absolute()``,
    ``.parent``, ``.parents[n]``, ``/ "name"``, ``str()``, ``os.fspath()``
    and ``os.path``'s ``dirname``, ``abspath``, ``realpath``, ``normpath``
    and ``join``; None for anything else.
    """
    if isinstance(node, ast.Name) and node.id == "__file__":
        return path
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _evaluate_path(node.value, path)
        return None if inner is None else inner.parent
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, int)
    ):
        inner = _evaluate_path(node.value.value, path)
        if inner is None or not 0 <= node.slice.value < len(inner.parents):
            return None
        return inner.parents[node.slice.value]
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and isinstance(node.right, ast.Constant)
        and isinstance(node.right.value, str)
    ):
        inner = _evaluate_path(node.left, path)
        return None if inner is None else inner / node.right.value
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute"):
        return _evaluate_path(node.func.value, path)
    function = _dotted(node.func)
    if not node.args:
        return None
    inner = _evaluate_path(node.args[0], path)
    if inner is None:
        return None
    if function in ("Path", "pathlib.Path", "str", "os.fspath") or function in (
        "os.path.abspath",
        "os.path.realpath",
        "os.path.normpath",
    ):
        return inner
    if function == "os.path.dirname":
        return inner.parent
    if function == "os.path.join":
        for part in node.args[1:]:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                return None
            inner = inner / part.value
        return inner
    return None


if __name__ == "__main__":
    listed = SERVERS.values()
    print(
        json.dumps(
            {
                "environment": environment(),
                "code": {
                    server.name: {
                        "hash": code_hash(server),
                        "files": [path.as_posix() for path in code_files(server)],
                    }
                    for server in listed
                },
            },
            indent=1,
        )
    )
