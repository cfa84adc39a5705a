"""Every setting declared once: each declaration reaches its flag, its
--help line, its bound and the documentation's table, and every check between
settings fires with one sentence naming the flags."""

from __future__ import annotations

import argparse
import re
from typing import Any

import attrs
import pytest

from trio_echo import ConfigError, Limits, Mode, ServerConfig
from trio_echo.cli._checks import (
    CLIENT_RULES,
    SERVER_RULES,
    Excludes,
    Needs,
    UsageError,
    check_client,
    check_server,
)
from trio_echo.cli._parser import _server_options, build_parser
from trio_echo.cli._server_options import ServerOptions
from trio_echo.cli._settings import (
    Declared,
    bounds_rows,
    declared,
    flag,
    help_text,
)
from trio_echo.protocol._declarations import Setting, settings
from trio_echo.protocol._limits import default_max_held


def server_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    return parser.parse_args(["server"]).command_parser  # type: ignore[no-any-return]


def options_of(*argv: str) -> ServerOptions:
    args = vars(build_parser().parse_args(["server", *argv]))
    return _server_options(
        {k: v for k, v in args.items() if k not in ("command", "command_parser")}
    )


def by_flag(name: str) -> Declared:
    (one,) = (one for one in declared() if one.setting.flag == name)
    return one


def test_every_setting_of_the_three_homes_is_a_flag_of_the_server_command() -> None:
    homes = (Limits, ServerConfig, ServerOptions)
    names = [field.name for home in homes for field, _setting in settings(home)]
    actions = {action.dest: action for action in server_parser()._actions}
    assert sorted(one.name for one in declared()) == sorted(names)
    for one in declared():
        assert one.setting.flag in actions[one.name].option_strings
        assert actions[one.name].help == help_text(one)


def test_a_limit_reaches_the_connections_limits_by_its_own_flag() -> None:
    limits = options_of(
        "--idle-timeout",
        "7.5",
        "--connection-buffer",
        "128KiB",
        "--tls-handshake-timeout",
        "3",
        "--tls-cert",
        "c.pem",
    ).config.limits
    assert (limits.idle_timeout, limits.max_held, limits.handshake_timeout) == (7.5, 128 << 10, 3)
    assert options_of("--memory-budget", "1MiB").config == ServerConfig(memory_budget=1 << 20)


