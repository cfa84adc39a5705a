"""The EchoProtocol: one connection's state machine, without I/O.

Every rule runs whole, one byte at a time, at every split point and under
seeded random chunkings, through `pump`: a pump in memory that does what the
protocol says, as the server's does over a stream. The echo is compared
joined, and the ending (close at once, or half-close and linger) must not
depend on how the input was cut. Times are explicit: the protocol reads no
clock.
"""

from __future__ import annotations

from collections import deque

import attrs
import pytest
from hypothesis import given, strategies as st

from tests.support.chunks import chunkings, random_chunks
from trio_echo import (
    CHECK_UNREAD,
    CLOSE,
    HANDSHAKE,
    PAUSED,
    SEND_EOF,
    YIELD,
    Deadline,
    EchoProtocol,
    Expiry,
    Limits,
    LocalProtocolError,
    Mode,
    Outcome,
    Reason,
    Receive,
    Unread,
    encode_message,
)
from trio_echo.protocol import (
    BUFFER_OVERHEAD,
    MAX_MESSAGES_PER_STEP,
    READ_SIZE_MAX,
    READ_SIZE_MIN,
    STEP_BYTES,
)
from trio_echo.protocol._limits import default_max_held

LIMITS = Limits(max_message_size=1000)


@attrs.define
class Run:
    """What a pump saw: the echo, how it ended, and the protocol."""

    echo: bytes
    ending: str  # "close", "linger" (discarding until the peer closes) or "waiting"
    protocol: EchoProtocol
    actions: list[object] = attrs.field(factory=list)
    read: int = 0  # bytes the pump read


def pump(
    protocol: EchoProtocol,
    chunks: list[bytes],
    *,
    eof: bool,
    knows_unread: bool = True,
    times: list[float] | None = None,
    send: bool = True,
) -> Run:
    """Do what ``protocol`` says over a transport in memory.

    The peer's ``chunks`` arrive one read each (split further when a read
    asks for less), then its end of stream if ``eof``. Chunk ``i`` arrives at
    ``times[i]`` (its index by default). Answers are sent as soon as they are
    queued, unless ``send`` is false (a peer that never reads). Returns when
    the protocol says CLOSE, or must wait for the peer.
    """
    pending = deque(chunks)
    arrival = deque(times if times is not None else [float(i) for i in range(len(chunks))])
    now = 0.0
    echo = bytearray()
    run = Run(b"", "waiting", protocol)
    ended = False  # the end of stream was read

    def read(max_bytes: int) -> bytes:
        nonlocal now, ended
        if pending:
            chunk = pending.popleft()
            now = max(now, arrival.popleft())
            if len(chunk) > max_bytes:
                pending.appendleft(chunk[max_bytes:])
                arrival.appendleft(now)
                chunk = chunk[:max_bytes]
            run.read += len(chunk)
            return chunk
        ended = True
        return b""

    while True:
        action = protocol.next_action(now)
        run.actions.append(action)
        sent = 0
        while send and (data := protocol.data_to_send()) is not None:
            echo += data
            sent += len(data)
            protocol.sent(len(data), now)
        if type(action) is Receive:
            if protocol.outcome is not None:
                run.ending = "linger"  # reading only to discard (half-closed, if it can)
            if not pending and (ended or not eof):
                break  # the peer has nothing more to say, for now
            protocol.receive_data(read(action.max_bytes), now)
        elif action is YIELD:
            continue
        elif action is PAUSED:
            if not sent:
                break  # the peer must read first
        elif action is CHECK_UNREAD:
            if not knows_unread:
                protocol.report_unread(Unread.UNKNOWN)
            elif pending or (eof and not ended):
                protocol.receive_data(read(64 * 1024), now)
            else:
                protocol.report_unread(Unread.NO)
        elif action is SEND_EOF:
            protocol.eof_sent(now)
            run.ending = "linger"
        elif action is HANDSHAKE:
            protocol.handshake_done(now)
        else:
            assert action is CLOSE
            run.ending = "close"
            break
    run.echo = bytes(echo)
    return run


CASES = [
    # mode, input, end of stream after it, echo, outcome, messages, ending
    pytest.param(Mode.COUNT, b"5 hello", False, b"hello", "complete", 1, "close", id="count"),
    pytest.param(Mode.COUNT, b"0 ", False, b"", "complete", 1, "close", id="count-zero"),
    pytest.param(
        Mode.COUNT, b"5 hello", True, b"hello", "complete", 1, "close", id="count-then-eof"
    ),
    pytest.param(
        Mode.COUNT, b"5 helloMORE", False, b"hello", "complete", 1, "linger", id="count-trailing"
    ),
    pytest.param(
        Mode.COUNT, b"5 helloMORE", True, b"hello", "complete", 1, "close", id="count-trailing-eof"
    ),
    pytest.param(Mode.COUNT, b"3 1 2", False, b"1 2", "complete", 1, "close", id="count-spaces"),
    pytest.param(Mode.COUNT, b"", True, b"", "no-message", 0, "close", id="count-no-message"),
    pytest.param(Mode.COUNT, b"12", True, b"", "eof-in-header", 0, "close", id="count-eof-header"),
    pytest.param(Mode.COUNT, b"5 ab", True, b"ab", "eof-in-payload", 0, "close", id="count-eof"),
    pytest.param(Mode.COUNT, b"-1 ", False, b"", "bad-length", 0, "close", id="count-sign"),
    pytest.param(Mode.COUNT, b"10000 ", False, b"", "too-many-digits", 0, "close", id="digits"),
    pytest.param(Mode.COUNT, b"1001 ", False, b"", "length-too-large", 0, "close", id="large"),
    pytest.param(
        Mode.ECHO, b"any 12 bytes", True, b"any 12 bytes", "closed", 0, "close", id="echo"
    ),
    pytest.param(Mode.ECHO, b"", True, b"", "closed", 0, "close", id="echo-nothing"),
    pytest.param(
        Mode.FRAMED, b"2 ab3 cde0 ", True, b"2 ab3 cde0 ", "closed", 3, "close", id="framed"
    ),
    pytest.param(Mode.FRAMED, b"", True, b"", "closed", 0, "close", id="framed-nothing"),
    # A fault ends reading; the answers before it still go out, then it closes.
    pytest.param(Mode.FRAMED, b"1 a2", True, b"1 a", "eof-in-header", 1, "close", id="framed-eof"),
    pytest.param(Mode.FRAMED, b"1 a-", False, b"1 a", "bad-length", 1, "close", id="framed-bad"),
]


