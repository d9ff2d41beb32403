"""Writing rows: the run's writer session, and one writer per ``insert.mode`` plus delete.

The decoder has already turned every value into a MariaDB literal (``connect/sink_types.py``),
so a writer only assembles statements: multi-row ``INSERT``s cut to fit ``max_allowed_packet``
(``insert``; ``upsert`` adds ``ON DUPLICATE KEY UPDATE``), one ``UPDATE`` or ``DELETE`` per row,
and counts what each did from MariaDB's own info string.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
import pymysql.cursors
from pymysql.constants import CLIENT
from sqlalchemy import Engine

from mungmo_pipelines.core.config.sink import InsertMode, SinkConfig
from mungmo_pipelines.core.errors import SinkError
from mungmo_pipelines.core.mariadb.dialect import (
    STRICT_SQL_MODE,
    UNKNOWN_TIME_ZONE,
    error_code,
    param_quote,
    quote,
    session_time_zone,
)
from mungmo_pipelines.core.mariadb.lock import get_lock, lock_name
from mungmo_pipelines.core.mariadb.session import connect, engine_client_flags, fetch_one
from mungmo_pipelines.core.sink.records import Shape

LOCK_WAIT_S = 600
# A multi-row INSERT is cut to fit max_allowed_packet, with room to spare for the packet's framing.
STATEMENT_MARGIN_CHARS = 16 * 1024

_DUPLICATES = re.compile(rb"Duplicates: (\d+)")
_MATCHED = re.compile(rb"Rows matched: (\d+)")


class CountingCursor(pymysql.cursors.Cursor):
    """Adds up the rows every statement affected and MariaDB's info on them.

    An insert is a few multi-row statements, an update or delete one statement per row; the
    info string of each ("Records: 3  Duplicates: 1", "Rows matched: 1  Changed: 0") says
    how many existing rows an upsert changed and how many rows an update matched.
    """

    affected = changed = matched = 0
    statement_chars = 0  # how long a statement may be, from the session's max_allowed_packet

    def reset_counts(self) -> None:
        self.affected = self.changed = self.matched = 0

    def execute(self, query: str, args: Any = None) -> int:
        rows = super().execute(query, args)
        # PyMySQL keeps the server's info string only on its private result: no public accessor.
        result = self._result  # type: ignore[attr-defined]
        info = (result.message if result is not None else None) or b""
        self.affected += rows
        duplicates = _DUPLICATES.search(info)
        # Without info (a one-row upsert), 2 affected rows mean one existing row was changed.
        self.changed += int(duplicates[1]) if duplicates else rows // 2
        matched = _MATCHED.search(info)
        self.matched += int(matched[1]) if matched else 0
        return rows


@dataclass
class TableStats:
    """What one run did to one target table; shown as Dagster metadata."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    dead_lettered: int = 0
    truncated: int = 0

    def add(self, other: TableStats) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted
        self.dead_lettered += other.dead_lettered
        self.truncated += other.truncated


