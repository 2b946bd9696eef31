"""Canonical JSON, byte for byte as ``sluice_crypto::canonical_json`` writes it.

Release payloads, audit-entry hashes, agreement content hashes and manifest
digests are computed over these bytes, so this module must agree with the
Rust writer (crates/sluice-crypto/src/canonical.rs) on every value; the
rules are docs/releases-and-audit.md, "Canonical JSON". The test suite
checks the agreement against the real ``sluice`` binary.

Values are what :func:`json.loads` gives, with one refinement so that
parsing matches serde_json's: an integer outside the range of ``u64`` and
``i64`` (and ``-0``) is a float, as it is in Rust.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

__all__ = [
    "canonical_json",
    "canonical_float",
    "NotCanonical",
    "parse_canonical",
    "parse_json",
    "sha256_hex",
    "digest_of",
]

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)
# serde_json refuses input nested this deep (its recursion limit of 128
# counts the container that reaches it).
_MAX_DEPTH = 127

_ESCAPES = {i: "\\u%04x" % i for i in range(0x20)}
_ESCAPES.update(
    {
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        0x08: "\\b",
        0x09: "\\t",
        0x0A: "\\n",
        0x0C: "\\f",
        0x0D: "\\r",
    }
)


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (dicts, lists, tuples, str,
    int, float, bool, None). A float that is not finite is written ``null``,
    as the Rust encoder does; keys must be strings."""
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def digest_of(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``: how agreement
    content hashes and manifest digests are made."""
    return sha256_hex(canonical_json(value))


def canonical_float(x: float) -> str:
    """A finite float as canonical JSON writes it: the shortest digits that
    read back as ``x`` (ties to even, as :func:`repr` chooses), laid out in
    fixed notation for exponents -5 to 15 and in exponent notation beyond."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a finite float")
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    x = abs(x)
    if x == 0.0:
        return sign + "0.0"
    digits, exp = _shortest_digits(x)
    n = len(digits)
    if -5 <= exp <= 15:
        if exp >= n - 1:
            body = digits + "0" * (exp - n + 1) + ".0"
        elif exp >= 0:
            body = digits[: exp + 1] + "." + digits[exp + 1 :]
        else:
            body = "0." + "0" * (-exp - 1) + digits
    else:
        body = digits[0]
        if n > 1:
            body += "." + digits[1:]
        body += "e" + ("-" if exp < 0 else "+") + str(abs(exp))
    return sign + body


def _shortest_digits(x: float) -> tuple[str, int]:
    """Digits ``d1…dn`` (no leading or trailing zeros) and exponent ``E``
    with ``x = d1.d2…dn × 10^E``, read off ``repr`` (shortest round-trip,
    nearest, ties to even), whose layout differs from the canonical one."""
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    every = whole + fraction
    significant = every.lstrip("0")
    leading = len(every) - len(significant)
    exp = (int(exponent) if exponent else 0) + len(whole) - 1 - leading
    return significant.rstrip("0"), exp


def _write(value: Any, out: list[str]) -> None:
    # bool before int: True is an int in Python.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if _I64_MIN <= value <= _U64_MAX:
            out.append(str(int(value)))
        else:
            # serde_json holds such a number as a float.
            out.append(canonical_float(_int_as_float(value)))
    elif isinstance(value, float):
        out.append(canonical_float(value) if math.isfinite(value) else "null")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"object keys must be strings, not {type(k).__name__}")
            items.append((k.encode("utf-8"), k, v))
        items.sort(key=lambda item: item[0])
        out.append("{")
        for i, (_, k, v) in enumerate(items):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _string(s: str) -> str:
    # Lone surrogates have no UTF-8 form: fail here, not when encoding the whole.
    s.encode("utf-8")
    return '"' + s.translate(_ESCAPES) + '"'


def _int_as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ValueError("number out of range") from None


def _parse_int(text: str) -> int | float:
    if text == "-0":
        return -0.0  # serde_json reads -0 as the float -0.0
    value = int(text)
    if _I64_MIN <= value <= _U64_MAX:
        return value
    return _int_as_float(value)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """Parses JSON as serde_json does for the platform: strict UTF-8, exact
    floats, no NaN or infinity, integers beyond 64 bits as floats, at most
    127 levels of nesting. Raises :class:`ValueError` on anything else."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _depth(value) > _MAX_DEPTH:
        raise ValueError("JSON nested too deeply")
    return value


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest


class NotCanonical(ValueError):
    """Bytes that are not the canonical JSON of the value they encode."""


def parse_canonical(data: bytes) -> Any:
    """The value ``data`` encodes, if ``data`` is exactly its canonical JSON
    (parsed as :func:`parse_json` does); raises :class:`NotCanonical`
    otherwise."""
    try:
        value = parse_json(data)
        encoded = canonical_json(value)
    except (ValueError, UnicodeError) as e:
        raise NotCanonical(f"not canonical JSON: {e}") from None
    if encoded != bytes(data):
        raise NotCanonical("not in canonical form")
    return value
