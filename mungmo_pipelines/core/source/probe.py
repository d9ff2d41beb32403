"""The change probe: whether a JDBC source's tables have rows past their stored offsets (for the sensor).

One ``MAX()`` per offset column, cheap with an index: no rows are read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pymysql.constants import FIELD_TYPE
from sqlalchemy import Engine

from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig, SourceMode
from mungmo_pipelines.core.connect.schema import EPOCH, UTC
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.mariadb.session import Cursor, dbapi_cursor, fetch_one
from mungmo_pipelines.core.source.jdbc import describe_source, from_sql, instant, resolve_tables
from mungmo_pipelines.core.source.offsets import TimestampIncrementingOffset, offset_key, table_partition


@dataclass(frozen=True)
class TableProbe:
    """The newest offset-column value of one table against its stored offset."""

    table: str
    newest: int | None
    stored: dict[str, Any] | None
    behind: bool
    # How far the stored offset is behind the newest row: ids (incrementing), milliseconds
    # (timestamp modes), None in bulk mode (no offset) or for an empty table.
    lag: int | None = None
    lag_unit: str = "ids"


def probe_changes(config: JdbcSourceConfig, engine: Engine, stored: dict[bytes, dict[str, Any]]) -> list[TableProbe]:
    """Whether each table has rows past its offset.

    ``newest`` is the largest id, or the newest timestamp in epoch milliseconds. Bulk mode has no
    offset, so every table is always behind (it is copied every poll interval). An offset that
    holds a gap horizon is behind too: rows wait for a transaction, and the next run may pass.
    """
    zone = ZoneInfo(config.db_timezone)
    probes = []
    with engine.connect() as conn, dbapi_cursor(conn) as cursor:
        cursor.execute("SET SESSION time_zone = '+00:00'")
        tables: list[str | None] = [None] if config.query else list(resolve_tables(config, catalog.list_tables(cursor)))
        for table in tables:
            value = stored.get(offset_key(config.name, table_partition(config.database, table)))
            offset = TimestampIncrementingOffset.parse(value)
            label = table if table is not None else "query"
            if config.mode is SourceMode.BULK:
                probes.append(TableProbe(label, None, value, True))
            elif config.mode is SourceMode.INCREMENTING:
                column = config.incrementing_column or _auto_increment_column(cursor, table)
                cursor.execute(f"SELECT MAX({quote(column)}) FROM {from_sql(table, config.query)}")
                found = fetch_one(cursor)[0]
                newest = int(found) if found is not None else None
                last = offset.incrementing if offset else None
                pending = offset is not None and offset.horizon is not None
                behind = newest is not None and (last is None or newest > last or pending)
                lag = None if newest is None else max(0, newest - (last or 0))
                probes.append(TableProbe(label, newest, value, behind, lag))
            else:
                newest_ms = _newest_timestamp(cursor, table, config.query, config.timestamp_columns, zone)
                last_ms = (
                    (offset.timestamp - EPOCH) // dt.timedelta(milliseconds=1) if offset and offset.timestamp else None
                )
                behind = newest_ms is not None and (last_ms is None or newest_ms > last_ms)
                lag = None if newest_ms is None or last_ms is None else max(0, newest_ms - last_ms)
                probes.append(TableProbe(label, newest_ms, value, behind, lag, "ms"))
    return probes


def _auto_increment_column(cursor: Cursor, table: str | None) -> str:
    name = catalog.auto_increment_column(cursor, table) if table is not None else None
    if name is None:
        raise SourceError(f"table {table!r} has no AUTO_INCREMENT column; set incrementing.column.name")
    return name


def _newest_timestamp(
    cursor: Cursor, table: str | None, query: str, columns: Sequence[str], zone: dt.tzinfo
) -> int | None:
    """The newest value over the timestamp columns, in epoch ms (DATETIME read in ``zone``, TIMESTAMP as UTC)."""
    described = describe_source(cursor, table, query)
    kinds = {c.name.lower(): c.type_code for c in described.columns}
    cursor.execute(f"SELECT {', '.join(f'MAX({quote(c)})' for c in columns)} FROM {from_sql(table, query)}")
    values = fetch_one(cursor)
    newest = None
    for column, value in zip(columns, values, strict=True):
        if isinstance(value, dt.datetime):
            as_zone = UTC if kinds.get(column.lower()) == FIELD_TYPE.TIMESTAMP else zone
            millis = (instant(value, as_zone) - EPOCH) // dt.timedelta(milliseconds=1)
            newest = millis if newest is None else max(newest, millis)
    return newest
