"""Typed TIFF tag values with the conversions metadata-extractor applies to them.

metadata-extractor stores each TIFF value as a Java object whose type depends on the TIFF format and the component
count (a single SHORT is an `Integer`, several are an `int[]`, a single LONG is a `Long`, a string is a byte buffer
decoded on demand, ...), and its descriptions go through `Directory.getInteger / getString / getRational ...`,
whose results depend on that stored type. `Value` keeps the same kinds so that the description rules in
`descriptions.py` see what the Java ones see. The number formatting helpers reproduce `java.text.DecimalFormat`
(rounding on the exact binary value of the double), `Double.toString` for short values, `(int)` casts and
`String.trim()`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation

import numpy as np

# Value kinds (the Java class metadata-extractor stores).
STR = "str"  # StringValue: raw bytes, decoded with the platform charset (UTF-8) when read
BYTES = "bytes"  # byte[] (UNDEFINED, SBYTE arrays): signed bytes
SHORTS = "short[]"  # BYTE arrays (unsigned 8-bit) and SSHORT arrays
INTS = "int[]"  # SHORT arrays (unsigned 16-bit) and SLONG arrays
LONGS = "long[]"  # LONG arrays (unsigned 32-bit)
FLOATS = "float[]"
DOUBLES = "double[]"
RATIONALS = "rational[]"
INT = "int"  # Integer: single BYTE, SBYTE, SHORT, SSHORT, SLONG
LONG = "long"  # Long: single LONG
FLOAT = "float"
DOUBLE = "double"
RATIONAL = "rational"

ARRAY_KINDS = {BYTES, SHORTS, INTS, LONGS, FLOATS, DOUBLES, RATIONALS}
NUMBER_KINDS = {INT, LONG, FLOAT, DOUBLE, RATIONAL}

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"\s*[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?)\s*\Z")
_SURROGATES = re.compile("[\ud800-\udfff]")


def to_int32(v: int) -> int:
    """Java `(int)` of a long: keep the low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def to_int8(v: int) -> int:
    """Java `(byte)` of an int."""
    v &= 0xFF
    return v - 256 if v >= 128 else v


def d2i(d: float) -> int:
    """Java `(int)` of a double: truncate toward zero, saturate, NaN -> 0."""
    if math.isnan(d):
        return 0
    if d >= 2147483647.0:
        return 2147483647
    if d <= -2147483648.0:
        return -2147483648
    return int(d)


def d2l(d: float) -> int:
    """Java `(long)` of a double."""
    if math.isnan(d):
        return 0
    if d >= 9.223372036854776e18:
        return (1 << 63) - 1
    if d <= -9.223372036854776e18:
        return -(1 << 63)
    return int(d)


def java_round(d: float) -> int:
    """Java `Math.round(double)`: floor(d + 0.5) as a long."""
    if math.isnan(d):
        return 0
    if math.isinf(d):
        return d2l(d)
    return d2l(math.floor(d + 0.5))


def f32(x: float) -> float:
    """Round a double to float32 precision (Java `(float)`)."""
    with np.errstate(all="ignore"):
        return float(np.float32(x))