class WriterSession:
    """The run's own connection to the target database, made for writing.

    Strict ``sql_mode``; ``time_zone`` = ``db.timezone`` (TIMESTAMP columns); no
    ``CLIENT_FOUND_ROWS`` (which SQLAlchemy sets), so an upsert that changes nothing counts 0
    rows and the counts tell inserts from updates; and the connector's named lock, which
    makes a second run of the same connector wait for this one.
    """

    def __init__(self, engine: Engine, config: SinkConfig) -> None:
        self.engine = engine
        self.config = config
        self.lock_name = lock_name("mungmo-sink", config.database, config.name)
        self._conn: pymysql.Connection | None = None
        self.statement_chars = 0  # known once connected; 0 would send each row on its own

    def connection(self) -> pymysql.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> pymysql.Connection:
        conn = connect(
            self.engine,
            client_flag=engine_client_flags(self.engine) & ~CLIENT.FOUND_ROWS,
            autocommit=False,
            cursorclass=CountingCursor,
        )
        zone = self.config.db_timezone
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SET SESSION sql_mode = %s, time_zone = %s",
                    (STRICT_SQL_MODE, session_time_zone(ZoneInfo(zone), zone)),
                )
                locked = get_lock(cursor, self.lock_name, LOCK_WAIT_S)
                cursor.execute("SELECT @@max_allowed_packet")
                (max_packet,) = fetch_one(cursor)
        except pymysql.err.MySQLError as err:
            conn.close()
            if error_code(err) == UNKNOWN_TIME_ZONE:
                raise SinkError(
                    f"connector {self.config.name!r}: MariaDB does not know db.timezone {zone!r}; load its time zone "
                    "tables (mariadb-tzinfo-to-sql) or use UTC"
                ) from None
            raise
        if not locked:
            conn.close()
            raise SinkError(
                f"connector {self.config.name!r}: another run of this connector has held its lock for "
                f"{LOCK_WAIT_S}s; not starting a second one"
            )
        # Statements are measured in characters; a utf8mb4 character is at most 4 bytes.
        max_packet = int(max_packet)
        self.statement_chars = max(max_packet // 8, max_packet // 4 - STATEMENT_MARGIN_CHARS)
        return conn

    def rollback_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except (pymysql.err.MySQLError, OSError):
                self.reset()

    def reset(self) -> None:
        """Drop the connection (and with it the lock); the next ``connection()`` makes a new one."""
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                self._conn.close()
            self._conn = None

    close = reset


@dataclass(frozen=True)
class Statement:
    """SQL for rows whose values are already MariaDB literals.

    An insert or upsert is ``head`` + ``(row),(row),...`` + ``tail``, as many rows per statement
    as fit in ``max_chars``; an update or delete is the template ``head`` filled with one row
    (``%s`` per value; identifiers in it have ``%`` doubled), reordered by ``order``.
    """

    head: str
    tail: str = ""
    multi_row: bool = False
    order: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None

    def statements(self, rows: Sequence[tuple[str, ...]], max_chars: int) -> Iterator[str]:
        if not self.multi_row:
            order = self.order
            for row in rows:
                yield self.head % (order(row) if order else row)
            return
        values = ["(" + ",".join(row) + ")" for row in rows]
        budget = max_chars - len(self.head) - len(self.tail)
        start = size = 0
        for index, value in enumerate(values):
            if size + len(value) > budget and index > start:
                yield self.head + ",".join(values[start:index]) + self.tail
                start, size = index, 0
            size += len(value) + 1
        yield self.head + ",".join(values[start:]) + self.tail


class RowWriter:
    """How rows of one shape are written, and what the statements' counts mean."""

    def statement(self, shape: Shape) -> Statement | None:
        """The statement for ``shape``; ``None`` when writing would change nothing."""
        raise NotImplementedError

    def count(self, cursor: CountingCursor, rows: int, stats: TableStats) -> None:
        """Add what the statements just executed for ``rows`` rows did to ``stats``."""
        raise NotImplementedError


def _where_keys(shape: Shape) -> str:
    return " AND ".join(f"{param_quote(k)} = %s" for k in shape.key_columns)


class InsertWriter(RowWriter):
    """``insert.mode=insert``: multi-row ``INSERT``; a duplicate key is a data error."""

    def statement(self, shape: Shape) -> Statement | None:
        columns = ", ".join(quote(c) for c in shape.columns)
        return Statement(f"INSERT INTO {quote(shape.table)} ({columns}) VALUES ", self.tail(shape), multi_row=True)

    def tail(self, shape: Shape) -> str:
        return ""

    def count(self, cursor: CountingCursor, rows: int, stats: TableStats) -> None:
        stats.inserted += rows


class UpsertWriter(InsertWriter):
    """``insert.mode=upsert``: multi-row ``INSERT … ON DUPLICATE KEY UPDATE`` of every non-key column."""

    def tail(self, shape: Shape) -> str:
        columns = [quote(c) for c in shape.columns]
        rest = columns[len(shape.key_columns) :]
        updates = [f"{c} = VALUES({c})" for c in rest] or [f"{columns[0]} = {columns[0]}"]
        return " ON DUPLICATE KEY UPDATE " + ", ".join(updates)

    def count(self, cursor: CountingCursor, rows: int, stats: TableStats) -> None:
        inserted = cursor.affected - 2 * cursor.changed
        stats.inserted += inserted
        stats.updated += rows - inserted


class UpdateWriter(RowWriter):
    """``insert.mode=update``: one ``UPDATE … WHERE <key>`` per row; a row that matches nothing changes nothing."""

    def statement(self, shape: Shape) -> Statement | None:
        width = len(shape.key_columns)
        if width == len(shape.columns):
            return None  # nothing but the key: an update changes nothing
        assignments = ", ".join(f"{param_quote(c)} = %s" for c in shape.columns[width:])
        return Statement(
            f"UPDATE {param_quote(shape.table)} SET {assignments} WHERE {_where_keys(shape)}",
            order=lambda row: (*row[width:], *row[:width]),
        )

    def count(self, cursor: CountingCursor, rows: int, stats: TableStats) -> None:
        stats.updated += cursor.matched


class DeleteWriter(RowWriter):
    """A tombstone (``delete.enabled``): one ``DELETE … WHERE <key>`` per record."""

    def statement(self, shape: Shape) -> Statement | None:
        return Statement(f"DELETE FROM {param_quote(shape.table)} WHERE {_where_keys(shape)}")

    def count(self, cursor: CountingCursor, rows: int, stats: TableStats) -> None:
        stats.deleted += cursor.affected


WRITERS: dict[InsertMode, RowWriter] = {
    InsertMode.INSERT: InsertWriter(),
    InsertMode.UPSERT: UpsertWriter(),
    InsertMode.UPDATE: UpdateWriter(),
}
DELETE_WRITER = DeleteWriter()


def writer_for(shape: Shape, insert_mode: InsertMode) -> RowWriter:
    return DELETE_WRITER if shape.delete else WRITERS[insert_mode]
