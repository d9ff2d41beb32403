"""The Debezium MariaDB connector options that decide what a record looks like."""

from __future__ import annotations

from dataclasses import dataclass

DECIMAL_HANDLING_MODES = ("precise", "double", "string")
# Every mode Debezium 3.5's MariaDB connector accepts ("adaptive" is refused by its validator).
TIME_PRECISION_MODES = ("adaptive_time_microseconds", "connect", "isostring", "microseconds", "nanoseconds")
BIGINT_UNSIGNED_HANDLING_MODES = ("long", "precise")
BINARY_HANDLING_MODES = ("bytes", "base64", "base64-url-safe", "hex")
# What "long" does with a BIGINT UNSIGNED above 2^63-1: "fail" names the column and stops;
# "wrap" writes the two's-complement negative Debezium writes (18446744073709551615 -> -1).
UNSIGNED_OVERFLOW_POLICIES = ("fail", "wrap")


class DebeziumOptionError(ValueError):
    """An option value Debezium's MariaDB connector does not accept."""


@dataclass(frozen=True)
class DebeziumOptions:
    """``topic.prefix`` and the value-handling options, with Debezium's defaults."""

    topic_prefix: str
    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive_time_microseconds"
    bigint_unsigned_handling_mode: str = "long"
    binary_handling_mode: str = "bytes"
    tombstones_on_delete: bool = True
    unsigned_overflow: str = "fail"

    def __post_init__(self) -> None:
        for option, value, allowed in (
            ("decimal.handling.mode", self.decimal_handling_mode, DECIMAL_HANDLING_MODES),
            ("time.precision.mode", self.time_precision_mode, TIME_PRECISION_MODES),
            ("bigint.unsigned.handling.mode", self.bigint_unsigned_handling_mode, BIGINT_UNSIGNED_HANDLING_MODES),
            ("binary.handling.mode", self.binary_handling_mode, BINARY_HANDLING_MODES),
            ("unsigned overflow policy", self.unsigned_overflow, UNSIGNED_OVERFLOW_POLICIES),
        ):
            if value not in allowed:
                raise DebeziumOptionError(f"{option}: {value!r} is not one of {', '.join(allowed)}")
        if not self.topic_prefix:
            raise DebeziumOptionError("topic.prefix must not be empty")