def java_trim(s: str) -> str:
    """Java `String.trim()`: strip every char <= U+0020 from both ends."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    return s[i:j]


def clean_text(s: str) -> str:
    """Replace lone UTF-16 surrogates (unencodable as UTF-8) by U+FFFD."""
    return _SURROGATES.sub("\ufffd", s)


def decode_utf8(b: bytes) -> str:
    """Java `new String(bytes)` with a UTF-8 platform charset: malformed input becomes U+FFFD."""
    return b.decode("utf-8", errors="replace")


def java_double_to_string(d: float) -> str:
    """Java `Double.toString(d)` (exact for the short outputs this module needs; long ones are only measured)."""
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    a = abs(d)
    if 1e-3 <= a < 1e7:
        s = repr(d)
        if "e" in s or "E" in s:  # repr uses exponent only outside this range; keep the guard anyway
            s = format(d, "f")
        if "." not in s:
            s += ".0"
        return s
    # Computerized scientific notation, e.g. 1.0E-5, 1.234E10 (shortest round-trip digits, as repr gives)
    sign, digits, exp = Decimal(repr(a)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    e10 = len(ds) - 1 + int(exp)
    rest = ds[1:].rstrip("0") or "0"
    return f"{'-' if d < 0 else ''}{ds[0]}.{rest}E{e10}"


def decimal_format(x: float, max_frac: int, min_frac: int = 0, min_int: int = 1, half_up: bool = False) -> str:
    """`new DecimalFormat(pattern).format(x)` for patterns like `0.##`, `0.0##`, `00.000` (no grouping).

    Java rounds the exact binary value of the double (HALF_EVEN unless `setRoundingMode(HALF_UP)`), prints a
    leading '-' for negative values even when they round to zero, '∞' for infinities and 'NaN' for NaN.
    """
    if math.isnan(x):
        return "NaN"
    negative = x < 0 or (x == 0 and math.copysign(1.0, x) < 0)
    if math.isinf(x):
        return ("-" if negative else "") + "\u221e"
    ctx = Context(prec=800, rounding=ROUND_HALF_UP if half_up else ROUND_HALF_EVEN)  # every double fits exactly
    try:
        q = ctx.quantize(Decimal(abs(x)), Decimal(1).scaleb(-max_frac))
    except InvalidOperation:  # pragma: no cover - cannot happen with prec=800
        return ("-" if negative else "") + repr(abs(x))
    s = format(q, "f")
    if "." in s:
        ip, fp = s.split(".")
    else:
        ip, fp = s, ""
    fp = fp.rstrip("0")
    if len(fp) < min_frac:
        fp = fp + "0" * (min_frac - len(fp))
    ip = ip.lstrip("0")
    if len(ip) < min_int:
        ip = "0" * (min_int - len(ip)) + ip
    out = ip + ("." + fp if fp else "")
    return ("-" if negative else "") + out


def parse_java_int(s: str) -> int | None:
    """Java `Integer.parseInt`: None where it would throw NumberFormatException."""
    if not _INT_RE.match(s):
        return None
    v = int(s)
    if -(1 << 31) <= v < (1 << 31):
        return v
    return None


def parse_java_double(s: str) -> float | None:
    """Java `Double.parseDouble` for the decimal forms (None where it would throw)."""
    if not _FLOAT_RE.match(s):
        return None
    t = s.strip().rstrip("fFdD")
    try:
        return float(t.replace("Infinity", "inf"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Rational:
    """metadata-extractor's `com.drew.lang.Rational` (numerator/denominator held as Java longs)."""

    num: int
    den: int

    def double_value(self) -> float:
        if self.num == 0:
            return 0.0
        if self.den == 0:
            return math.inf if self.num > 0 else -math.inf
        return self.num / self.den

    def float_value(self) -> float:
        if self.num == 0:
            return 0.0
        if self.den == 0:
            return math.inf if self.num > 0 else -math.inf
        with np.errstate(all="ignore"):
            return float(np.float32(self.num) / np.float32(self.den))

    def int_value(self) -> int:
        return d2i(self.double_value())

    def byte_value(self) -> int:
        return to_int8(d2i(self.double_value()))

    def is_integer(self) -> bool:
        return (
            self.den == 1
            or (self.den != 0 and _java_mod(self.num, self.den) == 0)
            or (self.den == 0 and self.num == 0)
        )

    def is_zero(self) -> bool:
        return self.num == 0 or self.den == 0

    def reciprocal(self) -> Rational:
        return Rational(self.den, self.num)

    def simplified(self) -> Rational:
        n, d = self.num, self.den
        if d < 0:
            n, d = -n, -d
        g = math.gcd(n, d)
        if g == 0:
            return Rational(n, d)
        return Rational(_java_div(n, g), _java_div(d, g))

    def __str__(self) -> str:  # Rational.toString()
        return f"{self.num}/{self.den}"

    def simple_string(self, allow_decimal: bool = True) -> str:
        """`Rational.toSimpleString(allowDecimal)`."""
        if self.den == 0 and self.num != 0:
            return str(self)
        if self.is_integer():
            return str(self.int_value())
        s = self.simplified()
        if allow_decimal:
            ds = java_double_to_string(s.double_value())
            if len(ds) < 5:
                return ds
        return str(s)


def _java_mod(a: int, b: int) -> int:
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _java_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


