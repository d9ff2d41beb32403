"""Incremental snapshots (Debezium's ``execute-snapshot`` signal): chosen tables re-read in
primary-key chunks while streaming goes on, with Debezium's watermark algorithm (DBLog).

For each chunk the reader writes an *open* row to the signal table, reads the chunk
(``SELECT … WHERE key > last AND key <= maximum [AND condition] ORDER BY key LIMIT chunk.size``,
a statement of its own, so a read view after the open row committed), and writes a *close* row
(``insert_insert``; ``insert_delete`` deletes the open row instead). The chunk waits in a buffer
while the stream catches up: between the open and the close rows any streamed change of a
buffered key drops that key from the buffer (the stream carries that row's newer state); at the
close row the rest goes out as ``op=r`` records with ``source.snapshot`` ``incremental`` and the
close event's position, and the next chunk is read. Changes before the open row are older than
the chunk and go out before it; changes after the close row go out after it. So the last record
of each key is its newest state, whatever the writers do meanwhile.

The signal row itself (``INSERT INTO <signal.data.collection> VALUES ('<id>', 'execute-snapshot',
'{"data-collections": ["db.t"], "additional-conditions": [{"data-collection": "db.t", "filter":
"id > 3"}]}')``) is read from the binlog like any change; :meth:`IncrementalSnapshots.request`
starts the same snapshot without one (for jobs that re-send chosen keys). The state (tables still
to read, the last key sent, the current table's largest key) rides in the offset, so a run that
stops resumes with a new chunk after the last key its committed records cover.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig, WatermarkStrategy
from mungmo_pipelines.core.connect.debezium import DebeziumRecord, SourceInfo
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.mariadb.binlog import RowChange, Statement
from mungmo_pipelines.core.mariadb.catalog import TableNotFound, read_table_schema
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.source.cdc.offsets import IncrementalState, Key, SnapshotCollection
from mungmo_pipelines.core.source.cdc.tables import CapturedTable, Row, TableShapes, select_row_converter

# A signal table's columns: Debezium's id, type and data.
SIGNAL_TABLE_COLUMNS = "id VARCHAR(64) NOT NULL PRIMARY KEY, type VARCHAR(32) NOT NULL, data TEXT"


def signal_table_ddl(database: str, table: str) -> str:
    """``CREATE TABLE`` for the signal table ``signal.data.collection`` names."""
    return f"CREATE TABLE IF NOT EXISTS {quote(database)}.{quote(table)} ({SIGNAL_TABLE_COLUMNS})"


log = logging.getLogger(__name__)

EXECUTE_SNAPSHOT = "execute-snapshot"
WINDOW_OPEN = "snapshot-window-open"
WINDOW_CLOSE = "snapshot-window-close"


def _instant(ns: int) -> str:
    """``Instant.toString()`` of a nanosecond time (what Debezium writes into its watermark rows)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}Z"


@dataclass
class Window:
    """One chunk between its open and close rows."""

    chunk_id: str
    table: CapturedTable
    rows: dict[Key, Row]
    last_key: Key | None
    opened: bool = False


@dataclass
class IncrementalStats:
    rows: int = 0
    chunks: int = 0
    dropped_by_stream: int = 0
    tables_done: list[str] = field(default_factory=list)


def parse_signal(data: str, signal_id: str) -> tuple[list[str], dict[str, str]] | None:
    """An ``execute-snapshot`` signal's tables and per-table conditions; ``None`` when it is not an
    incremental snapshot (logged: an unreadable signal must not stop the stream for good)."""
    try:
        request = json.loads(data or "{}")
    except json.JSONDecodeError as err:
        log.warning("signal %r: data is not JSON (%s); ignored", signal_id, err)
        return None
    kind = str(request.get("type", "incremental")).lower()
    if kind != "incremental":
        log.warning("signal %r: snapshot type %r is not supported here (only incremental); ignored", signal_id, kind)
        return None
    collections = request.get("data-collections") or []
    if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections) or not collections:
        log.warning("signal %r: data-collections must be a non-empty list of table names; ignored", signal_id)
        return None
    conditions: dict[str, str] = {}
    for item in request.get("additional-conditions") or []:
        if isinstance(item, dict) and item.get("data-collection") and item.get("filter"):
            conditions[str(item["data-collection"])] = str(item["filter"])
    if request.get("additional-condition"):  # Debezium 1.x: one condition for every table
        conditions.update(dict.fromkeys(collections, str(request["additional-condition"])))
    return collections, conditions


