"""Each mode's client rules: what a client sends, what comes back, and when it
half-closes; one table per rule, a row per mode."""

from __future__ import annotations

import pytest

from trio_echo.protocol import Mode, ModeRules, rules_of


@pytest.mark.parametrize("mode", list(Mode))
def test_a_mode_is_found_by_itself_or_by_its_name(mode: Mode) -> None:
    rules = rules_of(mode)
    assert isinstance(rules, ModeRules)
    assert rules.mode is mode
    assert rules_of(mode.value) is rules


def test_an_unknown_mode_has_no_rules() -> None:
    with pytest.raises(ValueError, match="chat"):
        rules_of("chat")


@pytest.mark.parametrize(
    ("mode", "framed_requests", "framed_answers", "one_message", "pipelines"),
    [
        (Mode.COUNT, True, False, True, False),
        (Mode.ECHO, False, False, False, False),
        (Mode.FRAMED, True, True, False, True),
    ],
)
def test_what_each_mode_is(
    mode: Mode, framed_requests: bool, framed_answers: bool, one_message: bool, pipelines: bool
) -> None:
    rules = rules_of(mode)
    assert rules.framed_requests is framed_requests
    assert rules.framed_answers is framed_answers
    assert rules.one_message is one_message
    assert rules.pipelines is pipelines


@pytest.mark.parametrize(
    ("mode", "before_payload", "before_answer"),
    [(Mode.COUNT, b"5 ", b""), (Mode.ECHO, b"", b""), (Mode.FRAMED, b"5 ", b"5 ")],
)
def test_what_goes_before_a_payload_and_its_answer(
    mode: Mode, before_payload: bytes, before_answer: bytes
) -> None:
    rules = rules_of(mode)
    assert rules.request_prefix(5) == before_payload
    assert rules.answer_prefix(5) == before_answer


@pytest.mark.parametrize(
    ("mode", "sent"),
    [
        (Mode.COUNT, [b"5 ", b"hello"]),
        (Mode.ECHO, [b"hello"]),
        (Mode.FRAMED, [b"5 ", b"hello", b"0 ", b"", b"3 ", b"abc"]),
    ],
)
def test_what_a_client_sends(mode: Mode, sent: list[bytes]) -> None:
    payloads = [b"hello", b"", b"abc"] if rules_of(mode).pipelines else [b"hello"]
    assert rules_of(mode).requests(payloads, len) == sent


def test_a_request_keeps_its_payload_as_it_was_given() -> None:
    # A payload need not be bytes: what the client sends it as is its own.
    payload = object()
    assert rules_of(Mode.COUNT).requests([payload], lambda _: 12) == [b"12 ", payload]
    assert rules_of(Mode.ECHO).requests([payload], lambda _: 12) == [payload]


@pytest.mark.parametrize(
    ("mode", "sizes", "reply"),
    [
        (Mode.COUNT, [5], 5),
        (Mode.ECHO, [5], 5),
        (Mode.ECHO, [0], 0),
        (Mode.FRAMED, [5, 0, 12], len(b"5 ") + 5 + len(b"0 ") + len(b"12 ") + 12),
        (Mode.FRAMED, [], 0),
    ],
)
def test_how_big_the_reply_is(mode: Mode, sizes: list[int], reply: int) -> None:
    assert rules_of(mode).reply_size(sizes) == reply


@pytest.mark.parametrize(
    ("mode", "after"),
    [
        (Mode.COUNT, None),  # never: the server closes once the payload is echoed
        (Mode.ECHO, 100),  # once the whole echo is back
        (Mode.FRAMED, 0),  # right after the last message
    ],
)
def test_when_a_client_half_closes(mode: Mode, after: int | None) -> None:
    assert rules_of(mode).half_close_after(100) == after


def test_a_class_that_names_no_mode_is_no_modes_rules() -> None:
    class Shared(ModeRules):  # rules for several modes to build on
        __slots__ = ()

    assert [rules_of(mode).mode for mode in Mode] == list(Mode)
    assert not any(type(rules_of(mode)) is Shared for mode in Mode)