TRANSPORTS = {
    "tcp": {},
    "tls": {"handshake": True, "can_half_close": False},
}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize(("mode", "raw", "eof", "echo", "outcome", "messages", "ending"), CASES)
def test_every_mode_under_every_chunking(
    *,
    transport: str,
    mode: Mode,
    raw: bytes,
    eof: bool,
    echo: bytes,
    outcome: str,
    messages: int,
    ending: str,
) -> None:
    # TLS: the same, after a handshake, and lingering without a half-close.
    for chunks in chunkings(raw):
        run = pump(EchoProtocol(mode, limits=LIMITS, **TRANSPORTS[transport]), chunks, eof=eof)
        assert (run.actions[0] is HANDSHAKE) == (transport == "tls")
        assert transport == "tcp" or SEND_EOF not in run.actions
        got = (run.protocol.outcome, run.protocol.messages, run.ending)
        assert got == (outcome, messages, ending), chunks
        assert run.echo == echo, chunks
        assert run.protocol.bytes_in == run.read, chunks  # every byte read is counted
        if run.protocol.clean:
            assert run.read == len(raw), chunks
        assert run.protocol.bytes_out == len(run.echo)
        assert run.protocol.held == 0  # it closed, or holds nothing while lingering


@pytest.mark.parametrize("trailing", [b"X", b"later bytes"])
def test_bytes_after_a_count_message_make_it_linger_at_every_split(trailing: bytes) -> None:
    raw = b"5 hello" + trailing
    for chunks in chunkings(raw):
        run = pump(EchoProtocol(Mode.COUNT, limits=LIMITS), chunks, eof=False)
        assert (run.ending, run.echo) == ("linger", b"hello"), chunks
        # What comes while it lingers is read, counted and dropped.
        protocol = run.protocol
        assert protocol.next_action(10.0) == Receive(4096)
        protocol.receive_data(b"still more", 10.0)
        assert (protocol.held, protocol.bytes_in) == (0, len(raw) + 10)
        protocol.receive_data(b"", 11.0)
        assert protocol.next_action(11.0) is CLOSE
        assert protocol.outcome is Outcome.COMPLETE


def test_bytes_that_arrive_before_the_ending_is_decided_are_seen() -> None:
    # The message ends a read exactly; the next bytes are already there: the
    # check for unread bytes reads them (it does not drop them unseen), and
    # the connection lingers instead of resetting.
    protocol = EchoProtocol(Mode.COUNT, limits=LIMITS)
    assert isinstance(protocol.next_action(0.0), Receive)
    protocol.receive_data(b"5 hello", 0.0)
    assert protocol.next_action(0.0) is PAUSED  # the echo goes out first
    protocol.sent(len(protocol.data_to_send() or b""), 0.0)
    assert protocol.next_action(0.0) is CHECK_UNREAD
    protocol.receive_data(b"junk", 0.0)
    assert protocol.next_action(0.0) is SEND_EOF
    assert protocol.bytes_in == 11


@pytest.mark.parametrize(
    ("can_half_close", "ending"), [(True, "linger"), (False, "close")], ids=["tcp", "no-half-close"]
)
def test_a_transport_that_cannot_tell_what_is_unread(can_half_close: bool, ending: str) -> None:
    # Nothing unread cannot be known: half-close and linger where the stream
    # can; where it cannot, close (gracefully) is the best there is.
    for chunks in chunkings(b"5 hello"):
        protocol = EchoProtocol(Mode.COUNT, limits=LIMITS, can_half_close=can_half_close)
        run = pump(protocol, chunks, eof=False, knows_unread=False)
        assert (run.ending, run.echo, protocol.outcome) == (ending, b"hello", "complete")


def test_the_protocol_takes_nothing_after_it_closed_or_the_stream_ended() -> None:
    protocol = EchoProtocol(Mode.ECHO)
    protocol.receive_data(b"", 0.0)
    with pytest.raises(LocalProtocolError):
        protocol.receive_data(b"more", 0.0)
    protocol = EchoProtocol(Mode.COUNT)
    protocol.receive_data(b"x", 0.0)
    assert protocol.next_action(0.0) is CLOSE  # bad-length
    with pytest.raises(LocalProtocolError):
        protocol.receive_data(b"1", 0.0)


def test_echo_mode_passes_each_read_through_as_it_came() -> None:
    protocol = EchoProtocol(Mode.ECHO, limits=Limits(max_message_size=1))
    data = b"99999 not a length"
    protocol.receive_data(data, 0.0)
    assert protocol.data_to_send() is data
    assert protocol.deadline.expiry is Expiry.IDLE  # no header, no rate


def test_a_reused_buffer_is_copied() -> None:
    protocol = EchoProtocol(Mode.ECHO)
    buffer = bytearray(b"abc")
    protocol.receive_data(buffer, 0.0)
    buffer[:] = b"xyz"
    assert protocol.data_to_send() == b"abc"


# -- Deadlines ----------------------------------------------------------------


