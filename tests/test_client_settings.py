"""The client command's settings, declared once on `ClientOptions`: each reaches
its flag, its --help line and its reader, and the checks between flags name
the sections they were declared in."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from trio_echo import ConfigError, Mode
from trio_echo.cli._client_options import LOAD_FLAGS, TLS_FLAGS, ClientOptions
from trio_echo.cli._parser import build_parser
from trio_echo.cli._settings import Declared, client_declared, flag, help_text
from trio_echo.protocol._declarations import settings


def client_parser() -> argparse.ArgumentParser:
    return build_parser().parse_args(["client", "x"]).command_parser  # type: ignore[no-any-return]


def given(*argv: str) -> dict[str, Any]:
    args = vars(build_parser().parse_args(["client", *argv]))
    return {k: v for k, v in args.items() if k not in ("command", "command_parser")}


def by_name(name: str) -> Declared:
    (one,) = (one for one in client_declared() if one.name == name)
    return one


def test_every_setting_of_the_client_options_is_an_argument_of_the_client_command() -> None:
    names = [field.name for field, _setting in settings(ClientOptions)]
    actions = {action.dest: action for action in client_parser()._actions}
    assert sorted(one.name for one in client_declared()) == sorted(names)
    for one in client_declared():
        action = actions[one.name]
        assert action.help == help_text(one)
        if one.setting.flag.startswith("-"):
            assert action.option_strings == one.setting.flag.split(", ")
        else:
            assert action.option_strings == []
            assert action.metavar == one.setting.flag


def test_help_lists_the_sections_in_their_order() -> None:
    usage, _, text = client_parser().format_help().partition("positional arguments:")
    assert "[--file PATH]" in usage
    assert text.index("MESSAGE  ") < text.index("--file PATH") < text.index("\nTLS:\n")
    assert text.index("\nTLS:\n") < text.index("--cafile FILE") < text.index("\nload run:\n")
    assert text.index("\nload run:\n") < text.index("--concurrency N")
    assert "exits with status 10; a TLS file that cannot be used, with 2." in " ".join(text.split())


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("host", "as the server prints it ([::1]:50007) (default: 127.0.0.1)"),
        ("port", "the server's port (default: 50007)"),
        ("mode", "the server's mode (default: count)"),
        ("timeout", "in a load run, per message (default: 60 s)"),
        ("server_name", "(default: the host; over --unix, localhost)"),
        ("key", "(default: in the --cert file)"),
        ("cafile", "(default: the system's trust store)"),
        ("size", "at most 1GiB; times --concurrency, at most 4GiB (the bytes under way"),
    ],
)
def test_the_help_line_says_the_declarations_words_and_default(name: str, words: str) -> None:
    assert words in help_text(by_name(name)).replace("\u00a0", " ")


def test_a_flag_left_out_is_its_declarations_default() -> None:
    assert given("x") == {"message": ["x"]}
    assert ClientOptions(message=("x",)).timeout == by_name("timeout").default == 60.0


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["-q"], {"quiet": True}),
        (["--quiet"], {"quiet": True}),
        (["--host", "[::1]:5000"], {"host": ("::1", 5000)}),
        (["--mode", "FRAMED"], {"mode": "framed"}),
        (["--size", "1KiB"], {"size": 1024}),
        (["--timeout", "0.5"], {"timeout": 0.5}),
        (["--server-name", "example.org"], {"server_name": "example.org"}),
    ],
)
def test_each_flag_is_read_as_its_unit_says(argv: list[str], value: dict[str, Any]) -> None:
    assert given(*argv, "x") == {**value, "message": ["x"]}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--size", "2GiB"], "more than 1GiB, the largest message a load run makes"),
        (["--concurrency", "0"], "'0' is not a whole number of at least 1"),
        (["--timeout", "0"], "'0' is not a positive number of seconds"),
        (["--mode", "chat"], "invalid choice: 'chat'"),
    ],
)
def test_the_parser_holds_each_flag_to_its_reader(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["client", *argv])
    assert words in capsys.readouterr().err


def test_the_library_holds_the_options_to_their_bounds() -> None:
    with pytest.raises(ConfigError, match=r"^timeout must be positive, not 0$"):
        ClientOptions(timeout=0)
    with pytest.raises(ConfigError, match=r"^concurrency must be at least 1, not 0$"):
        ClientOptions(concurrency=0)
    assert ClientOptions(mode="echo").mode is Mode.ECHO


def test_the_flags_of_a_section_are_those_declared_in_it() -> None:
    assert LOAD_FLAGS == ("concurrency", "size", "json")
    assert TLS_FLAGS == ("cafile", "server_name", "cert", "key")


def test_a_client_flag_is_named_by_its_declaration() -> None:
    assert flag("quiet") == "--quiet"
    assert flag("concurrency") == "--concurrency"


def test_the_declarations_document_the_options() -> None:
    assert "timeout: give up after this long; in a load run, per message (seconds)." in (
        ClientOptions.__doc__ or ""
    )
