"""Rows of a plain ``SELECT`` (PyMySQL's text protocol) converted to the value contract of
:mod:`mungmo_pipelines.core.mariadb.values`.

PyMySQL already returns most columns in that form; what differs is BIT (bytes), FLOAT (the
text the server prints, rounded to 6 digits), TIMESTAMP (a naive wall time in the session's
zone, which the caller sets to ``+00:00``) and the dates Python cannot hold (returned as text).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Sequence
from typing import Any

from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema
from mungmo_pipelines.core.mariadb.values import InvalidTemporal

Converter = Callable[[Any], Any]
_FLOAT32 = struct.Struct("<f")


def _same(value: Any) -> Any:
    return value


def _bits(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _float32(value: float) -> float:
    return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])


def _date(value: dt.date | str) -> dt.date | InvalidTemporal:
    return InvalidTemporal(value) if isinstance(value, str) else value


def _timestamp(value: dt.datetime | str) -> dt.datetime | InvalidTemporal:
    if isinstance(value, str):
        return InvalidTemporal(value)
    return value.replace(tzinfo=dt.UTC)


def _converter(column: TableColumn) -> Converter:
    if column.data_type == "bit":
        return _bits
    if column.data_type == "float":
        return _float32
    if column.data_type in ("date", "datetime"):
        return _date
    if column.data_type == "timestamp":
        return _timestamp
    return _same


def select_converters(table: TableSchema) -> tuple[Converter, ...]:
    """One converter per column of ``SELECT *`` (session ``time_zone = '+00:00'``)."""
    return tuple(_converter(column) for column in table.columns)


def changed_columns(table: TableSchema) -> tuple[tuple[int, Converter], ...]:
    """The positions whose ``SELECT`` values need converting, with their converters (hot paths skip the rest)."""
    return tuple((i, f) for i, f in enumerate(select_converters(table)) if f is not _same)


def contract_row(converters: Sequence[Converter], row: Sequence[Any]) -> list[Any]:
    return [None if value is None else convert(value) for convert, value in zip(converters, row, strict=True)]