def test_count_header_is_due_from_the_start_until_it_is_complete() -> None:
    limits = Limits(header_timeout=10.0, idle_timeout=60.0, min_data_rate=0)
    for chunks in chunkings(b"12 "):
        protocol = EchoProtocol(Mode.COUNT, limits=limits, now=100.0)
        assert protocol.deadline == Deadline(110.0, Expiry.HEADER)
        times = [101.0 + i for i in range(len(chunks))]
        pump(protocol, chunks, eof=False, times=times)
        assert protocol.length == 12  # complete: the header timer is gone
        assert protocol.deadline.expiry is Expiry.IDLE


def test_framed_header_is_due_from_its_first_byte_at_every_split() -> None:
    limits = Limits(header_timeout=10.0, idle_timeout=60.0, min_data_rate=0)
    raw = b"2 ab12 "  # the second header begins at byte 4
    for chunks in chunkings(raw):
        protocol = EchoProtocol(Mode.FRAMED, limits=limits, now=0.0)
        assert protocol.deadline.expiry is Expiry.IDLE  # nothing is due before a byte
        offset = 0
        for index, chunk in enumerate(chunks):
            pump(protocol, [chunk], eof=False, times=[float(index)])
            offset += len(chunk)
            if 4 < offset < len(raw):
                # Due from the read that brought the second header's first digit.
                first = next(i for i in range(len(chunks)) if sum(map(len, chunks[: i + 1])) > 4)
                assert protocol.deadline == Deadline(first + 10.0, Expiry.HEADER), chunks
            elif offset == 1:
                assert protocol.deadline == Deadline(0.0 + 10.0, Expiry.HEADER), chunks
            else:
                assert protocol.deadline.expiry is Expiry.IDLE, chunks


def test_idle_deadline_moves_with_progress_at_its_granularity() -> None:
    limits = Limits(idle_timeout=60.0)
    protocol = EchoProtocol(Mode.ECHO, limits=limits, now=0.0)
    assert protocol.deadline == Deadline(60.5, Expiry.IDLE)
    protocol.receive_data(b"a", 0.3)
    assert protocol.deadline.when == 60.5  # within the granularity: not moved
    protocol.sent(1, 0.3)  # its echo went out
    protocol.receive_data(b"b", 0.6)
    assert protocol.deadline.when == pytest.approx(61.1)
    protocol.next_action(0.6)
    protocol.sent(1, 2.0)  # sending is progress too
    assert protocol.deadline.when == pytest.approx(62.5)


def frame(protocol: EchoProtocol, data: bytes, now: float) -> None:
    """Take ``data`` and frame it, sending nothing: the peer reads nothing."""
    protocol.receive_data(data, now)
    while protocol.next_action(now) is YIELD:
        pass


@pytest.mark.parametrize("mode", [Mode.FRAMED, Mode.ECHO])
def test_a_peer_that_sends_but_takes_no_answer_is_idle(mode: Mode) -> None:
    limits = Limits(idle_timeout=60.0)
    protocol = EchoProtocol(mode, limits=limits, now=0.0)
    frame(protocol, b"2 ab", 1.0)  # its answer waits: the peer does not read
    assert protocol.data_to_send()
    for now in range(50, 1000, 50):  # a message every 50 s, never read
        frame(protocol, b"0 ", float(now))
        if now + 50 > protocol.deadline.when:
            break
    assert protocol.deadline == Deadline(61.5, Expiry.IDLE)  # from its last answered byte
    protocol.expired(61.5)
    assert protocol.next_action(61.5) is CLOSE
    assert protocol.outcome is Outcome.IDLE_TIMEOUT
    assert protocol.detail == "the peer took none of its answers for 60 s"


def test_while_answers_wait_taking_them_is_progress_and_then_bytes_again() -> None:
    limits = Limits(idle_timeout=60.0)
    protocol = EchoProtocol(Mode.FRAMED, limits=limits, now=0.0)
    frame(protocol, b"2 ab", 1.0)
    frame(protocol, b"0 ", 30.0)  # answers wait: no progress
    assert protocol.deadline.when == 61.5
    protocol.sent(1, 40.0)  # the peer took a byte
    assert protocol.deadline.when == pytest.approx(100.5)
    while data := protocol.data_to_send():
        protocol.sent(len(data), 50.0)
    frame(protocol, b"1 x", 90.0)  # nothing waits: a byte received is progress again
    assert protocol.deadline.when == pytest.approx(150.5)
    protocol.sent(len(protocol.data_to_send() or b""), 90.0)
    protocol.expired(150.5)
    assert protocol.detail == "nothing received or sent for 60 s"


