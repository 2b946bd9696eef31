"""Seeded random values for the agreement tests: the shapes
crates/sluice-crypto/src/tests.rs draws (its SplitMix64 and float shapes),
plus dyadic fractions, where exact ties between two shortest digit strings
are common."""

from __future__ import annotations

import base64
import struct
from fractions import Fraction
from typing import Any

from sluice.canonical import _shortest_digits

U64 = (1 << 64) - 1
I64_MIN = -(1 << 63)

SPECIAL_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2.2250738585072014e-308,
    2.220446049250313e-16,
    150676623248382.125,
    2993902368718.0625,
    1e15,
    1e16,
    9.999999999999998e15,
    1e-5,
    9.999999999999999e-6,
    1e-6,
]

# Strings with every kind of escape: quotes, backslashes, named and \u00xx
# control characters, DEL, non-ASCII up to astral planes, bidi overrides.
PIECES = ["a", "Z", "_", '"', "\\", "\n", "\t", "\b", "\f", "\r", "\x01", "\x1b", "\x1f", "\x7f",
          "é", "€", "𝄞", "\u202e", "\u2028", "\ufeff", "/", " ", "0"]


def from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits & U64))[0]


class Rng:
    """SplitMix64, as in the Rust tests: every run checks the same cases."""

    def __init__(self, seed: int) -> None:
        self.state = seed & U64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & U64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def float(self) -> float:
        """A finite float of one of several shapes: any bit pattern,
        subnormals, values near the notation boundaries, integers, short
        decimals, noisy values of ordinary size, and dyadic fractions."""
        while True:
            shape = self.below(7)
            if shape == 0:
                x = from_bits(self.next())
            elif shape == 1:
                x = from_bits(self.next() & 0x800F_FFFF_FFFF_FFFF)
            elif shape == 2:
                e = self.below(44) - 22
                x = (float(self.next()) / 18446744073709551615.0) * 10.0**e
            elif shape == 3:
                signed = self.next()
                if signed >= 1 << 63:
                    signed -= 1 << 64
                x = float(signed >> self.below(64))
            elif shape == 4:
                x = (self.below(2_000_001) - 1_000_000.0) / 10.0 ** self.below(8)
            elif shape == 5:
                x = (float(self.next()) / 18446744073709551615.0 - 0.5) * 1e4
            else:
                # 53-bit integers over a power of two: exact values with
                # more digits than the shortest form, so ties happen.
                x = float((1 << 52) + self.below(1 << 52)) / float(1 << self.below(40))
                if self.below(2):
                    x = -x
            if x == x and x not in (float("inf"), float("-inf")):
                return x

    def text(self) -> str:
        return "".join(PIECES[self.below(len(PIECES))] for _ in range(self.below(6)))

    def value(self, depth: int) -> Any:
        """A random JSON value: nested objects and arrays, escaped keys and
        strings, integers across u64 and i64 (and beyond), floats."""
        kind = self.below(6 if depth == 0 else 8)
        if kind == 0:
            return None
        if kind == 1:
            return self.below(2) == 0
        if kind == 2:
            return self.next()
        if kind == 3:
            n = self.next()
            return n - (1 << 64) if n >= 1 << 63 else n
        if kind == 4:
            return self.float()
        if kind == 5:
            return self.text()
        if kind == 6:
            return [self.value(depth - 1) for _ in range(self.below(5))]
        return {self.text(): self.value(depth - 1) for _ in range(self.below(5))}


def is_exact_tie(x: float) -> bool:
    """Whether ``x`` lies exactly halfway between two shortest digit
    strings that both read back as ``x`` (the case ties-to-even decides)."""
    x = abs(x)
    if x == 0.0:
        return False
    digits, exp = _shortest_digits(x)
    scale = Fraction(10) ** (exp - len(digits) + 1)
    d = int(digits)
    for other in (d - 1, d + 1):
        if other <= 0:
            continue
        candidate = Fraction(other) * scale
        if float(candidate) == x and Fraction(x) == (Fraction(d) * scale + candidate) / 2:
            return True
    return False


def random_cell(rng: Rng) -> Any:
    kind = rng.below(4)
    if kind == 0:
        return {"value": rng.float(), "ci95": [rng.float(), rng.float()]}
    if kind == 1:
        return {"value": rng.float(), "rank_error95": rng.float()}
    if kind == 2:
        return {"value": rng.float()}
    return rng.value(2)


def release_body(rng: Rng, rows: int, cells_per_row: int) -> dict[str, Any]:
    """A release body as ``sluice_types::ReleaseBody`` reads it, its cells
    random (any JSON value is a cell: a group key at worst)."""
    return {
        "job_id": f"job_{rng.next():016x}",
        "title": "random \x1b[31m\"é" + rng.text(),
        "manifest_digest": "ab" * 32,
        "datasets": [
            {
                "name": "pums",
                "id": "ds_1",
                "version": "cd" * 32,
                "provider": rng.text(),
                "citation": rng.text(),
            }
        ],
        "outputs": {
            "columns": [{"name": "k", "kind": "group_key"}, {"name": "x", "kind": "aggregate", "aggregate": "sum", "epsilon": 1}],
            "rows": [[random_cell(rng) for _ in range(cells_per_row)] for _ in range(rows)],
            "mechanism": rng.text(),
            "epsilon": rng.next(),
            "delta": rng.next(),
        },
        "epsilon_spent": rng.next(),
        "delta_spent": rng.next(),
        "confidence_level": rng.float(),
        "created_at": "2026-01-01T00:00:00Z",
    }


def wasm_module(rng: Rng) -> str:
    return base64.b64encode(bytes(rng.below(256) for _ in range(8 + rng.below(40)))).decode()