class IncrementalSnapshots:
    """The incremental snapshot of one connector: signals in, chunks read, window records out."""

    def __init__(
        self,
        config: DebeziumSourceConfig,
        connection: pymysql.Connection,
        shapes: TableShapes,
        state: IncrementalState | None,
        captured_tables: Callable[[], list[tuple[str, str]]],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.connection = connection
        self.shapes = shapes
        self.state = state
        self.captured_tables = captured_tables
        self.clock = clock
        self.window: Window | None = None
        self.stats = IncrementalStats()
        # Set when window rows were written: the binlog head moved, the run reads up to the new one.
        self.wrote = False
        self.signal_table = config.signal_table

    @property
    def running(self) -> bool:
        return self.state is not None

    # -- requests ---------------------------------------------------------------------------

    def request(self, collections: Sequence[str], conditions: dict[str, str], correlation_id: str) -> None:
        """Adds tables (names or regular expressions over ``db.table``) to the snapshot; starts
        reading when none was running."""
        expanded = self._expand(collections)
        added = tuple(SnapshotCollection(t, conditions.get(t, "")) for t in expanded)
        if not added:
            return
        log.info("incremental snapshot %r of %s", correlation_id, ", ".join(c.table for c in added))
        if self.state is None:
            self.state = IncrementalState(correlation_id, added)
            self._read_chunk()
        else:
            self.state = replace(self.state, collections=self.state.collections + added)

    def resume(self) -> None:
        """After a restart with a snapshot in progress: read a chunk from the stored state."""
        if self.state is not None and self.window is None:
            self._read_chunk()

    def _expand(self, collections: Sequence[str]) -> list[str]:
        """Debezium's expansion: each entry is a regular expression over ``db.table``, kept as it
        is when it matches no captured table."""
        known = [f"{db}.{table}" for db, table in self.captured_tables()]
        expanded: list[str] = []
        for pattern in collections:
            try:
                matches = [t for t in known if re.fullmatch(pattern, t, re.IGNORECASE)]
            except re.error:
                matches = []
            for table in matches or [pattern]:
                if table not in expanded:
                    expanded.append(table)
        return expanded

    # -- the stream -------------------------------------------------------------------------

    def observe(self, change: RowChange, table: CapturedTable) -> None:
        """A streamed change of a captured table: inside an open window, its keys leave the buffer."""
        window = self.window
        if window is None or not window.opened or table.name != window.table.name:
            return
        for image in (change.before, change.after):
            if image is not None and window.rows.pop(table.key_of(table.project(image)), None) is not None:
                self.stats.dropped_by_stream += 1

    def on_signal(self, change: RowChange, source: SourceInfo) -> list[DebeziumRecord]:
        """A change of the signal table: a request, or one of this reader's window rows."""
        image = change.after if change.operation == "insert" else change.before
        if image is None:
            return []
        values = change.values(image)
        signal_id, kind = str(values.get("id", "")), str(values.get("type", ""))
        window = self.window
        if change.operation == "insert" and kind == EXECUTE_SNAPSHOT:
            parsed = parse_signal(str(values.get("data") or ""), signal_id)
            if parsed is not None:
                self.request(parsed[0], parsed[1], signal_id)
            return []
        if window is None:
            return []  # a window of an earlier run (or another connector): not ours to close
        if change.operation == "insert" and signal_id == f"{window.chunk_id}-open":
            window.opened = True
            return []
        closes = (
            change.operation == "insert" and signal_id == f"{window.chunk_id}-close"
            if self.config.watermarking_strategy is WatermarkStrategy.INSERT_INSERT
            else change.operation == "delete" and signal_id == f"{window.chunk_id}-open"
        )
        if not closes:
            return []
        return self._close(source)

    def on_statement(self, statement: Statement) -> None:
        """DDL of the table in the window: the buffered rows have the old shape; read the chunk again."""
        window = self.window
        if window is None:
            return
        schema = window.table.schema
        mentioned = re.search(rf"(?<![\w$]){re.escape(schema.name)}(?![\w$])", statement.query, re.IGNORECASE)
        if mentioned and (statement.database == schema.database or schema.database in statement.query):
            log.info("incremental snapshot: %s changed in the open window; reading the chunk again", window.table.name)
            self.window = None
            self._read_chunk()

    def _close(self, source: SourceInfo) -> list[DebeziumRecord]:
        window = self.window
        assert window is not None and self.state is not None
        self.window = None
        at = replace(source, ts_ns=0, snapshot="incremental", row=0, thread=None, query=None)
        records: list[DebeziumRecord] = []
        read = window.table.encoder.read
        for row in window.rows.values():
            records += read(row, replace(at, ts_ns=self.clock()))
        self.stats.rows += len(window.rows)
        if window.last_key is not None:
            self.state = replace(self.state, last_key=window.last_key)
        self._read_chunk()
        return records

    # -- chunks -----------------------------------------------------------------------------

    def _read_chunk(self) -> None:
        """Open a window, read the next non-empty chunk (moving past finished tables), close it."""
        if self.state is None:
            return
        chunk_id = str(uuid.uuid4())
        opened_ns = self.clock()
        self._write_open(chunk_id, opened_ns)
        window: Window | None = None
        while self.state is not None:
            table = self._current_table()
            if table is None:
                self._next_table()
                continue
            if self.state.maximum_key is None:
                maximum = self._maximum_key(table)
                if maximum is None:
                    self._next_table()
                    continue
                self.state = replace(self.state, maximum_key=maximum)
            rows = self._chunk(table)
            if not rows:
                self._next_table()
                continue
            keyed = {table.key_of(row): row for row in rows}
            window = Window(chunk_id, table, keyed, table.key_of(rows[-1]))
            break
        self.window = window
        # Tests change rows here: after the chunk's read, before its close row.
        faults.reached("cdc.incremental_chunk")
        self._write_close(chunk_id, opened_ns)
        if window is not None:
            self.stats.chunks += 1

    def _current_table(self) -> CapturedTable | None:
        assert self.state is not None
        database, _, name = self.state.current.table.partition(".")
        with self.connection.cursor() as cursor:
            try:
                schema = read_table_schema(cursor, database, name)
            except TableNotFound:
                log.warning("incremental snapshot: table %s does not exist; skipped", self.state.current.table)
                return None
        table = self.shapes.captured(schema)
        if not table.schema.primary_key:
            log.warning("incremental snapshot: table %s has no primary key; skipped (as Debezium)", table.name)
            return None
        return table

    def _next_table(self) -> None:
        assert self.state is not None
        self.stats.tables_done.append(self.state.current.table)
        self.state = self.state.next_table()

    def _condition(self) -> str:
        assert self.state is not None
        condition = self.state.current.condition
        return f" AND ({condition})" if condition else ""

    def _maximum_key(self, table: CapturedTable) -> Key | None:
        where = self._condition().removeprefix(" AND ")
        sql = f"SELECT {table.select_sql()} FROM {table.from_sql()}" + (f" WHERE {where}" if where else "")
        sql += f" ORDER BY {table.order_sql(descending=True)} LIMIT 1"
        with self.connection.cursor() as cursor:
            cursor.execute(sql)  # no parameters: a condition's own % stays as written
            found = cursor.fetchone()
        return None if found is None else table.key_of(select_row_converter(table.schema)(found))

    def _chunk(self, table: CapturedTable) -> list[Row]:
        assert self.state is not None and self.state.maximum_key is not None
        conditions, params = [], []
        if self.state.last_key is not None:
            after, after_params = table.after_key_sql(self.state.last_key)
            conditions.append(f"({after})")
            params += after_params
        upto, upto_params = table.up_to_key_sql(self.state.maximum_key)
        conditions.append(f"({upto})")
        params += upto_params
        convert = select_row_converter(table.schema)
        with self.connection.cursor() as cursor:
            # Keys are bound; the condition is the signal's own SQL, appended after binding so its % stays.
            where = " AND ".join(conditions)
            bound = cursor.mogrify(f"SELECT {table.select_sql()} FROM {table.from_sql()} WHERE {where}", params)
            limit = self.config.incremental_snapshot_chunk_size
            cursor.execute(f"{bound}{self._condition()} ORDER BY {table.order_sql()} LIMIT {limit}")
            return [convert(row) for row in cursor.fetchall()]

    # -- the window rows --------------------------------------------------------------------

    def _signal_sql(self) -> str:
        assert self.signal_table is not None
        return f"{quote(self.signal_table[0])}.{quote(self.signal_table[1])}"

    def _write_open(self, chunk_id: str, opened_ns: int) -> None:
        data = '{"openWindowTimestamp": "%s"}' % _instant(opened_ns)  # noqa: UP031 - Debezium's exact text
        self._execute(f"INSERT INTO {self._signal_sql()} VALUES (%s, %s, %s)", (f"{chunk_id}-open", WINDOW_OPEN, data))

    def _write_close(self, chunk_id: str, opened_ns: int) -> None:
        if self.config.watermarking_strategy is WatermarkStrategy.INSERT_DELETE:
            self._execute(f"DELETE FROM {self._signal_sql()} WHERE id = %s", (f"{chunk_id}-open",))
            return
        data = '{"openWindowTimestamp": "%s", "closeWindowTimestamp": "%s"}' % (  # noqa: UP031
            _instant(opened_ns),
            _instant(self.clock()),
        )
        self._execute(
            f"INSERT INTO {self._signal_sql()} VALUES (%s, %s, %s)", (f"{chunk_id}-close", WINDOW_CLOSE, data)
        )

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        if self.signal_table is None:
            raise SourceError(
                f"connector {self.config.name!r}: an incremental snapshot needs signal.data.collection "
                "(its windows are written to that table)"
            )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
        self.wrote = True
