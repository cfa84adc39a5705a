"""The package's folders are its architecture: which part may import which.

- The sans-IO core (``trio_echo/protocol/``) imports the standard library's
  modules that do no I/O, attrs, and itself: no trio, nothing of the rest of
  trio_echo.
- The client (``trio_echo/client/``) imports nothing of the server or the
  command line.
- What both ends use (the modules at the package's top) imports neither side.
- A folder's ``__init__.py`` imports nothing, so that importing one module
  does not import its neighbours.
- The public names the type checker reads in ``trio_echo/__init__.py`` are
  the ones its table (``_EXPORTS``) imports when they are first used.

Imports are read from the source with `ast`, every one of them: at a
module's top, inside a function, and those for the type checker only. A
name imported from ``trio_echo`` itself counts as the module that defines
it (the package imports its names on first use).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import trio_echo

PACKAGE = Path(trio_echo.__file__).resolve().parent

IO_MODULES = frozenset(
    {"asyncio", "select", "selectors", "signal", "socket", "ssl", "subprocess", "threading", "time"}
)
"""Standard modules that do I/O, or read the clock: the core's caller does that."""

CORE_LIBRARIES = frozenset({"attrs"})
"""The libraries the core may import besides the standard library."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Each module that ``path`` imports, by its absolute name, with the line."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                if module == "trio_echo" and alias.name in trio_echo._EXPORTS:
                    yield node.lineno, f"trio_echo.{trio_echo._EXPORTS[alias.name]}"
                elif not node.module:  # `from . import name`: a module of the package
                    yield node.lineno, f"{module}.{alias.name}"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def modules_in(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def ids(paths: list[Path]) -> list[str]:
    return [path.relative_to(PACKAGE.parent).as_posix() for path in paths]


CORE = modules_in("protocol")
CLIENT = modules_in("client")
SHARED = [path for path in modules_in(".") if path.name not in ("__init__.py", "__main__.py")]
INITS = sorted(PACKAGE.glob("*/__init__.py"))
SIDE_INITS = [path for path in INITS if path.parent.name != "protocol"]


def test_the_layout_is_what_the_tests_read() -> None:
    assert {path.name for path in CORE} >= {"_framer.py", "_events.py", "_protocol.py"}
    assert {path.name for path in CLIENT} >= {"_exchange.py", "_load.py"}
    assert {path.name for path in SHARED} >= {"_tls.py", "_ports.py"}
    assert {path.parent.name for path in INITS} == {"protocol", "server", "client", "cli"}


@pytest.mark.parametrize("path", CORE, ids=ids(CORE))
def test_the_core_imports_no_io_and_nothing_else_of_the_package(path: Path) -> None:
    for line, module in imports(path):
        where = f"{path.name}:{line} imports {module}"
        top = module.partition(".")[0]
        if top == "trio_echo":
            assert within(module, "trio_echo.protocol"), f"{where}: outside the core"
        else:
            assert top in CORE_LIBRARIES or top in sys.stdlib_module_names, (
                f"{where}: not the standard library or attrs"
            )
            assert top not in IO_MODULES, f"{where}: I/O is the pump's"


@pytest.mark.parametrize("path", CLIENT, ids=ids(CLIENT))
def test_the_client_imports_nothing_of_the_server_or_the_command_line(path: Path) -> None:
    for line, module in imports(path):
        for side in ("trio_echo.server", "trio_echo.cli"):
            assert not within(module, side), f"{path.name}:{line} imports {module}"


@pytest.mark.parametrize("path", SHARED, ids=ids(SHARED))
def test_what_both_ends_use_imports_neither_side(path: Path) -> None:
    for line, module in imports(path):
        for side in ("trio_echo.server", "trio_echo.client", "trio_echo.cli"):
            assert not within(module, side), f"{path.name}:{line} imports {module}"


@pytest.mark.parametrize("path", SIDE_INITS, ids=ids(SIDE_INITS))
def test_a_folders_init_imports_nothing(path: Path) -> None:
    assert list(imports(path)) == []


def test_the_cores_init_gathers_its_own_modules_only() -> None:
    # The sans-IO core is one piece, as h11 is: its folder exports its names.
    modules = {module for _line, module in imports(PACKAGE / "protocol" / "__init__.py")}
    assert modules, "the core's names are exported from trio_echo.protocol"
    for module in modules:
        assert module.startswith("trio_echo.protocol._"), module


def test_the_type_checker_reads_the_names_the_table_imports() -> None:
    declared: dict[str, str] = {}
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                assert statement.level == 1, ast.unparse(statement)
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name}: not re-exported"
                    declared[alias.name] = str(statement.module)
    assert declared == trio_echo._EXPORTS
    assert trio_echo.__all__ == list(trio_echo._EXPORTS)
