"""The EchoProtocol: the rules of each mode, without I/O.

Every case runs whole, one byte at a time, at every split point and under
seeded random chunkings; the echo is compared joined, so it cannot depend on
how the input was cut. Timing rules (when a header is due) are checked with
explicit times, as the protocol reads no clock.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import chunkings
from trio_echo import (
    EchoProtocol,
    LocalProtocolError,
    Mode,
    Outcome,
    Reason,
    RemoteProtocolError,
    encode_message,
)


def run(mode: Mode, chunks: list[bytes], *, eof: bool) -> tuple[bytes, EchoProtocol]:
    """Feed ``chunks`` (then the end of stream) until reading is done."""
    protocol = EchoProtocol(mode, max_message_size=1000)
    echo = b""
    for chunk in [*chunks, *([b""] if eof else [])]:
        if protocol.reading_done:
            break
        echo += b"".join(bytes(piece) for piece in protocol.receive_data(chunk))
    return echo, protocol


CASES = [
    # mode, input, end of stream after it, echo, outcome, messages
    pytest.param(Mode.COUNT, b"5 hello", False, b"hello", Outcome.COMPLETE, 1, id="count"),
    pytest.param(Mode.COUNT, b"0 ", False, b"", Outcome.COMPLETE, 1, id="count-zero"),
    pytest.param(
        Mode.COUNT, b"5 hello and more", False, b"hello", Outcome.COMPLETE, 1, id="count-trailing"
    ),
    pytest.param(Mode.COUNT, b"3 1 2", False, b"1 2", Outcome.COMPLETE, 1, id="count-spaces"),
    pytest.param(Mode.COUNT, b"", True, b"", Outcome.NO_MESSAGE, 0, id="count-no-message"),
    pytest.param(Mode.ECHO, b"any 12 bytes", True, b"any 12 bytes", Outcome.CLOSED, 0, id="echo"),
    pytest.param(Mode.ECHO, b"", True, b"", Outcome.CLOSED, 0, id="echo-nothing"),
    pytest.param(Mode.FRAMED, b"2 ab3 cde0 ", True, b"2 ab3 cde0 ", Outcome.CLOSED, 3, id="framed"),
    pytest.param(Mode.FRAMED, b"", True, b"", Outcome.CLOSED, 0, id="framed-nothing"),
]


@pytest.mark.parametrize(("mode", "raw", "eof", "echo", "outcome", "messages"), CASES)
def test_every_mode_under_every_chunking(
    *, mode: Mode, raw: bytes, eof: bool, echo: bytes, outcome: Outcome, messages: int
) -> None:
    for chunks in chunkings(raw):
        got, protocol = run(mode, chunks, eof=eof)
        assert (got, protocol.outcome, protocol.messages) == (echo, outcome, messages), chunks


def test_count_stops_reading_at_the_end_of_its_message() -> None:
    protocol = EchoProtocol(Mode.COUNT)
    assert protocol.receive_data(b"2 ab") == [b"ab"]
    assert protocol.reading_done
    with pytest.raises(LocalProtocolError):
        protocol.receive_data(b"more")


def test_count_notes_bytes_after_its_message() -> None:
    protocol = EchoProtocol(Mode.COUNT)
    protocol.receive_data(b"2 ab")
    assert not protocol.trailing
    protocol = EchoProtocol(Mode.COUNT)
    protocol.receive_data(b"2 abX")
    assert protocol.trailing
    assert not EchoProtocol(Mode.ECHO).trailing


def test_echo_mode_skips_the_framer() -> None:
    protocol = EchoProtocol(Mode.ECHO, max_message_size=1)
    data = b"99999 not a length"
    (piece,) = protocol.receive_data(data)
    assert piece is data  # passed through as it came
    assert protocol.header_since is None


@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.FRAMED])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"-1 ", Reason.BAD_LENGTH, id="sign"),
        pytest.param(b"10000 ", Reason.TOO_MANY_DIGITS, id="digits"),
        pytest.param(b"1001 ", Reason.LENGTH_TOO_LARGE, id="too-large"),
    ],
)
def test_bad_lengths_raise_under_every_chunking(mode: Mode, raw: bytes, reason: Reason) -> None:
    for chunks in chunkings(raw):
        with pytest.raises(RemoteProtocolError) as caught:
            run(mode, chunks, eof=False)
        assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("mode", "raw", "reason"),
    [
        (Mode.COUNT, b"12", Reason.EOF_IN_HEADER),
        (Mode.COUNT, b"5 abc", Reason.EOF_IN_PAYLOAD),
        (Mode.FRAMED, b"1 a2", Reason.EOF_IN_HEADER),
        (Mode.FRAMED, b"1 a2 b", Reason.EOF_IN_PAYLOAD),
    ],
)
def test_end_of_stream_inside_a_message(mode: Mode, raw: bytes, reason: Reason) -> None:
    for chunks in chunkings(raw):
        with pytest.raises(RemoteProtocolError) as caught:
            run(mode, chunks, eof=True)
        assert caught.value.reason is reason


def test_count_header_is_due_from_the_start_until_it_is_complete() -> None:
    protocol = EchoProtocol(Mode.COUNT, now=100.0)
    assert protocol.header_since == 100.0
    protocol.receive_data(b"1", now=101.0)
    assert protocol.header_since == 100.0  # from the start, not the first digit
    protocol.receive_data(b"0 abc", now=102.0)
    assert protocol.header_since is None
    assert protocol.length == 10


def test_framed_header_is_due_from_its_first_byte() -> None:
    protocol = EchoProtocol(Mode.FRAMED, now=100.0)
    assert protocol.header_since is None  # nothing is due before a byte comes
    protocol.receive_data(b"1", now=105.0)
    assert protocol.header_since == 105.0
    protocol.receive_data(b"1", now=107.0)
    assert protocol.header_since == 105.0  # the same header: still due from its first byte
    protocol.receive_data(b" abcdefghijk", now=108.0)
    assert protocol.header_since is None  # complete, and the message too
    assert protocol.messages == 1
    protocol.receive_data(b"2", now=110.0)  # the next message's header
    assert protocol.header_since == 110.0
    protocol.receive_data(b" ab3 ", now=111.0)
    assert protocol.header_since is None  # in the payload of the third message
    assert (protocol.messages, protocol.headers, protocol.length) == (2, 3, 3)


def test_framed_header_begun_and_completed_in_one_read_is_never_due() -> None:
    protocol = EchoProtocol(Mode.FRAMED, now=0.0)
    protocol.receive_data(b"2 ab2 cd", now=1.0)
    assert protocol.header_since is None


def test_mode_is_converted_and_validated() -> None:
    assert EchoProtocol("framed").mode is Mode.FRAMED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nope"):
        EchoProtocol("nope")  # type: ignore[arg-type]


messages = st.lists(st.binary(max_size=30), max_size=5)


@given(payloads=messages, data=st.data())
def test_framed_answers_are_the_messages_under_any_chunking(
    payloads: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(encode_message(payload) for payload in payloads)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=8)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if b > a]
    echo, protocol = run(Mode.FRAMED, chunks, eof=True)
    assert echo == raw
    assert (protocol.outcome, protocol.messages) == (Outcome.CLOSED, len(payloads))


@given(payload=st.binary(max_size=60), extra=st.binary(max_size=10), data=st.data())
def test_count_echoes_exactly_the_payload_under_any_chunking(
    payload: bytes, extra: bytes, data: st.DataObject
) -> None:
    raw = encode_message(payload) + extra
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=8)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if b > a]
    echo, protocol = run(Mode.COUNT, chunks, eof=False)
    assert echo == payload
    assert protocol.outcome is Outcome.COMPLETE
