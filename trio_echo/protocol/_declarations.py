# Settings, each declared once: an attrs field whose metadata is its
# `Setting`. The field carries the default; the `Setting` its bound, its unit,
# its flag and what it is, in one sentence. The command line builds its flags
# and its --help from these declarations, the documentation's table of bounds is
# generated from them, and the classes' docstrings list them: none of these
# can disagree with the value a connection or the server keeps.
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs

__all__ = ["ConfigError", "Setting", "documented", "setting", "settings"]

_SETTING = "trio_echo.setting"
"""The metadata key of a field's `Setting`."""


class ConfigError(ValueError):
    """A setting out of its bounds, or two settings that disagree.

    Its message names settings by their field names; `describe` names them
    as its caller does (the command line by its flags).

    Attributes:
        setting: The setting at fault.
        problem: What is wrong with it, naming any other setting as
            ``{name}`` (formatted by `describe`).
        other: That other setting's name, if any.
    """

    def __init__(self, setting: str, problem: str, other: str | None = None) -> None:
        self.setting, self.problem, self.other = setting, problem, other
        super().__init__(self.describe())

    def describe(self, name: Callable[[str], str] = str) -> str:
        """The error in a sentence, each setting called ``name(setting)``."""
        other = name(self.other) if self.other else ""
        return f"{name(self.setting)} {self.problem.format(name=other)}"


@attrs.frozen
class Setting:
    """What a setting is, besides its default: its flag, unit, bound and words.

    Attributes:
        flag: The command line's flag: ``--idle-timeout``.
        doc: What the setting is or bounds, as a phrase for ``--help``, the
            documentation's table of bounds and the docstrings. ``{name}`` stands for the
            setting ``name``, written as each of them names settings.
        group: The ``--help`` section that lists it.
        unit: How its values are written and read: ``bytes``, ``seconds``,
            ``bytes/s``, ``count``, or a kind of its own for the command line
            (``port``, ``file``, ``choice``, ...).
        least: The smallest value it takes, if it is bounded so.
        positive: Whether it must be more than zero.
        floor: A larger least that the command line holds to, if any: the
            library takes less, for tests and embedding.
        why: Why the floor, in a few words.
        default_text: The default in words, when it is derived.
        choices: The values it takes, if they are a list.
        bound: Whether the documentation's table of bounds lists it.
    """

    flag: str
    doc: str
    group: str
    unit: str
    least: float | None = None
    positive: bool = False
    floor: float | None = None
    why: str = ""
    default_text: str = ""
    choices: tuple[str, ...] = ()
    bound: bool = False

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value``, if it is out of bounds."""
        if self.positive:
            return None if value > 0 else f"must be positive, not {value!r}"
        if self.least is None or value >= self.least:
            return None
        words = "zero or more" if self.least == 0 else f"at least {self.least:g}"
        return f"must be {words}, not {value!r}"

    def text(self, name: Callable[[str], str]) -> str:
        """`doc`, each setting it mentions called ``name(setting)``."""
        return self.doc.format_map(_Names(name))

    def default_in_words(self, name: Callable[[str], str]) -> str:
        """`default_text`, each setting it mentions called ``name(setting)``."""
        return self.default_text.format_map(_Names(name))


class _Names(dict[str, str]):
    def __init__(self, name: Callable[[str], str]) -> None:
        super().__init__()
        self._name = name

    def __missing__(self, key: str) -> str:
        return self._name(key)


def _check(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = attribute.metadata[_SETTING].problem(value)
    if problem is not None:
        raise ConfigError(attribute.name, problem)


def setting(
    default: Any,
    *,
    converter: Callable[[Any], Any] | None = None,
    **declaration: Any,
) -> Any:
    """An attrs field declared as a setting.

    Args:
        default: Its default: a value, or an `attrs.Factory`.
        converter: What turns a given value into the field's type, if anything.
        **declaration: The `Setting`'s attributes.
    """
    declared = Setting(**declaration)
    return attrs.field(
        default=default,
        converter=converter,
        validator=_check if declared.least is not None or declared.positive else None,
        metadata={_SETTING: declared},
    )


def settings(cls: type) -> Iterator[tuple[attrs.Attribute[Any], Setting]]:
    """The fields of the attrs class ``cls`` declared as settings, in order."""
    for field in attrs.fields(cls):
        if _SETTING in field.metadata:
            yield field, field.metadata[_SETTING]


_C = TypeVar("_C", bound=type)

_UNITS = ("bytes", "seconds", "bytes/s")
"""The units a docstring names (a count, a choice or a file speaks for itself)."""


def documented(cls: _C) -> _C:
    """Add the ``Attributes:`` section of ``cls``'s docstring, from its settings."""
    lines = [
        f"        {field.name}: {declared.text(str)}"
        + (f" ({declared.unit})." if declared.unit in _UNITS else ".")
        for field, declared in settings(cls)
    ]
    cls.__doc__ = f"{(cls.__doc__ or '').rstrip()}\n\n    Attributes:\n" + "\n".join(lines)
    return cls