@dataclass(frozen=True)
class Value:
    """A tag value as metadata-extractor stores it: `kind` is the Java type, `data` the payload.

    str: bytes; bytes: tuple of signed ints; short[]/int[]/long[]: tuple of ints; float[]/double[]: tuple of floats;
    rational[]: tuple of Rational; int/long: int; float/double: float; rational: Rational.
    """

    kind: str
    data: object

    # -- Directory getters --------------------------------------------------------------------------------------

    def text(self) -> str:
        """The decoded string of a STR value."""
        return decode_utf8(self.data)  # type: ignore[arg-type]

    def get_integer(self) -> int | None:
        k, v = self.kind, self.data
        if k == INT:
            return v  # type: ignore[return-value]
        if k == LONG:
            return to_int32(v)  # type: ignore[arg-type]
        if k in (FLOAT, DOUBLE):
            return d2i(v)  # type: ignore[arg-type]
        if k == RATIONAL:
            return v.int_value()  # type: ignore[union-attr]
        if k == STR:
            s = self.text()
            p = parse_java_int(s)
            if p is not None:
                return p
            acc = 0
            for byte in s.encode("utf-8", errors="surrogatepass"):
                acc = ((acc << 8) + byte) & 0xFFFFFFFFFFFFFFFF
            return to_int32(acc)
        if k in (RATIONALS, BYTES, INTS, SHORTS) and len(v) == 1:  # type: ignore[arg-type]
            first = v[0]  # type: ignore[index]
            return first.int_value() if k == RATIONALS else first
        return None

    def get_int_array(self) -> list[int] | None:
        k, v = self.kind, self.data
        if k in (INTS, SHORTS, BYTES):
            return list(v)  # type: ignore[call-overload]
        if k == RATIONALS:
            return [r.int_value() for r in v]  # type: ignore[union-attr]
        if k == STR:
            units = self.text().encode("utf-16-be", errors="surrogatepass")
            return [int.from_bytes(units[i : i + 2], "big") for i in range(0, len(units), 2)]
        if k == INT:
            return [v]  # type: ignore[list-item]
        return None

    def get_byte_array(self) -> bytes | None:
        """Unsigned view of `Directory.getByteArray` (Java bytes are signed; the bit patterns are equal)."""
        k, v = self.kind, self.data
        if k == STR:
            return bytes(v)  # type: ignore[arg-type]
        if k == RATIONALS:
            return bytes(r.byte_value() & 0xFF for r in v)  # type: ignore[union-attr]
        if k in (BYTES, INTS, SHORTS):
            return bytes(x & 0xFF for x in v)  # type: ignore[union-attr]
        if k == INT:
            return bytes([v & 0xFF])  # type: ignore[operator]
        return None

    def get_double(self) -> float | None:
        k, v = self.kind, self.data
        if k == STR:
            return parse_java_double(self.text())
        if k in (INT, LONG):
            return float(v)  # type: ignore[arg-type]
        if k in (FLOAT, DOUBLE):
            return v  # type: ignore[return-value]
        if k == RATIONAL:
            return v.double_value()  # type: ignore[union-attr]
        return None

    def get_float(self) -> float | None:
        k, v = self.kind, self.data
        if k == STR:
            d = parse_java_double(self.text())
            return None if d is None else f32(d)
        if k in (INT, LONG, FLOAT, DOUBLE):
            return f32(float(v))  # type: ignore[arg-type]
        if k == RATIONAL:
            return v.float_value()  # type: ignore[union-attr]
        return None

    def get_rational(self) -> Rational | None:
        k, v = self.kind, self.data
        if k == RATIONAL:
            return v  # type: ignore[return-value]
        if k in (INT, LONG):
            return Rational(v, 1)  # type: ignore[arg-type]
        return None

    def get_rational_array(self) -> tuple[Rational, ...] | None:
        return self.data if self.kind == RATIONALS else None  # type: ignore[return-value]

    def get_string(self) -> str:
        """`Directory.getString`."""
        k, v = self.kind, self.data
        if k == RATIONAL:
            return v.simple_string(True)  # type: ignore[union-attr]
        if k == RATIONALS:
            return " ".join(str(r) for r in v)  # type: ignore[union-attr]
        if k in (INTS, SHORTS, LONGS):
            return " ".join(str(x) for x in v)  # type: ignore[union-attr]
        if k == BYTES:
            return " ".join(str(x & 0xFF) for x in v)  # type: ignore[union-attr]
        if k in (FLOATS, DOUBLES):
            parts = []
            for x in v:  # type: ignore[union-attr]
                s = decimal_format(x, 3)
                parts.append("0" if s == "-0" else s)
            return " ".join(parts)
        if k in (FLOAT, DOUBLE):
            return decimal_format(v, 3)  # type: ignore[arg-type]
        if k == STR:
            return self.text()
        return str(v)

    def array_length(self) -> int | None:
        return len(self.data) if self.kind in ARRAY_KINDS else None  # type: ignore[arg-type]
