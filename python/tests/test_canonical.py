"""Canonical JSON against the reference table of the Rust implementation
(crates/sluice-crypto/src/tests.rs), offline. The byte-for-byte agreement
with the Rust binary itself is tests/test_rust_agreement.py."""

from __future__ import annotations

import json

import pytest

from generators import Rng, is_exact_tie
from sluice.canonical import NotCanonical, canonical_float, canonical_json, parse_canonical, parse_json

# Every row of `floats_print_as_documented` in crates/sluice-crypto/src/tests.rs.
FLOATS = [
    (0.0, "0.0"),
    (-0.0, "-0.0"),
    (1.0, "1.0"),
    (-2.5, "-2.5"),
    (0.1, "0.1"),
    (123.456, "123.456"),
    (1e15, "1000000000000000.0"),
    (1.5e15, "1500000000000000.0"),
    (9_007_199_254_740_993.0, "9007199254740992.0"),
    (1e16, "1e+16"),
    (1.2345e16, "1.2345e+16"),
    (1e-5, "0.00001"),
    (1.5e-5, "0.000015"),
    (1e-6, "1e-6"),
    (2.5e-7, "2.5e-7"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (2.2250738585072014e-308, "2.2250738585072014e-308"),
    (5e-324, "5e-324"),
    (-5e-324, "-5e-324"),
    (0.30000000000000004, "0.30000000000000004"),
    (1.0 / 3.0, "0.3333333333333333"),
    # Exact ties between two shortest forms go to the even digit.
    (150676623248382.125, "150676623248382.12"),
    (2993902368718.0625, "2993902368718.0625"),
    (0.125, "0.125"),
]


@pytest.mark.parametrize("x,expected", FLOATS, ids=[e for _, e in FLOATS])
def test_floats_print_as_the_rust_table_says(x: float, expected: str) -> None:
    assert canonical_float(x) == expected
    assert canonical_json(x) == expected.encode()
    assert parse_canonical(expected.encode()) == x


def test_keys_are_sorted_at_every_level() -> None:
    # `canonical_json_sorts_keys_at_every_level`.
    v = {"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": None}}
    assert canonical_json(v) == b'{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}'


def test_keys_sort_by_utf8_bytes_not_code_units() -> None:
    # UTF-8 byte order is code point order: U+FF61 before U+1D11E, which
    # UTF-16 code units (a surrogate pair, D834 DD1E) would put first.
    v = {"\uff61": 1, "\U0001d11e": 2, "a": 3, "ab": 4, "": 5}
    assert canonical_json(v) == '{"":5,"a":3,"ab":4,"｡":1,"𝄞":2}'.encode()


@pytest.mark.parametrize(
    "text",
    # `random_structures_round_trip_byte_for_byte`'s non-canonical cases, and more.
    [
        '{"b":1,"a":2}',
        '{"a": 1}',
        "[1.50]",
        "[1e16]",
        "[1E+16]",
        "[-0]",
        "[0.1e1]",
        '["\\u00e9"]',
        '["\\/"]',
        '{"a":1,"a":1}',
        " [1]",
        "[1]\n",
        "[NaN]",
        "[Infinity]",
        "[1e400]",
        '["\\ud800"]',
        "\ufeff[1]",
        '["\\u001B"]',
        "[1.0E-7]",
        "[100000000000000000000]",
    ],
)
def test_non_canonical_text_is_refused(text: str) -> None:
    with pytest.raises(NotCanonical):
        parse_canonical(text.encode("utf-8"))


def test_strings_escape_exactly_the_control_characters() -> None:
    s = "".join(chr(i) for i in range(0x20)) + '"\\/\x7f\u2028é𝄞'
    assert canonical_json(s) == (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019"
        '\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028é𝄞"'
    ).encode("utf-8")


def test_integers_are_u64_or_i64_and_floats_beyond() -> None:
    assert canonical_json([0, 2**64 - 1, -(2**63)]) == b"[0,18446744073709551615,-9223372036854775808]"
    # serde_json holds a number beyond both as a float.
    assert canonical_json(2**64) == b"1.8446744073709552e+19"
    assert parse_json(b"18446744073709551616") == 2.0**64
    assert parse_json(b"-9223372036854775809") == -(2.0**63)
    assert canonical_json(True) == b"true" and canonical_json(1) == b"1"
    assert canonical_json(float("nan")) == b"null"


def test_nesting_is_limited_as_serde_json_limits_it() -> None:
    parse_json(b"[" * 127 + b"]" * 127)
    with pytest.raises(ValueError):
        parse_json(b"[" * 128 + b"]" * 128)


def test_random_values_round_trip_and_equal_a_sorted_json_dumps() -> None:
    # As in `random_structures_round_trip_byte_for_byte`: canonical bytes
    # parse as canonical, re-encode to themselves, and hold the value that
    # another parser (the standard library's) reads.
    rng = Rng(0xCA11AB1E)
    for _ in range(5_000):
        v = rng.value(4)
        data = canonical_json(v)
        back = parse_canonical(data)
        assert canonical_json(back) == data
        assert json.loads(data) == json.loads(json.dumps(v, ensure_ascii=False))


def test_the_float_generator_reaches_exact_ties() -> None:
    # The agreement test relies on these shapes to exercise ties-to-even.
    rng = Rng(0x71E5)
    ties = sum(is_exact_tie(rng.float()) for _ in range(20_000))
    assert ties > 50, ties
    assert is_exact_tie(150676623248382.125) and not is_exact_tie(0.1)