def test_a_payload_must_keep_the_minimum_data_rate() -> None:
    limits = Limits(min_data_rate=100.0, min_data_rate_grace=5.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    pump(protocol, [b"100000 x"], eof=False, times=[1.0])
    assert protocol.deadline == Deadline(6.0, Expiry.TOO_SLOW)  # the grace, from the header
    pump(protocol, [b"y" * 999], eof=False, times=[2.0])
    assert protocol.deadline == Deadline(11.0, Expiry.TOO_SLOW)  # 1,000 bytes earn 10 s
    protocol.expired(11.0)
    assert protocol.next_action(11.0) is CLOSE
    assert protocol.outcome is Outcome.TOO_SLOW


def test_a_trickle_of_framed_payload_is_too_slow_but_not_between_messages() -> None:
    limits = Limits(min_data_rate=240.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.FRAMED, limits=limits, now=0.0)
    pump(protocol, [b"2 ab"], eof=False, times=[1.0])
    assert protocol.deadline.expiry is Expiry.IDLE  # between messages: idle only
    pump(protocol, [b"100 a"], eof=False, times=[2.0])
    assert protocol.deadline == Deadline(7.0, Expiry.TOO_SLOW)


@pytest.mark.parametrize("rate", [0.0, 240.0])
def test_echo_mode_and_a_rate_of_zero_have_the_idle_timeout_alone(rate: float) -> None:
    limits = Limits(min_data_rate=rate)
    protocol = EchoProtocol(Mode.ECHO, limits=limits)
    pump(protocol, [b"x"], eof=False, times=[1.0])
    assert protocol.deadline.expiry is Expiry.IDLE
    protocol = EchoProtocol(Mode.COUNT, limits=attrs.evolve(limits, min_data_rate=0.0))
    pump(protocol, [b"100 x"], eof=False, times=[1.0])
    assert protocol.deadline.expiry is Expiry.IDLE


def test_waiting_for_the_budget_stops_the_peers_timers_not_the_idle_one() -> None:
    limits = Limits(header_timeout=10.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    protocol.budget_wait(3.0)
    assert protocol.deadline == Deadline(60.5, Expiry.BUDGET)  # no header timer: not its fault
    protocol.budget_granted(8.0)
    assert protocol.deadline == Deadline(15.0, Expiry.HEADER)  # 5 s held up, added on
    protocol.budget_wait(9.0)
    protocol.expired(60.5)
    assert protocol.next_action(60.5) is CLOSE
    assert protocol.outcome is Outcome.BUDGET_TIMEOUT


def test_asking_for_a_read_during_a_budget_wait_does_not_restart_the_timers() -> None:
    limits = Limits(header_timeout=10.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    protocol.budget_wait(3.0)
    assert isinstance(protocol.next_action(5.0), Receive)
    assert protocol.deadline == Deadline(60.5, Expiry.BUDGET)  # still held up
    protocol.budget_granted(8.0)
    assert protocol.deadline == Deadline(15.0, Expiry.HEADER)


def test_a_budget_granted_without_a_wait_changes_no_timer() -> None:
    protocol = EchoProtocol(Mode.COUNT, limits=Limits(header_timeout=10.0), now=0.0)
    before = protocol.deadline
    protocol.budget_granted(4.0)
    assert protocol.deadline == before == Deadline(10.0, Expiry.HEADER)


def test_the_need_is_a_whole_message_while_one_is_under_way() -> None:
    protocol = EchoProtocol(Mode.FRAMED)
    assert protocol.need == 0  # no length known yet
    pump(protocol, [b"300000 abc"], eof=False)
    assert protocol.need == default_max_held(300_000)  # the message, and what holding it costs
    pump(protocol, [b"x" * (300_000 - 3)], eof=False)
    assert protocol.need == 0  # it is in: between messages
    capped = EchoProtocol(Mode.COUNT, limits=Limits(max_held=100_000))
    pump(capped, [b"300000 abc"], eof=False)
    assert capped.need == 100_000  # never more than the connection may hold
    echo = EchoProtocol(Mode.ECHO)
    pump(echo, [b"300000 abc"], eof=False)
    assert echo.need == 0  # echo mode has no messages
    pipelined = EchoProtocol(Mode.FRAMED)
    pump(pipelined, [b"3 abc300000 x"], eof=False, send=False)  # the first answer waits
    assert pipelined.held > 0
    assert pipelined.need == pipelined.held + default_max_held(300_000)  # on top of what it holds


def test_a_connection_whose_answers_wait_waits_for_its_peer_not_the_budget() -> None:
    limits = Limits(min_data_rate=100.0, min_data_rate_grace=5.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    pump(protocol, [b"1000 xyz"], eof=False, send=False, times=[1.0])
    assert protocol.deadline == Deadline(6.0, Expiry.TOO_SLOW)
    assert protocol.budget_short(2.0) is False  # answers wait: for the peer
    # Held up by the server: the rate timer stops; the idle one goes on, as
    # the peer's own (it does not read).
    assert protocol.deadline == Deadline(61.5, Expiry.IDLE)
    while (data := protocol.data_to_send()) is not None:
        protocol.sent(len(data), 4.0)
    assert protocol.budget_short(4.0) is True  # holding nothing: for the budget
    assert protocol.deadline.expiry is Expiry.BUDGET
    protocol.budget_granted(5.0)
    assert isinstance(protocol.next_action(5.0), Receive)
    assert protocol.deadline == Deadline(9.0, Expiry.TOO_SLOW)  # 3 s held up, added on


def test_a_full_buffer_stops_the_peers_timers() -> None:
    # A peer that does not read fills the connection's buffer mid-payload:
    # the server stops reading, and the data-rate timer stops with it.
    limits = Limits(max_held=8 * 1024, min_data_rate=10_000, min_data_rate_grace=5.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    run = pump(protocol, [encode_message(b"x" * 20_000)], eof=False, send=False, times=[0.0])
    assert run.actions[-1] is PAUSED  # it holds all it may
    assert protocol.deadline.expiry is Expiry.IDLE  # the payload in progress is not timed
    while (data := protocol.data_to_send()) is not None:
        protocol.sent(len(data), 4.0)
    assert isinstance(protocol.next_action(4.0), Receive)
    assert protocol.deadline == Deadline(9.0, Expiry.TOO_SLOW)  # 4 s held up, added on


def test_lingering_has_its_own_deadline_and_keeps_the_outcome() -> None:
    protocol = EchoProtocol(Mode.COUNT, limits=Limits(linger_timeout=2.0))
    run = pump(protocol, [b"1 aZ"], eof=False)
    assert run.ending == "linger"
    assert protocol.deadline == Deadline(2.0, Expiry.LINGER)
    protocol.expired(2.0)
    assert protocol.next_action(2.0) is CLOSE
    assert protocol.outcome is Outcome.COMPLETE  # the echo was delivered: it is complete


def in_each_expiry(expiry: Expiry) -> EchoProtocol:
    """A protocol whose deadline has ``expiry`` as its meaning."""
    protocol = EchoProtocol(
        Mode.ECHO if expiry is not Expiry.HEADER else Mode.COUNT,
        handshake=expiry is Expiry.HANDSHAKE,
    )
    if expiry is Expiry.BUDGET:
        protocol.budget_wait(0.0)
    elif expiry is Expiry.TOO_SLOW:
        protocol = EchoProtocol(Mode.COUNT)
        pump(protocol, [b"100 x"], eof=False)
    return protocol


@pytest.mark.parametrize(
    ("expiry", "outcome"),
    [
        (Expiry.HEADER, Outcome.HEADER_TIMEOUT),
        (Expiry.IDLE, Outcome.IDLE_TIMEOUT),
        (Expiry.BUDGET, Outcome.BUDGET_TIMEOUT),
        (Expiry.TOO_SLOW, Outcome.TOO_SLOW),
        (Expiry.HANDSHAKE, Outcome.TLS_HANDSHAKE),
    ],
)
def test_each_expiry_is_an_outcome_with_its_words(expiry: Expiry, outcome: Outcome) -> None:
    protocol = in_each_expiry(expiry)
    assert protocol.deadline.expiry is expiry
    protocol.expired(protocol.deadline.when)
    assert protocol.next_action(protocol.deadline.when) is CLOSE
    assert protocol.outcome is outcome
    assert protocol.detail


def test_the_first_ending_is_the_one_that_counts() -> None:
    protocol = EchoProtocol(Mode.ECHO)
    protocol.expired(61.0)
    protocol.abort(Outcome.RESET, "reset while closing")
    assert (protocol.outcome, protocol.clean) == (Outcome.IDLE_TIMEOUT, False)
    protocol = EchoProtocol(Mode.ECHO)
    protocol.abort(Outcome.CANCELLED)
    assert protocol.next_action(0.0) is CLOSE
    assert protocol.outcome is Outcome.CANCELLED


# -- Memory and work ----------------------------------------------------------


@pytest.mark.parametrize("max_held", [16 * 1024, 1024 * 1024])
@pytest.mark.parametrize(
    "raw",
    [
        b"0 " * 400_000,
        b"1 x" * 300_000,
        encode_message(b"y" * 4096) * 300,
        encode_message(b"y" * 50_000) * 30,
    ],
    ids=["empty-frames", "one-byte-frames", "4-KiB-frames", "large-frames"],
)
def test_what_it_holds_never_exceeds_its_limit(raw: bytes, max_held: int) -> None:
    # A peer that never reads: the protocol asks for reads that cannot take
    # it past its limit, however the bytes are cut (a read's chunk is held
    # whole while its answers are made, over many steps), and then pauses.
    limits = Limits(max_held=max_held, max_message_size=100_000)
    for seed in range(4):
        chunks = [raw] if seed == 0 else random_chunks(raw, seed)
        protocol = EchoProtocol(Mode.FRAMED, limits=limits)
        pending = deque(chunks)
        highest = 0
        while pending:
            action = protocol.next_action(0.0)
            highest = max(highest, protocol.held)
            if action is PAUSED:
                break
            if type(action) is Receive:
                chunk = pending.popleft()
                if len(chunk) > action.max_bytes:
                    pending.appendleft(chunk[action.max_bytes :])
                    chunk = chunk[: action.max_bytes]
                protocol.receive_data(chunk, 0.0)
                highest = max(highest, protocol.held)
        assert highest <= limits.max_held
        assert protocol.held > limits.max_held // 2  # it did read ahead


def test_tiny_answers_cost_their_bytes_not_an_object_each() -> None:
    protocol = EchoProtocol(Mode.FRAMED, limits=Limits(max_held=1 << 30))
    raw = b"0 " * 100_000
    protocol.receive_data(raw, 0.0)
    steps = 0
    while protocol.next_action(0.0) is YIELD:
        steps += 1
    answers = protocol.held
    assert protocol.messages == 100_000
    # The answers are the 200,000 bytes, in one buffer per step at most.
    assert len(raw) <= answers <= len(raw) + (steps + 1) * BUFFER_OVERHEAD
    assert answers < len(raw) * 1.1


def test_a_step_frames_a_bounded_number_of_messages() -> None:
    protocol = EchoProtocol(Mode.FRAMED)
    protocol.receive_data(b"0 " * 10_000, 0.0)
    done = 0
    while protocol.next_action(0.0) is YIELD:
        assert protocol.messages - done == MAX_MESSAGES_PER_STEP
        done = protocol.messages
    assert protocol.messages == 10_000


def stream_steps(protocol: EchoProtocol, *, total: int = 0, steps: int = 0) -> list[list[int]]:
    """The reads and the bytes of each step, over a stream whose reads are always full.

    Until ``total`` bytes came in, and ``steps`` steps ended; the answers are
    sent as they come.
    """
    taken = [[0, 0]]
    while protocol.bytes_in < total or len(taken) <= steps:
        action = protocol.next_action(0.0)
        while (data := protocol.data_to_send()) is not None:
            protocol.sent(len(data), 0.0)
        if action is YIELD:
            taken.append([0, 0])
            continue
        if action is PAUSED:
            continue  # its answers went out above
        assert isinstance(action, Receive), action
        protocol.receive_data(b"7" * action.max_bytes, 0.0)
        taken[-1][0] += 1
        taken[-1][1] += action.max_bytes
    return taken


@pytest.mark.parametrize("mode", [Mode.ECHO, Mode.COUNT])
def test_a_step_takes_in_a_bounded_number_of_bytes(mode: Mode) -> None:
    # A pump may read on without a checkpoint while its transport has bytes:
    # the protocol ends the step once STEP_BYTES came in.
    total = 10 * STEP_BYTES
    protocol = EchoProtocol(mode, limits=Limits(max_message_size=2 * total))
    if mode is Mode.COUNT:
        protocol.receive_data(b"%d " % (2 * total), 0.0)
    steps = [size for _reads, size in stream_steps(protocol, total=total)]
    assert len(steps) >= 9
    assert max(steps) <= STEP_BYTES + READ_SIZE_MAX
    assert min(steps[1:-1]) >= STEP_BYTES  # and no sooner: a step is worth its checkpoint


@pytest.mark.parametrize("max_held", [200, 300, 2000])
def test_a_step_makes_a_bounded_number_of_reads_however_small(max_held: int) -> None:
    # A small buffer asks for small reads, and a stream fills each: every
    # read counts as READ_SIZE_MIN bytes at least, so a step still ends.
    protocol = EchoProtocol(Mode.ECHO, limits=Limits(max_held=max_held))
    taken = stream_steps(protocol, steps=3)
    assert all(size < reads * READ_SIZE_MIN for reads, size in taken[:-1])  # small reads
    reads = [count for count, _size in taken]
    assert max(reads) <= STEP_BYTES // READ_SIZE_MIN + 1
    assert min(reads[1:-1]) >= STEP_BYTES // READ_SIZE_MIN  # and no sooner


def test_a_step_frames_a_bounded_number_of_messages_over_several_reads() -> None:
    # Each read has fewer messages than a step may frame, and the reads
    # follow one another without a wait: the count goes on across them.
    protocol = EchoProtocol(Mode.FRAMED)
    read = b"0 " * 100
    framed = [0]
    for _ in range(10):
        action = protocol.next_action(0.0)
        if action is YIELD:
            framed.append(0)
            action = protocol.next_action(0.0)
        assert isinstance(action, Receive)
        before = protocol.messages
        protocol.receive_data(read, 0.0)
        while protocol.next_action(0.0) is YIELD:  # what this read brought
            framed[-1] += protocol.messages - before
            before = protocol.messages
            framed.append(0)
        framed[-1] += protocol.messages - before
    assert protocol.messages == 1000
    assert max(framed) <= MAX_MESSAGES_PER_STEP
    assert len(framed) >= 4


def test_discarding_takes_steps_too() -> None:
    # After a count message, a peer that floods is read and discarded until
    # the linger ends, in bounded steps as well.
    protocol = EchoProtocol(Mode.COUNT, limits=LIMITS)
    run = pump(protocol, [b"1 a" + b"x" * 100], eof=False)
    assert (run.ending, run.echo) == ("linger", b"a")
    start = protocol.bytes_in
    steps = [size for _reads, size in stream_steps(protocol, total=start + 3 * STEP_BYTES)]
    assert len(steps) >= 3
    assert max(steps) <= STEP_BYTES + READ_SIZE_MAX
    assert protocol.outcome is Outcome.COMPLETE


def test_answers_are_released_as_they_are_sent() -> None:
    protocol = EchoProtocol(Mode.ECHO)
    protocol.receive_data(b"x" * 10_000, 0.0)
    protocol.next_action(0.0)
    assert protocol.held == 10_000 + BUFFER_OVERHEAD
    protocol.sent(4_000, 0.0)  # partly sent: the buffer is alive until all of it is
    assert protocol.held == 10_000 + BUFFER_OVERHEAD
    assert protocol.data_to_send() == b"x" * 6_000
    protocol.sent(6_000, 0.0)
    assert (protocol.held, protocol.data_to_send()) == (0, None)


def test_small_answers_join_those_waiting_before_them() -> None:
    protocol = EchoProtocol(Mode.ECHO)
    for piece in (b"a", b"b", b"c", b"d"):
        protocol.receive_data(piece, 0.0)
    # The first may be under way, so it stays whole; the others are joined.
    assert protocol.data_to_send() == b"a"
    protocol.sent(1, 0.0)
    assert protocol.data_to_send() == b"bcd"
    assert protocol.held == 3 + BUFFER_OVERHEAD


def test_mode_is_converted_and_validated() -> None:
    assert EchoProtocol("framed").mode is Mode.FRAMED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nope"):
        EchoProtocol("nope")  # type: ignore[arg-type]


def test_bad_lengths_say_why() -> None:
    run = pump(EchoProtocol(Mode.COUNT), [b"+5 hello"], eof=False)
    assert run.protocol.outcome is Reason.BAD_LENGTH
    assert "not a digit" in run.protocol.detail


messages = st.lists(st.binary(max_size=30), max_size=5)


def cut(raw: bytes, data: st.DataObject) -> list[bytes]:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=8)))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if b > a]


@given(payloads=messages, data=st.data())
def test_framed_answers_are_the_messages_under_any_chunking(
    payloads: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(encode_message(payload) for payload in payloads)
    run = pump(EchoProtocol(Mode.FRAMED, limits=LIMITS), cut(raw, data), eof=True)
    assert run.echo == raw
    assert (run.protocol.outcome, run.protocol.messages) == (Outcome.CLOSED, len(payloads))


@given(payload=st.binary(max_size=60), extra=st.binary(max_size=10), data=st.data())
def test_count_echoes_exactly_the_payload_under_any_chunking(
    payload: bytes, extra: bytes, data: st.DataObject
) -> None:
    raw = encode_message(payload) + extra
    run = pump(EchoProtocol(Mode.COUNT, limits=LIMITS), cut(raw, data), eof=False)
    assert run.echo == payload
    assert run.protocol.outcome is Outcome.COMPLETE
    assert run.ending == ("linger" if extra else "close")
    assert run.protocol.bytes_in == len(raw)


def test_a_large_framed_payload_goes_out_as_it_came_after_its_header() -> None:
    protocol = EchoProtocol(Mode.FRAMED)
    payload = b"p" * 5000
    chunk = encode_message(payload)[5:]
    protocol.receive_data(b"5000 ", 0.0)
    protocol.receive_data(chunk, 0.0)
    protocol.next_action(0.0)
    assert protocol.data_to_send() == b"5000 "
    protocol.sent(5, 0.0)
    assert protocol.data_to_send() is chunk  # the received object itself: no copy
    assert protocol.held == 5000 + BUFFER_OVERHEAD


def test_sends_are_counted_even_after_the_connection_closed() -> None:
    protocol = EchoProtocol(Mode.ECHO)
    protocol.receive_data(b"abc", 0.0)
    protocol.sent(0, 0.0)  # nothing sent: nothing changes
    assert protocol.data_to_send() == b"abc"
    protocol.abort(Outcome.RESET)  # while the writer was sending
    protocol.sent(3, 1.0)
    assert (protocol.bytes_out, protocol.held, protocol.data_to_send()) == (3, 0, None)


def test_unread_bytes_once_seen_stay_seen() -> None:
    protocol = EchoProtocol(Mode.COUNT)
    protocol.receive_data(b"1 aMORE", 0.0)
    assert protocol.next_action(0.0) is PAUSED
    protocol.sent(1, 0.0)
    protocol.report_unread(Unread.NO)  # a later look finds nothing: they were there
    assert protocol.next_action(0.0) is SEND_EOF


def test_held_up_twice_and_resumed_in_a_payload() -> None:
    limits = Limits(min_data_rate=100.0, min_data_rate_grace=5.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    pump(protocol, [b"1000 x"], eof=False, times=[1.0])
    assert protocol.deadline == Deadline(6.0, Expiry.TOO_SLOW)
    protocol.budget_wait(2.0)
    protocol.budget_wait(3.0)  # still the same wait: held up since 2.0
    assert protocol.deadline.expiry is Expiry.BUDGET
    protocol.budget_granted(4.0)
    assert protocol.deadline == Deadline(8.0, Expiry.TOO_SLOW)  # 2 s held up, added on


def test_the_idle_deadline_comes_first_when_the_header_timeout_is_longer() -> None:
    limits = Limits(header_timeout=100.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    assert protocol.deadline == Deadline(60.5, Expiry.IDLE)


def test_a_bug_is_told_even_after_a_clean_ending() -> None:
    protocol = EchoProtocol(Mode.ECHO, limits=LIMITS)
    assert protocol.limits is LIMITS
    pump(protocol, [b"x"], eof=True)
    assert protocol.outcome is Outcome.CLOSED
    protocol.abort(Outcome.INTERNAL_ERROR, "ZeroDivisionError")
    assert (protocol.outcome, protocol.detail) == (Outcome.INTERNAL_ERROR, "ZeroDivisionError")


def test_a_payload_well_ahead_of_the_rate_is_timed_by_the_idle_timeout() -> None:
    limits = Limits(min_data_rate=10.0, idle_timeout=60.0)
    protocol = EchoProtocol(Mode.COUNT, limits=limits, now=0.0)
    pump(protocol, [b"100000 " + b"x" * 1000], eof=False)  # 1,000 bytes earn 100 s
    assert protocol.deadline == Deadline(60.5, Expiry.IDLE)


@pytest.mark.parametrize("mode", list(Mode))
def test_a_tls_handshake_has_its_own_deadline_and_then_the_header_timer_starts(
    mode: Mode,
) -> None:
    limits = Limits(handshake_timeout=3.0, header_timeout=10.0, idle_timeout=60.0)
    protocol = EchoProtocol(mode, limits=limits, now=1.0, handshake=True)
    assert protocol.next_action(1.5) is HANDSHAKE
    assert protocol.deadline == Deadline(4.0, Expiry.HANDSHAKE)
    protocol.handshake_done(2.5)
    protocol.handshake_done(3.5)  # told twice: the first counts
    if mode is Mode.COUNT:  # the header is due from the handshake's end
        assert protocol.deadline == Deadline(12.5, Expiry.HEADER)
    else:
        assert protocol.deadline.expiry is Expiry.IDLE
    assert protocol.next_action(3.5) == Receive(4096, echo=mode is Mode.ECHO)


def test_a_transport_failure_during_the_handshake_is_the_handshakes() -> None:
    protocol = EchoProtocol(Mode.COUNT, handshake=True)
    protocol.abort(Outcome.RESET, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert protocol.next_action(0.0) is CLOSE
    assert (protocol.outcome, protocol.detail) == (
        Outcome.TLS_HANDSHAKE,
        "[SSL: WRONG_VERSION_NUMBER] wrong version number",
    )
    protocol = EchoProtocol(Mode.COUNT, handshake=True)
    protocol.handshake_done(0.0)
    protocol.abort(Outcome.RESET, "Connection reset by peer")
    assert protocol.outcome is Outcome.RESET  # after the handshake, a reset is a reset


@pytest.mark.parametrize("trailing", [b"X", b"later bytes"])
def test_without_a_half_close_bytes_after_a_count_message_are_discarded_then_it_closes(
    trailing: bytes,
) -> None:
    for chunks in chunkings(b"5 hello" + trailing):
        protocol = EchoProtocol(Mode.COUNT, limits=LIMITS, can_half_close=False, now=0.0)
        run = pump(protocol, chunks, eof=False)
        assert (run.ending, run.echo, SEND_EOF in run.actions) == ("linger", b"hello", False)
        assert protocol.deadline.expiry is Expiry.LINGER
        assert protocol.next_action(20.0) == Receive(4096)
        protocol.receive_data(b"", 20.0)  # the peer closed (close_notify)
        assert protocol.next_action(20.0) is CLOSE
        assert protocol.outcome is Outcome.COMPLETE


def test_reads_never_ask_more_than_the_transport_returns_at_once() -> None:
    # A TLS stream returns one record (16 KiB) a read: asking for more
    # allocates a larger buffer that is then shrunk, and the gap costs memory.
    protocol = EchoProtocol(Mode.ECHO, max_read=16 * 1024)
    asked = []
    for _ in range(8):
        action = protocol.next_action(0.0)
        assert isinstance(action, Receive)
        asked.append(action.max_bytes)
        protocol.receive_data(bytes(action.max_bytes), 0.0)  # full reads: a stream
        protocol.sent(len(protocol.data_to_send() or b""), 0.0)
    assert asked == [4096, 8192] + [16384] * 6


# -- Reads that go straight back (`Receive.echo`) ------------------------------


@pytest.mark.parametrize("mode", list(Mode))
def test_only_echo_mode_with_nothing_waiting_lets_a_read_go_straight_back(mode: Mode) -> None:
    protocol = EchoProtocol(mode, now=0.0)
    action = protocol.next_action(0.0)
    assert action == Receive(READ_SIZE_MIN, echo=mode is Mode.ECHO)
    protocol.receive_data(b"5 hello", 0.0)
    while (action := protocol.next_action(0.0)) is YIELD:
        pass
    if mode is not Mode.COUNT:  # an answer waits: it goes first, in order
        assert action == Receive(READ_SIZE_MIN)


def test_a_read_that_all_went_back_holds_nothing_and_says_the_next_read() -> None:
    protocol = EchoProtocol(Mode.ECHO, now=0.0)
    action = protocol.next_action(0.0)
    assert action == Receive(READ_SIZE_MIN, echo=True)
    assert protocol.deadline.when == 60.5  # the pump has looked: nothing has moved since
    assert protocol.echoed(b"x" * 4096, 4096, 0.1) == 8192  # a full read: the next is larger
    assert protocol.echoed(b"y" * 10, 10, 0.2) == 4096  # a short one: back to the least
    assert (protocol.bytes_in, protocol.bytes_out, protocol.held) == (4106, 4106, 0)
    assert protocol.data_to_send() is None


def test_what_did_not_go_back_is_queued_and_held() -> None:
    protocol = EchoProtocol(Mode.ECHO, now=0.0)
    protocol.next_action(0.0)
    assert protocol.echoed(bytearray(b"abcdef"), 2, 0.0) == 0  # ask again
    assert bytes(protocol.data_to_send() or b"") == b"cdef"
    assert protocol.held == 6 + BUFFER_OVERHEAD  # the whole chunk is alive
    assert (protocol.bytes_in, protocol.bytes_out) == (6, 2)
    assert protocol.next_action(0.0) == Receive(READ_SIZE_MIN)  # no echo: an answer waits
    with pytest.raises(LocalProtocolError):
        protocol.echoed(b"g", 1, 0.0)  # it would overtake "cdef"


def test_the_end_of_stream_read_straight_back_ends_reading() -> None:
    protocol = EchoProtocol(Mode.ECHO, now=0.0)
    protocol.next_action(0.0)
    assert protocol.echoed(b"ab", 2, 0.0) == 0  # the deadline was never looked at
    assert protocol.echoed(b"", 0, 0.0) == 0
    assert protocol.next_action(0.0) is CLOSE  # the peer ended first: nothing can reset
    assert protocol.outcome is Outcome.CLOSED


def test_going_straight_back_stops_where_the_pump_must_look_again() -> None:
    limits = Limits(idle_timeout=60.0)
    protocol = EchoProtocol(Mode.ECHO, limits=limits, now=0.0)
    protocol.next_action(0.0)
    assert protocol.deadline.when == 60.5
    assert protocol.echoed(b"a", 1, 0.4) == READ_SIZE_MIN  # within the granularity
    assert protocol.echoed(b"b", 1, 0.6) == 0  # the idle deadline moved: sync it
    assert protocol.deadline.when == pytest.approx(61.1)
    # The step is over after STEP_BYTES (a short read counting as READ_SIZE_MIN).
    reads = 0
    while protocol.echoed(b"c", 1, 0.6):
        reads += 1
    assert protocol.next_action(0.6) is YIELD
    assert 2 + reads + 1 == STEP_BYTES // READ_SIZE_MIN
    # A read larger than the connection may hold goes the usual way.
    small = EchoProtocol(Mode.ECHO, limits=Limits(max_held=3000), now=0.0)
    assert small.next_action(0.0) == Receive(3000 - 3 * BUFFER_OVERHEAD, echo=True)
    small.deadline  # noqa: B018  (the pump looks)
    assert small.echoed(b"d" * 10, 10, 0.0) == 0


@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.FRAMED])
def test_no_other_mode_may_send_a_read_straight_back(mode: Mode) -> None:
    protocol = EchoProtocol(mode, now=0.0)
    with pytest.raises(LocalProtocolError):
        protocol.echoed(b"1 x", 3, 0.0)


@given(
    sizes=st.lists(st.integers(1, 20_000), min_size=1, max_size=12),
    shares=st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12),
)
def test_straight_back_is_the_same_connection_as_the_usual_way(
    sizes: list[int], shares: list[float]
) -> None:
    # Two protocols read the same bytes at every split point the reads
    # allow; one sends each read straight back (a random share of it going
    # at once), the other takes it, frames it and sends it the usual way.
    data = bytes(i % 251 for i in range(sum(sizes)))
    ways = []
    for straight in (True, False):
        protocol = EchoProtocol(Mode.ECHO, now=0.0)
        echo = bytearray()
        offset, share, cuts = 0, iter(shares), iter(sizes)
        while (action := protocol.next_action(1.0)) not in (SEND_EOF, CLOSE):
            while (out := protocol.data_to_send()) is not None:
                echo += out
                protocol.sent(len(out), 1.0)
            if action is CHECK_UNREAD:
                protocol.report_unread(Unread.NO)
            if type(action) is not Receive:
                continue
            protocol.deadline  # noqa: B018  (a pump looks)
            size = action.max_bytes
            while True:
                chunk = data[offset : offset + min(size, next(cuts, size))]
                offset += len(chunk)
                if not (straight and action.echo):
                    protocol.receive_data(chunk, 1.0)
                    break
                went = round(len(chunk) * next(share, 1.0))
                echo += chunk[:went]
                if not (size := protocol.echoed(chunk, went, 1.0)):
                    break
        ways.append((bytes(echo), protocol.bytes_in, protocol.bytes_out, protocol.outcome))
    assert ways[0] == ways[1]
    assert ways[0][0] == data
