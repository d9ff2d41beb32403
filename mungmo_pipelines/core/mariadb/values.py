"""The Python values a row's columns carry between a MariaDB reader and a record encoder.

Every reader (a snapshot ``SELECT``, the binary log) hands rows over in this one form, and every
encoder (the JDBC source's Connect JSON, Debezium's envelope) reads only this form, so a reader
and an encoder never need to know about each other:

=========================================  =================================================
column                                     value
=========================================  =================================================
any, when NULL                             ``None``
TINYINT … BIGINT (signed or unsigned)      ``int`` (an unsigned column's value is never negative)
YEAR                                       ``int`` (the 4-digit year; ``0`` for YEAR 0000)
BIT(n)                                     ``int`` (the bits as an unsigned number)
DECIMAL / NUMERIC                          ``decimal.Decimal``, exact, with the column's scale
FLOAT                                      ``float`` (the float32 value, widened)
DOUBLE                                     ``float``
CHAR, VARCHAR, TEXT types, JSON            ``str`` (JSON as the text MariaDB stores)
ENUM                                       ``str`` (the label; ``""`` for the 0 index)
SET                                        ``str`` (the labels joined by ``,`` in definition order)
BINARY(n)                                  ``bytes``, always n bytes (trailing ``0x00`` kept)
VARBINARY, BLOB types, GEOMETRY            ``bytes``
DATE                                       ``datetime.date`` or :class:`InvalidTemporal`
TIME                                       ``datetime.timedelta`` (may be negative; microseconds)
DATETIME                                   naive ``datetime.datetime`` (wall clock) or :class:`InvalidTemporal`
TIMESTAMP                                  aware ``datetime.datetime`` in UTC, or :class:`InvalidTemporal`
=========================================  =================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InvalidTemporal:
    """A DATE, DATETIME or TIMESTAMP value Python cannot represent: a zero date (``0000-00-00``)
    or a date with zero parts (``2024-00-10``), which MariaDB stores when ``sql_mode`` allows it.

    ``text`` is the value as MariaDB prints it (``0000-00-00 00:00:00``). Encoders decide what
    it becomes (the JDBC source: NULL, as Connector/J reads it; Debezium: its documented rule).
    """

    text: str
