"""Random ids of the data plane: request ids, trace and span ids. Unique, not secret."""

from __future__ import annotations

import random

# The process's Mersenne Twister, seeded by the OS and reseeded in every forked child. Not
# os.urandom: its getrandom() system call per request cost ≈ 3 µs of the public route's ≈ 110 µs
# under load (bench.ab, 5 interleaved rounds, docs/benchmarks.md), and these ids are correlation
# handles (callers may send their own), not secrets.
_bits = random.getrandbits


def random_hex(bits: int) -> str:
    """``bits`` random bits (a multiple of 8) as lower-case hex, never all zeros (W3C Trace
    Context forbids them). ``int.to_bytes().hex()``: a quarter of a format spec's time."""
    return (_bits(bits) or 1).to_bytes(bits // 8).hex()