def test_a_flag_left_out_is_its_declarations_default() -> None:
    options = options_of()
    assert options == ServerOptions()
    assert options.config.limits == Limits()
    assert by_flag("--idle-timeout").default == Limits().idle_timeout == 60.0


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (
            "--idle-timeout",
            "time a connection may go with nothing received or sent, "
            "or with answers waiting and none taken (default: 60 s)",
        ),
        ("--memory-budget", "(at least 64KiB, one full read; default: 256MiB)"),
        ("--min-data-rate", "once --min-data-rate-grace has passed"),
        ("--tls-handshake-timeout", "(default: that of --header-timeout)"),
        ("--max-connections", "(default: the open-file limit less 64, here "),
        ("--unix-mode", "(default: 0600)"),
    ],
)
def test_the_help_line_says_the_declarations_words_bound_and_default(name: str, words: str) -> None:
    assert words in help_text(by_flag(name)).replace("\u00a0", " ")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--idle-timeout", "0"], "'0' is not a positive number of seconds"),
        (["--linger-timeout", "-1"], "'-1' is not zero or a positive number of seconds"),
        (["--min-data-rate", "-1"], "is not zero or a positive number of bytes per second"),
        (["--connection-buffer", "1K"], "'1K' is less than 64KiB, one full read"),
        (["--max-connections", "0"], "'0' is not a whole number of at least 1"),
        (["--mode", "chat"], "invalid choice: 'chat'"),
    ],
)
def test_the_parser_holds_each_flag_to_its_declared_bound(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", *argv])
    assert words in capsys.readouterr().err


def test_a_choice_is_taken_in_any_case() -> None:
    assert options_of("--mode", "FRAMED", "--log-level", "debug").config.mode is Mode.FRAMED
    assert options_of("--log-level", "debug").log_level == "DEBUG"


@pytest.mark.parametrize(
    ("settings_", "words"),
    [
        ({"idle_timeout": 0}, "idle_timeout must be positive, not 0"),
        ({"linger_timeout": -1.0}, "linger_timeout must be zero or more, not -1.0"),
        ({"max_held": 0}, "max_held must be at least 1, not 0"),
        ({"min_data_rate": float("nan")}, "min_data_rate must be zero or more, not nan"),
    ],
)
def test_the_library_holds_each_limit_to_its_declared_bound(
    settings_: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(words)}$"):
        Limits(**settings_)


def test_the_declarations_document_their_classes() -> None:
    assert (
        "idle_timeout: time a connection may go with nothing received or sent, "
        "or with answers waiting and none taken (seconds)." in (Limits.__doc__ or "")
    )
    assert "max_connections: connections served at once" in (ServerConfig.__doc__ or "")


def test_a_setting_names_the_settings_it_mentions_as_asked() -> None:
    grace = Setting(flag="--x", doc="after {grace}", group="g", unit="", default_text="{grace}")
    assert grace.text(lambda name: f"<{name}>") == "after <grace>"
    assert grace.default_in_words(str.upper) == "GRACE"
    assert Setting(flag="--x", doc="", group="g", unit="").problem(-5) is None


def test_the_connection_buffers_default_is_declared_once() -> None:
    assert (
        Limits(max_message_size=1000).max_held == default_max_held(1000) == 1000 + 62 + (64 << 10)
    )
    assert Limits(header_timeout=3).handshake_timeout == 3


def test_the_table_of_bounds_is_made_from_the_declarations() -> None:
    rows = bounds_rows()
    assert rows[0][0] == "`--max-message-size`"  # a connection's bounds first
    assert (
        "`--idle-timeout`",
        "60 s",
        "time a connection may go with nothing received or sent, or with answers waiting"
        " and none taken",
    ) in rows
    assert [flag for flag, _, _ in rows].count("`--grace`") == 1
    assert "`--port`" not in [flag for flag, _, _ in rows]  # not a bound


def test_a_flag_is_named_by_its_declaration() -> None:
    assert flag("max_held") == "--connection-buffer"
    assert flag("handshake_timeout") == "--tls-handshake-timeout"
    assert flag("server_name") == "--server-name"  # the client's, by its name


VALUES: dict[str, Any] = {"fds": [3], "host": ("localhost", None), "tls": True}


@pytest.mark.parametrize(
    ("rule", "check"),
    [pytest.param(rule, check_server, id=f"server-{rule.setting}") for rule in SERVER_RULES]
    + [pytest.param(rule, check_client, id=f"client-{rule.setting}") for rule in CLIENT_RULES],
)
def test_each_check_between_settings_fires(rule: Needs | Excludes, check: Any) -> None:
    given = {} if rule.other == "tls" or check is check_server else {"tls": True}
    given[rule.setting] = VALUES.get(rule.setting, "x")
    if isinstance(rule, Excludes):
        given[rule.other] = VALUES.get(rule.other, "x")
    with pytest.raises(UsageError) as caught:
        check(given)
    assert str(caught.value) == f"{flag(rule.setting)} {rule.problem}"
    if isinstance(rule, Needs):
        rule.check({**given, rule.other: VALUES.get(rule.other, "x")})  # with it, none


def test_the_server_checks_name_what_is_wrong() -> None:
    twice = "--fd 3 is given more than once; name each socket once"
    with pytest.raises(UsageError, match=f"^{re.escape(twice)}$"):
        check_server({"fds": [3, 4, 3]})
    assert check_server({"unix": "s"})["tcp"] is False
    assert "tcp" not in check_server({"unix": "s", "port": 0})


def test_the_clients_host_and_port_must_agree() -> None:
    assert check_client({"host": ("::1", 5000)})["port"] == 5000
    with pytest.raises(
        UsageError, match=r"^--host names port 5000 and --port names 6000: give one$"
    ):
        check_client({"host": ("::1", 5000), "port": 6000})


def test_a_buffer_over_the_budget_is_named_by_its_flags() -> None:
    with pytest.raises(ConfigError) as caught:
        options_of("--connection-buffer", "2MiB", "--memory-budget", "1MiB")
    assert caught.value.describe(flag) == (
        "--connection-buffer (2,097,152 bytes) may not exceed --memory-budget (1,048,576 bytes)"
    )


def test_a_default_buffer_is_fitted_within_the_budget() -> None:
    config = ServerConfig(memory_budget=1 << 20, limits=Limits(idle_timeout=5))
    assert config.limits == attrs.evolve(Limits(idle_timeout=5), max_held=1 << 20)
