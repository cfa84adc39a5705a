"""Lines of code: what a reader choosing a model has to read.

A line of code is a line with something on it that runs or declares: not a
blank line, not a comment, not a docstring. Python is read with `tokenize`
and `ast`; C with its comments stripped. A handler is named by where it is
(``"benchmarks/peers/threads.py::Handler"``): a top-level function or class
in Python, a function in C, counted from its first line (decorators
included) to its last.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


@dataclass(frozen=True)
class Span:
    """Lines ``first`` to ``last`` of a file, both included (from 1)."""

    first: int
    last: int


def _python_code_lines(text: str) -> set[int]:
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                docstring = body[0]
                lines -= set(range(docstring.lineno, (docstring.end_lineno or 0) + 1))
    return lines


def _python_span(text: str, name: str) -> Span:
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == name
        ):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return Span(first, node.end_lineno or node.lineno)
    raise LookupError(f"no top-level {name!r}")


def _strip_c_comments(text: str) -> str:
    """``text`` with its comments blanked, its line count kept."""

    def blank(match: re.Match[str]) -> str:
        return "\n" * match[0].count("\n")

    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.DOTALL)


def _c_code_lines(text: str) -> set[int]:
    stripped = _strip_c_comments(text).splitlines()
    return {number for number, line in enumerate(stripped, 1) if line.strip()}


def _c_span(text: str, name: str) -> Span:
    lines = _strip_c_comments(text).splitlines()
    definition = re.compile(rf"^[A-Za-z_][\w\s\*]*\b{re.escape(name)}\s*\(")
    for index, line in enumerate(lines):
        if definition.match(line) and not line.rstrip().endswith(";"):
            depth, opened = 0, False
            for end in range(index, len(lines)):
                depth += lines[end].count("{") - lines[end].count("}")
                opened = opened or "{" in lines[end]
                if opened and depth == 0:
                    return Span(index + 1, end + 1)
    raise LookupError(f"no function {name!r}")


def code_lines(path: Path, names: tuple[str, ...] = ()) -> int:
    """Lines of code in ``path``, or only in its top-level ``names``.

    Raises:
        LookupError: If one of ``names`` is not defined there.
    """
    text = path.read_text()
    python = path.suffix == ".py"
    lines = _python_code_lines(text) if python else _c_code_lines(text)
    if not names:
        return len(lines)
    span_of = _python_span if python else _c_span
    counted: set[int] = set()
    for name in names:
        span = span_of(text, name)
        counted |= {line for line in lines if span.first <= line <= span.last}
    return len(counted)


def count(places: tuple[str, ...]) -> int:
    """Lines of code in ``places``: ``"path"`` (a whole file) or
    ``"path::name"`` (one definition in it), paths from the project's top.
    """
    by_file: dict[str, tuple[str, ...]] = {}
    whole: set[str] = set()
    for place in places:
        path, _, name = place.partition("::")
        if name:
            by_file[path] = (*by_file.get(path, ()), name)
        else:
            whole.add(path)
    total = sum(code_lines(ROOT / path) for path in whole)
    total += sum(
        code_lines(ROOT / path, names) for path, names in by_file.items() if path not in whole
    )
    return total
