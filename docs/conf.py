"""Sphinx configuration: the trio_echo documentation site.

Built by ``nox -s docs`` with warnings as errors (``-W``) and every
cross-reference checked (``nitpicky``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from docutils.nodes import Text
from sphinx.pycode import ModuleAnalyzer

if TYPE_CHECKING:
    from docutils.nodes import Element, Node
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

project = "trio_echo"
author = "the trio_echo developers"
copyright = "2026, the trio_echo developers"

import trio_echo  # noqa: E402

version = release = trio_echo.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
    "sphinxarg.ext",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
# A flag's two hyphens stay two hyphens (docutils would make "--grace" a dash).
smartquotes = False
root_doc = "index"
exclude_patterns = ["_build", "_inventories"]
nitpicky = True
default_role = "py:obj"

html_theme = "furo"
html_title = f"trio_echo {version}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
myst_ref_domains = ["std", "py"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# The inventories of the projects this one links to, shipped in
# docs/_inventories/: the build never fetches one.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(DOCS / "_inventories" / "python.inv")),
    "attrs": ("https://www.attrs.org/en/stable", str(DOCS / "_inventories" / "attrs.inv")),
}

# trio's names. trio ships no inventory in its wheel and this build fetches
# none, so these few are left unlinked rather than guessed at.
nitpick_ignore = [
    ("py:class", "trio.TaskStatus"),
    ("py:class", "trio.abc.Stream"),
    ("py:exc", "trio.BrokenResourceError"),
    ("py:exc", "trio.Cancelled"),
    ("py:obj", "trio.BrokenResourceError"),
    ("py:obj", "trio.SSLStream"),
    ("py:obj", "trio.SocketStream"),
    ("py:obj", "trio.TooSlowError"),
    ("py:obj", "trio.abc.HalfCloseableStream"),
]


def _constant_docstring(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Give a public constant the docstring written where it is defined.

    autodoc looks for ``trio_echo.DEFAULT_PORT``'s docstring in the package's
    ``__init__.py``, finds none, and falls back on that of ``int``.
    """
    module, _, short = name.rpartition(".")
    if what == "data" and module == "trio_echo" and short in trio_echo.__all__:
        for home in _MODULES:
            written = ModuleAnalyzer.for_module(home).find_attr_docs().get(("", short))
            if written is not None:
                lines[:] = list(written)
                return


def _keep_prose(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Keep the first line of an attribute's docstring, and of a Returns section.

    napoleon reads either line as ``type: description``; in this project
    both are prose (``Count mode: the payload was echoed in full.``, ``One
    of: ...``), and types come from the annotations. Run before napoleon,
    this hides the line's first colon from it; `_restore_colon`, run after,
    puts it back.
    """
    if what in ("attribute", "data", "property") and lines:
        lines[0] = lines[0].replace(":", _COLON, 1)
    for number, line in enumerate(lines[:-1]):
        if line.strip() == "Returns:":
            lines[number + 1] = lines[number + 1].replace(":", _COLON, 1)


def _restore_colon(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    lines[:] = [line.replace(_COLON, ":") for line in lines]


_COLON = "\N{RATIO}"


def _modules() -> list[str]:
    """The names of trio_echo's modules, the package's own first."""
    return ["trio_echo"] + [
        module.name
        for module in pkgutil.walk_packages(trio_echo.__path__, "trio_echo.")
        if not module.name.endswith("__main__")
    ]


def _private_names() -> frozenset[str]:
    """Every name trio_echo defines, public or not.

    Its modules' top-level names, and its classes' attributes.
    """
    names: set[str] = set()
    for module in _MODULES:
        namespace = vars(importlib.import_module(module))
        names.update(namespace)
        for value in namespace.values():
            if isinstance(value, type) and value.__module__.startswith("trio_echo"):
                names.update(dir(value))
    return frozenset(names)


def _resolve(app: Sphinx, env: BuildEnvironment, node: Element, contnode: Element) -> Node | None:
    """Resolve the references autodoc makes from docstrings and annotations.

    - A public name at its private home (``trio_echo.server._config.
      ServerConfig``, from an annotation) links to where it is documented,
      ``trio_echo.ServerConfig``.
    - A method written with its arguments (```sent(count, now)```) links
      to the method.
    - A name trio_echo defines but does not publish (``Timers``, a part of
      `EchoProtocol`) reads as code, not a link: there is no page to link.

    Anything else stays unresolved, and ``nitpicky`` fails the build on it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].partition("(")[0]
    last = target.rpartition(".")[2]
    candidates = [target]
    if target.startswith("trio_echo.") and last in trio_echo.__all__:
        candidates.append(f"trio_echo.{last}")
    if (cls := node.get("py:class")) is not None:
        candidates.append(f"trio_echo.{cls}.{target}")
    candidates.append(f"trio_echo.{target}")
    domain = env.get_domain("py")
    for candidate in candidates:
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, "obj", candidate, node, contnode
        )
        if found is not None:
            return found
    if last in _PRIVATE or target.partition(".")[0] in _PRIVATE:
        return contnode
    return None


_MODULES = _modules()
_PRIVATE = _private_names()


_HERE = re.compile(r", here [\d,]+\)")


def _no_build_machine_figures(app: Sphinx, doctree: Element) -> None:
    """Leave out what ``--help`` says of the machine it runs on.

    A default derived from the machine (``--max-connections``: the
    open-file limit less 64) is given in ``--help`` with its value there
    (``, here 19936``); on this site that would be the value on the machine
    that built it, not the reader's.
    """
    for node in doctree.findall(Text):
        if _HERE.search(node.astext()):
            node.parent.replace(node, Text(_HERE.sub(")", node.astext())))


def setup(app: Sphinx) -> None:
    """Connect this site's handlers."""
    app.connect("autodoc-process-docstring", _constant_docstring, priority=300)
    app.connect("autodoc-process-docstring", _keep_prose, priority=400)
    app.connect("autodoc-process-docstring", _restore_colon, priority=600)
    app.connect("missing-reference", _resolve)
    app.connect("doctree-read", _no_build_machine_figures)
