"""The CountFramer against the written grammar.

Every byte-level case runs whole, one byte at a time, with trailing bytes, at
every split point and under seeded random chunkings; results are normalised
(adjacent payload pieces merged) so they cannot depend on the chunking.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, strategies as st

from tests.support.chunks import chunkings, one_byte_at_a_time
from trio_echo import (
    DEFAULT_MAX_MESSAGE_SIZE,
    NEED_DATA,
    CountFramer,
    EndOfMessage,
    EndOfStream,
    Event,
    Header,
    LocalProtocolError,
    Payload,
    Reason,
    RemoteProtocolError,
    encode_header,
    encode_message,
)


def normalise(events: Iterable[Event]) -> list[Event]:
    """Merge adjacent Payload events, so the result ignores the chunking."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Payload) and merged and isinstance(merged[-1], Payload):
            merged[-1] = Payload(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def drain(framer: CountFramer) -> Iterator[Event]:
    while True:
        event = framer.next_event()
        if event is NEED_DATA:
            return
        assert isinstance(event, Header | Payload | EndOfMessage | EndOfStream)
        yield event
        if isinstance(event, EndOfStream):
            return


def frame(
    chunks: Iterable[bytes], *, eof: bool = False, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> list[Event]:
    framer = CountFramer(max_message_size=max_message_size)
    events: list[Event] = []
    for chunk in chunks:
        framer.receive_data(chunk)
        events.extend(drain(framer))
    if eof:
        framer.receive_data(b"")
        events.extend(drain(framer))
    return normalise(events)


def message(payload: bytes) -> list[Event]:
    events: list[Event] = [Header(len(payload))]
    if payload:
        events.append(Payload(payload))
    events.append(EndOfMessage())
    return events


VALID = [
    pytest.param(b"5 hello", message(b"hello"), id="simple"),
    pytest.param(b"0 ", message(b""), id="zero-length"),
    pytest.param(b"1 \x00", message(b"\x00"), id="nul-payload"),
    pytest.param(b"3    ", message(b"   "), id="spaces-in-payload"),
    pytest.param(b"4 12 3", message(b"12 3"), id="digits-and-space-in-payload"),
    pytest.param(b"10 0123456789", message(b"0123456789"), id="two-digit-length"),
    pytest.param(b"2 ab0 3 xyz", message(b"ab") + message(b"") + message(b"xyz"), id="pipelined"),
    pytest.param(
        b"67108864 " + b"x" * 100,
        [Header(DEFAULT_MAX_MESSAGE_SIZE), Payload(b"x" * 100)],
        id="maximum-length-payload-in-flight",
    ),
    pytest.param(b"12", [], id="header-in-progress"),
    pytest.param(b"6 abc", [Header(6), Payload(b"abc")], id="payload-in-progress"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_under_every_chunking(raw: bytes, expected: list[Event]) -> None:
    for chunks in chunkings(raw):
        assert frame(chunks) == expected, chunks


# The cases that end on a complete message.
COMPLETE = [p for p in VALID if p.values[1] and isinstance(p.values[1][-1], EndOfMessage)]


@pytest.mark.parametrize(("raw", "expected"), COMPLETE)
def test_valid_with_trailing_bytes(raw: bytes, expected: list[Event]) -> None:
    # Bytes after a complete message are the start of the next one.
    trailing = b"7 abc"
    for chunks in chunkings(raw):
        assert frame([*chunks, trailing]) == [*expected, Header(7), Payload(b"abc")]
        assert frame([*chunks[:-1], chunks[-1] + trailing]) == [
            *expected,
            Header(7),
            Payload(b"abc"),
        ]


@pytest.mark.parametrize(("raw", "expected"), COMPLETE)
def test_valid_then_end_of_stream(raw: bytes, expected: list[Event]) -> None:
    for chunks in chunkings(raw):
        assert frame(chunks, eof=True) == [*expected, EndOfStream()]


def test_empty_stream_ends_cleanly() -> None:
    assert frame([], eof=True) == [EndOfStream()]


def test_end_of_stream_repeats() -> None:
    framer = CountFramer()
    framer.receive_data(b"")
    framer.receive_data(b"")  # a second end of stream is harmless
    assert framer.next_event() == EndOfStream()
    assert framer.next_event() == EndOfStream()


ERRORS = [
    # (raw, reason, offset of the first invalid byte)
    pytest.param(b" 5 hello", Reason.BAD_LENGTH, 0, id="leading-space"),
    pytest.param(b"+5 hello", Reason.BAD_LENGTH, 0, id="plus-sign"),
    pytest.param(b"-1 x", Reason.BAD_LENGTH, 0, id="minus-sign"),
    pytest.param(b"1_0 0123456789", Reason.BAD_LENGTH, 1, id="underscore"),
    pytest.param(b"5\thello", Reason.BAD_LENGTH, 1, id="tab-separator"),
    pytest.param(b"5\r\nhello", Reason.BAD_LENGTH, 1, id="crlf-separator"),
    pytest.param(b"abc", Reason.BAD_LENGTH, 0, id="letters"),
    pytest.param(b"12x ", Reason.BAD_LENGTH, 2, id="letter-after-digits"),
    pytest.param(b"05 hello", Reason.BAD_LENGTH, 1, id="leading-zero"),
    pytest.param(b"00 ", Reason.BAD_LENGTH, 1, id="double-zero"),
    pytest.param(b"\xd9\xa3 abc", Reason.BAD_LENGTH, 0, id="non-ascii-digit"),
    pytest.param(b"\x00", Reason.BAD_LENGTH, 0, id="nul"),
    pytest.param(b"  ", Reason.BAD_LENGTH, 0, id="empty-length"),
    pytest.param(b"123456789", Reason.TOO_MANY_DIGITS, 8, id="too-many-digits"),
    pytest.param(b"1" * 1000, Reason.TOO_MANY_DIGITS, 8, id="endless-digits"),
    pytest.param(b"67108865 ", Reason.LENGTH_TOO_LARGE, 7, id="one-over-the-limit"),
    pytest.param(b"99999999 ", Reason.LENGTH_TOO_LARGE, 7, id="eight-nines"),
    pytest.param(b"2 ab5 hello3x", Reason.BAD_LENGTH, 12, id="bad-second-header"),
]


@pytest.mark.parametrize(("raw", "reason", "offset"), ERRORS)
def test_error_reason_under_every_chunking(raw: bytes, reason: Reason, offset: int) -> None:
    for chunks in chunkings(raw):
        with pytest.raises(RemoteProtocolError) as caught:
            frame(chunks)
        assert caught.value.reason is reason, chunks
        assert caught.value.offset == offset, chunks


@pytest.mark.parametrize(("raw", "reason", "offset"), ERRORS)
def test_error_raised_at_the_first_invalid_byte(raw: bytes, reason: Reason, offset: int) -> None:
    # Everything before the offending byte is accepted without complaint...
    frame(one_byte_at_a_time(raw[:offset]))
    # ...and that byte alone is enough to reject the header.
    with pytest.raises(RemoteProtocolError) as caught:
        frame(one_byte_at_a_time(raw[: offset + 1]))
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("raw", "reason", "offset"),
    [
        pytest.param(b"12", Reason.EOF_IN_HEADER, 2, id="eof-in-header"),
        pytest.param(b"5 hel", Reason.EOF_IN_PAYLOAD, 5, id="eof-in-payload"),
        pytest.param(b"5 ", Reason.EOF_IN_PAYLOAD, 2, id="eof-after-header"),
        pytest.param(b"1 a2 bc31", Reason.EOF_IN_HEADER, 9, id="eof-in-third-header"),
    ],
)
def test_end_of_stream_inside_a_message(raw: bytes, reason: Reason, offset: int) -> None:
    for chunks in chunkings(raw):
        with pytest.raises(RemoteProtocolError) as caught:
            frame(chunks, eof=True)
        assert caught.value.reason is reason
        assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("max_message_size", "raw", "expected"),
    [
        pytest.param(0, b"0 ", message(b""), id="zero-limit-accepts-zero"),
        pytest.param(9, b"9 123456789", message(b"123456789"), id="single-digit-limit"),
        pytest.param(100, b"100 " + b"x" * 100, message(b"x" * 100), id="limit-is-inclusive"),
    ],
)
def test_configured_limit_accepts(max_message_size: int, raw: bytes, expected: list[Event]) -> None:
    for chunks in chunkings(raw):
        assert frame(chunks, max_message_size=max_message_size) == expected


@pytest.mark.parametrize(
    ("max_message_size", "raw", "reason", "offset"),
    [
        pytest.param(0, b"1 x", Reason.LENGTH_TOO_LARGE, 0, id="zero-limit"),
        pytest.param(0, b"00", Reason.BAD_LENGTH, 1, id="zero-limit-leading-zero"),
        pytest.param(9, b"10 ", Reason.TOO_MANY_DIGITS, 1, id="single-digit-limit"),
        pytest.param(100, b"101 ", Reason.LENGTH_TOO_LARGE, 2, id="just-over"),
        pytest.param(100, b"1000", Reason.TOO_MANY_DIGITS, 3, id="too-many-digits"),
    ],
)
def test_configured_limit_rejects(
    max_message_size: int, raw: bytes, reason: Reason, offset: int
) -> None:
    for chunks in chunkings(raw):
        with pytest.raises(RemoteProtocolError) as caught:
            frame(chunks, max_message_size=max_message_size)
        assert (caught.value.reason, caught.value.offset) == (reason, offset)


def test_framer_stays_broken_after_a_remote_error() -> None:
    framer = CountFramer()
    framer.receive_data(b"-1 ")
    with pytest.raises(RemoteProtocolError) as first:
        framer.next_event()
    with pytest.raises(RemoteProtocolError) as second:
        framer.next_event()
    assert second.value is first.value
    with pytest.raises(LocalProtocolError):
        framer.receive_data(b"5 hello")
    with pytest.raises(LocalProtocolError):
        framer.receive_data(b"")


def test_data_after_end_of_stream_is_our_error() -> None:
    framer = CountFramer()
    framer.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        framer.receive_data(b"1 x")


def test_error_message_names_the_reason() -> None:
    framer = CountFramer()
    framer.receive_data(b"5x")
    with pytest.raises(RemoteProtocolError, match=r"^bad-length: byte b'x'") as caught:
        framer.next_event()
    assert caught.value.detail.startswith("byte b'x'")


def test_buffered_counts_bytes_not_yet_framed() -> None:
    # What a count server needs to know: did bytes come after the message?
    framer = CountFramer()
    assert framer.buffered == 0
    framer.receive_data(b"2 a")
    framer.receive_data(b"bXY")
    assert framer.buffered == 6
    assert framer.next_event() == Header(2)
    assert framer.buffered == 4
    assert framer.next_event() == Payload(b"a")
    assert framer.next_event() == Payload(b"b")
    assert framer.next_event() == EndOfMessage()
    assert framer.buffered == 2


def test_in_message_tracks_a_partial_message() -> None:
    framer = CountFramer()
    assert not framer.in_message
    framer.receive_data(b"1")
    assert framer.next_event() is NEED_DATA
    assert framer.in_message
    framer.receive_data(b"0 abc")
    assert framer.next_event() == Header(10)
    assert framer.in_message
    framer.receive_data(b"defghij")
    assert normalise(drain(framer)) == [Payload(b"abcdefghij"), EndOfMessage()]
    assert not framer.in_message


def test_max_message_size_is_validated() -> None:
    assert CountFramer(max_message_size=5).max_message_size == 5
    with pytest.raises(ValueError, match=">= 0"):
        CountFramer(max_message_size=-1)
    with pytest.raises(TypeError):
        CountFramer(max_message_size=True)
    with pytest.raises(TypeError):
        CountFramer(max_message_size=1.5)  # type: ignore[arg-type]


def test_payload_chunk_passes_through_without_a_copy() -> None:
    framer = CountFramer()
    framer.receive_data(b"131072 ")
    assert framer.next_event() == Header(131072)
    chunk = bytes(65536)
    framer.receive_data(chunk)
    event = framer.next_event()
    assert isinstance(event, Payload)
    assert event.data is chunk


def test_buffers_are_copied_once_and_not_aliased() -> None:
    framer = CountFramer()
    buffer = bytearray(b"3 abc")
    framer.receive_data(buffer)
    buffer[:] = b"XXXXX"  # the caller reuses its buffer
    assert normalise(drain(framer)) == message(b"abc")
    framer.receive_data(memoryview(b"1 z"))
    assert normalise(drain(framer)) == message(b"z")


def test_one_mebibyte_one_byte_at_a_time() -> None:
    size = 1024 * 1024
    payload = random.Random(0).randbytes(size)
    framer = CountFramer()
    pieces: list[bytes] = []
    for byte in one_byte_at_a_time(encode_message(payload)):
        framer.receive_data(byte)
        for event in drain(framer):
            if isinstance(event, Payload):
                pieces.append(event.data)
    assert len(pieces) == size
    assert b"".join(pieces) == payload


def test_coalesced_input_is_framed_in_order() -> None:
    framer = CountFramer()
    for chunk in (b"3 a", b"b", b"c2 ", b"de", b"0 "):
        framer.receive_data(chunk)
    framer.receive_data(b"")
    assert normalise(drain(framer)) == [
        *message(b"abc"),
        *message(b"de"),
        *message(b""),
        EndOfStream(),
    ]


def test_repr_of_a_large_payload_is_short() -> None:
    assert repr(Payload(b"ab")) == "Payload(data=b'ab')"
    assert repr(Payload(b"x" * 1000)).startswith("Payload(data=<1000 bytes: b'xxxx")
    assert repr(NEED_DATA) == "NEED_DATA"
    with pytest.raises(TypeError):
        NEED_DATA()


@pytest.mark.parametrize(
    ("length", "encoded"),
    [pytest.param(0, b"0 ", id="zero"), pytest.param(67108864, b"67108864 ", id="max")],
)
def test_encode_header(length: int, encoded: bytes) -> None:
    assert encode_header(length) == encoded


@pytest.mark.parametrize("length", [-1, True, 1.0, "5", None])
def test_encode_header_rejects_what_is_not_a_length(length: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode_header(length)  # type: ignore[arg-type]


def test_encode_message_round_trips() -> None:
    assert encode_message(b"") == b"0 "
    assert encode_message(bytearray(b"a b")) == b"3 a b"
    assert frame([encode_message(b"hi there")]) == message(b"hi there")


payloads = st.lists(st.binary(max_size=300), max_size=6)


@given(payloads=payloads, data=st.data())
def test_any_chunking_gives_the_same_messages(payloads: list[bytes], data: st.DataObject) -> None:
    raw = b"".join(encode_message(p) for p in payloads)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=20)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if a < b]
    expected = [event for p in payloads for event in message(p)]
    assert frame(chunks, eof=True) == [*expected, EndOfStream()]


@given(raw=st.binary(max_size=40), data=st.data())
def test_any_input_frames_the_same_under_any_chunking(raw: bytes, data: st.DataObject) -> None:
    # Valid or not, the outcome (events, or the error's reason and offset)
    # depends only on the bytes, never on how they were cut.
    def outcome(chunks: list[bytes]) -> object:
        try:
            return frame(chunks, eof=True, max_message_size=1000)
        except RemoteProtocolError as error:
            return (error.reason, error.offset)

    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=10)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if a < b]
    assert outcome(chunks) == outcome([raw] if raw else [])
