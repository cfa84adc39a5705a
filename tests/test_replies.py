"""A reply checked against what was sent, in each mode: bare answers as one echo
of the message, framed ones parsed and each compared with its message; and
the answers read alike, bare or framed."""

from __future__ import annotations

import pytest

from trio_echo import EchoMismatchError, FramedAnswers, Mode, RemoteProtocolError
from trio_echo._messages import Message
from trio_echo.client._replies import BareAnswers, ReplyCheck, answers_of
from trio_echo.protocol import rules_of


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize(("mode", "reply"), [(Mode.COUNT, b"hello"), (Mode.ECHO, b"hello")])
@pytest.mark.parametrize("size", [1, 2, 100])
def test_a_bare_echo_that_matches_passes(mode: Mode, reply: bytes, size: int) -> None:
    seen: list[bytes] = []
    check = ReplyCheck(rules_of(mode), [b"hello"], on_payload=seen.append)
    for chunk in chunks_of(reply, size):
        check(chunk)
    check.end()
    assert check.problem() is None
    assert b"".join(seen) == b"hello"


def test_a_bare_echo_that_is_short_is_a_problem_at_the_end() -> None:
    check = ReplyCheck(rules_of(Mode.ECHO), [b"hello"])
    check(b"hel")
    assert check.problem() == "the echo was short: 3 of 5 bytes came back"


def test_a_bare_echo_that_differs_raises_before_it_is_passed_on() -> None:
    seen: list[bytes] = []
    check = ReplyCheck(rules_of(Mode.ECHO), [Message(b"hello")], on_payload=seen.append)
    with pytest.raises(EchoMismatchError, match=r"at byte 1$"):
        check(b"hX")
    assert seen == []


def test_a_count_echo_of_the_length_prefix_names_the_servers_mode() -> None:
    check = ReplyCheck(rules_of(Mode.COUNT), [b"hello"])
    with pytest.raises(EchoMismatchError, match="seems to be in echo or framed mode"):
        check(b"5 hel")


def test_a_bare_echo_is_of_one_message() -> None:
    with pytest.raises(ValueError, match="unpack"):
        ReplyCheck(rules_of(Mode.ECHO), [b"a", b"b"])


@pytest.mark.parametrize("size", [1, 3, 100])
def test_framed_answers_that_match_pass(size: int) -> None:
    seen: list[bytes] = []
    ends: list[int] = []
    check = ReplyCheck(
        rules_of(Mode.FRAMED),
        [b"one", b"", b"three"],
        on_payload=seen.append,
        on_answer=lambda: ends.append(len(b"".join(seen))),
    )
    for chunk in chunks_of(b"3 one0 5 three", size):
        check(chunk)
    check.end()
    assert check.problem() is None
    assert b"".join(seen) == b"onethree"
    assert ends == [3, 3, 8]  # each answer's end, after its payload


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        pytest.param(b"3 onX", "differs from what was sent at byte 2", id="differs"),
        pytest.param(b"2 on", "answer 1: the echo was short: 2 of 3", id="short-answer"),
        pytest.param(b"4 oneX", "long: more than the 3 bytes", id="long-answer"),
        pytest.param(b"3 one5 three1 x", "more answers came back than the 2 sent", id="extra"),
        pytest.param(b"3 one5 three0 ", "more answers came back than the 2 sent", id="extra-empty"),
    ],
)
def test_a_framed_answer_that_differs_raises(reply: bytes, problem: str) -> None:
    check = ReplyCheck(rules_of(Mode.FRAMED), [b"one", b"three"])
    with pytest.raises(EchoMismatchError, match=problem):
        check(reply)


def test_framed_answers_missing_are_a_problem() -> None:
    check = ReplyCheck(rules_of(Mode.FRAMED), [b"one", b"two"])
    check(b"3 one")
    check.end()
    assert check.problem() == "1 answers came back for 2 messages"


def test_framed_answers_cut_inside_one_break_the_framing_at_the_end() -> None:
    check = ReplyCheck(rules_of(Mode.FRAMED), [b"one"])
    check(b"3 o")
    with pytest.raises(RemoteProtocolError):
        check.end()


def test_a_framed_answer_longer_than_any_message_breaks_the_framing() -> None:
    with pytest.raises(RemoteProtocolError):
        ReplyCheck(rules_of(Mode.FRAMED), [b"one", b"two"])(b"4 ")


def test_a_bare_payload_to_a_framed_client_breaks_the_framing() -> None:
    with pytest.raises(RemoteProtocolError):
        ReplyCheck(rules_of(Mode.FRAMED), [b"one"])(b"one")


@pytest.mark.parametrize(
    ("mode", "kind"),
    [(Mode.COUNT, BareAnswers), (Mode.ECHO, BareAnswers), (Mode.FRAMED, FramedAnswers)],
)
def test_a_modes_answers_are_read_by_their_kind(mode: Mode, kind: type) -> None:
    assert isinstance(answers_of(rules_of(mode), 100), kind)


def test_bare_answers_are_the_echo_as_one() -> None:
    answers = BareAnswers()
    for chunk in (b"he", b"", b"llo"):
        answers(chunk)
    answers.end()
    assert answers.answers == [b"hello"]
