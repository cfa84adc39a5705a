"""Ways of cutting a byte string into the reads a peer might cause."""

from __future__ import annotations

import random
from collections.abc import Iterator


def one_byte_at_a_time(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def random_chunks(raw: bytes, seed: int | str, longest: int | None = None) -> list[bytes]:
    """``raw`` cut at random (seeded) into chunks of at most ``longest`` bytes
    (by default a third of ``raw``)."""
    rng = random.Random(seed)
    longest = longest or max(1, len(raw) // 3)
    chunks, start = [], 0
    while start < len(raw):
        end = start + rng.randint(1, longest)
        chunks.append(raw[start:end])
        start = end
    return chunks


def chunkings(raw: bytes) -> Iterator[list[bytes]]:
    """Every way of cutting ``raw`` that the byte-level tests use: whole, one
    byte at a time, at every split point, and under seeded random chunkings."""
    yield [raw] if raw else []
    yield one_byte_at_a_time(raw)
    for split in range(1, len(raw)):
        yield [raw[:split], raw[split:]]
    for seed in range(20):
        yield random_chunks(raw, seed)


def split(raw: bytes, how: str) -> list[bytes]:
    """Cut ``raw`` as a test asks: ``whole``, ``bytewise``, or at random into
    chunks of one to seven bytes, seeded by ``how`` (``random-1``, ...)."""
    if how == "whole":
        return [raw] if raw else []
    if how == "bytewise":
        return one_byte_at_a_time(raw)
    return random_chunks(raw, how, longest=7)
