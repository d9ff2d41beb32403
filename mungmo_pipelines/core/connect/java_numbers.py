"""Java's number text: how Jackson writes a Java ``float``/``double`` and ``BigInteger`` bytes.

Kafka Connect's JsonConverter serializes with Jackson, so the same value must come out as the
same characters here for a record to be byte-for-byte what Kafka Connect would have written.
"""

from __future__ import annotations

import struct


def unscaled_bytes(unscaled: int) -> bytes:
    """Java's ``BigInteger.toByteArray()``: minimal big-endian two's complement."""
    length = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8
    return unscaled.to_bytes(length, "big", signed=True)


def java_number_text(digits: str, exponent: int) -> str:
    """Java's ``Double.toString`` layout for the decimal ``0.<digits> * 10**exponent``.

    Plain notation for 1e-3 <= |x| < 1e7, else ``d.dddE<n>``; always a digit after the point.
    """
    scientific = exponent - 1
    if -3 <= scientific < 7:
        if exponent <= 0:
            return "0." + "0" * -exponent + digits
        if exponent >= len(digits):
            return digits + "0" * (exponent - len(digits)) + ".0"
        return digits[:exponent] + "." + digits[exponent:]
    return f"{digits[0]}.{digits[1:] or '0'}E{scientific}"


def _shortest_digits(text: str) -> tuple[str, int]:
    """``1.25e-05`` -> ("125", -4): significant digits and the exponent of 0.<digits>."""
    mantissa, _, exp = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    exponent = int(exp or 0) + len(whole) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    return digits, exponent


def _java_digits(value: float, shortest: str) -> tuple[str, int]:
    """JDK 19+ digit choice: the shortest that round-trips, but never fewer than two (4.9E-324)."""
    digits, exponent = _shortest_digits(shortest)
    if len(digits) == 1:
        digits, exponent = _shortest_digits(f"{value:.1e}")
    return digits, exponent


def java_double_text(value: float) -> str:
    """``Double.toString`` (JDK 19+, shortest round-trip digits), as Jackson writes a float64."""
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign = "-" if value < 0 else ""
    return sign + java_number_text(*_java_digits(abs(value), repr(abs(value))))


def float32(value: float) -> float:
    """The nearest float32; values beyond its range become infinite, as in Java's ``(float)`` cast."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def java_float_text(value: float) -> str:
    """``Float.toString`` of the float32 Connector/J's ``getFloat`` makes of the value."""
    single = float32(value)
    if single == 0:
        return "-0.0" if str(single).startswith("-") else "0.0"
    for precision in range(1, 10):
        text = f"{abs(single):.{precision - 1}e}"
        if float32(float(text)) == abs(single):
            break
    sign = "-" if single < 0 else ""
    return sign + java_number_text(*_java_digits(abs(single), text))
