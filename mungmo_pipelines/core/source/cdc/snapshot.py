"""The initial snapshot: every captured table read in one consistent view, at a known binlog position.

``START TRANSACTION WITH CONSISTENT SNAPSHOT`` gives a read view and, in the session status
``binlog_snapshot_file``/``binlog_snapshot_position``, the binlog position it corresponds to;
``BINLOG_GTID_POS`` turns that into the GTID state. No lock is taken (Debezium holds the global
read lock for that, 1.3 s here). Streaming then starts at exactly that position, so every change
committed after the view is streamed and none before it is: nothing lost or repeated at the seam.

Tables are read one after another, in Debezium's order (database, then name), each in
primary-key order through a server-side cursor (``snapshot.fetch.size`` rows at a time), so
memory stays bounded whatever the table's size. One connection reads everything: MariaDB cannot
share a read view between connections (there is no ``SET TRANSACTION SNAPSHOT``), so reading
ranges in parallel would need several views and lose the single position.

A run that stops mid-snapshot leaves the last committed row in its offset (:class:`SnapshotProgress`);
the next run opens a new view and reads on after that row, and streams from the ORIGINAL position
(docs/cdc.md, "Crash during a snapshot").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.cursors

from mungmo_pipelines.core.connect.debezium import DebeziumRecord, SourceInfo, snapshot_marker
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.faults import reached
from mungmo_pipelines.core.mariadb.binlog import BinlogError, BinlogPosition, GtidState
from mungmo_pipelines.core.mariadb.binlog.checks import head_position
from mungmo_pipelines.core.mariadb.catalog import TableNotFound, read_table_schema
from mungmo_pipelines.core.mariadb.session import fetch_one
from mungmo_pipelines.core.source.cdc.offsets import SnapshotProgress
from mungmo_pipelines.core.source.cdc.tables import (
    CapturedTable,
    Key,
    Row,
    TableShapes,
    qualified,
    select_row_converter,
)

log = logging.getLogger(__name__)

ER_TABLE_DEF_CHANGED = 1412


@dataclass
class TableProgress:
    """Rows read of one table, against ``information_schema.TABLES.TABLE_ROWS`` (an estimate)."""

    table: str
    estimate: int
    rows: int = 0


@dataclass
class SnapshotStats:
    tables: list[TableProgress] = field(default_factory=list)
    position: BinlogPosition | None = None
    resumed_from: SnapshotProgress | None = None
    done: bool = False

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def estimate(self) -> int:
        return sum(max(t.estimate, t.rows) for t in self.tables)


GtidLocator = Callable[[BinlogPosition], GtidState]


def open_consistent_snapshot(connection: pymysql.Connection, locate: GtidLocator) -> BinlogPosition:
    """Starts a consistent-snapshot transaction on ``connection``; returns its binlog position.

    The GTID state there is ``BINLOG_GTID_POS(file, pos)``, which reads the binlog file from its
    start and answers NULL where no event starts (the very end of the binlog: then the state is
    the head's, read together with the same position) and past any event larger than the session's
    ``max_allowed_packet`` (MariaDB stops reading there: seen after a 17 MB event). Then ``locate``
    finds it by reading the file with the binlog reader.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cursor.execute("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        status = {str(name).lower(): value for name, value in cursor.fetchall()}
        file, pos = str(status.get("binlog_snapshot_file") or ""), int(status.get("binlog_snapshot_position") or 0)
        if not file:
            raise SourceError("the server reports no binlog position for the snapshot: is log_bin on?")
        cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        (gtids,) = fetch_one(cursor)
    if gtids is not None:
        return BinlogPosition(GtidState.parse(gtids), file, pos)
    try:
        head = head_position(connection)
    except BinlogError:  # writers keep moving it: the file is read below
        head = BinlogPosition(GtidState())
    if (head.file, head.pos) == (file, pos):
        return BinlogPosition(head.gtids, file, pos)
    log.info("BINLOG_GTID_POS has no answer for %s:%s; reading the binlog file for its GTID state", file, pos)
    return BinlogPosition(locate(BinlogPosition(GtidState(), file, pos)), file, pos)


class InitialSnapshot:
    """Reads the tables of one snapshot as Debezium ``op=r`` records, remembering how far it got."""

    def __init__(
        self,
        connector: str,
        connection: pymysql.Connection,
        tables: list[tuple[str, str]],
        shapes: TableShapes,
        fetch_size: int,
        locate: GtidLocator,
        resume: SnapshotProgress | None = None,
    ) -> None:
        self.connector = connector
        self.connection = connection
        self.shapes = shapes
        self.fetch_size = fetch_size
        self.locate = locate
        self.resume = resume
        if resume is not None:
            database, _, name = resume.table.partition(".")
            tables = [t for t in tables if t >= (database, name)]
        self.tables = tables
        self.stats = SnapshotStats(resumed_from=resume)
        # The table and row of the last record handed over (what a Kafka transaction may commit up to).
        self._table: CapturedTable | None = None
        self._row: Row | None = None
        self.position = BinlogPosition(GtidState())
        self.ts_ns = 0

    @property
    def progress(self) -> SnapshotProgress | None:
        """The last row whose record was handed over, as the offset keeps it (built only for a commit)."""
        table, row = self._table, self._row
        if table is None or row is None:
            return self.resume
        return SnapshotProgress(table.name, table.key_of(row) if table.schema.primary_key else None)

    def open(self) -> BinlogPosition:
        self.position = open_consistent_snapshot(self.connection, self.locate)
        self.ts_ns = int(time.time()) * 1_000_000_000  # Debezium's snapshot time: whole seconds
        self.stats.position = self.position
        estimates = self._estimates()
        self.stats.tables = [TableProgress(qualified(*t), estimates.get(t, 0)) for t in self.tables]
        log.info(
            "connector %r: snapshot of %d table(s) at %s (GTID %s)%s",
            self.connector,
            len(self.tables),
            f"{self.position.file}:{self.position.pos}",
            self.position.gtids,
            f", resuming after {self.resume.table} {self.resume.after}" if self.resume else "",
        )
        return self.position

    def _estimates(self) -> dict[tuple[str, str], int]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_TYPE = 'BASE TABLE'"
            )
            return {(str(db), str(name)): int(rows or 0) for db, name, rows in cursor.fetchall()}

    def records(
        self, on_table: Callable[[CapturedTable], None], tick: Callable[[], None] = lambda: None
    ) -> Iterator[DebeziumRecord]:
        """Every table's rows as records; ``on_table`` is called before a table's first record and
        ``tick`` every 1,024 rows (progress reports)."""
        base = SourceInfo(ts_ns=self.ts_ns, snapshot="true", file=self.position.file or "", pos=self.position.pos or 0)
        last_index = len(self.tables) - 1
        first_of_snapshot = self.resume is None
        for index, ((database, name), progress) in enumerate(zip(self.tables, self.stats.tables, strict=True)):
            table = self._captured(database, name)
            on_table(table)
            after = None
            if self.resume is not None and progress.table == self.resume.table and table.schema.primary_key:
                after = self.resume.after
            read = table.encoder.read
            first = True
            rows = 0
            for row, last in self._rows(table, after):
                if first or last:
                    marker = snapshot_marker(index == 0 and first_of_snapshot, index == last_index, first, last)
                    yield read(row, dataclasses.replace(base, snapshot=marker))[0]
                    first = False
                else:
                    yield read(row, base)[0]
                # Runs once the record above is handed over: a Kafka transaction may end after it.
                self._table, self._row = table, row
                reached("cdc.snapshot_row")
                rows += 1
                if not rows & 1023:
                    progress.rows = rows
                    tick()
            progress.rows = rows
        with self.connection.cursor() as cursor:
            cursor.execute("COMMIT")
        self.stats.done = True

    def _captured(self, database: str, name: str) -> CapturedTable:
        with self.connection.cursor() as cursor:
            try:
                schema = read_table_schema(cursor, database, name)
            except TableNotFound:
                raise SourceError(
                    f"connector {self.connector!r}: table {database}.{name} was dropped during the snapshot; "
                    "run again (the snapshot resumes where it stopped)"
                ) from None
        return self.shapes.captured(schema)

    def _rows(self, table: CapturedTable, after: Key | None) -> Iterator[tuple[Row, bool]]:
        """The table's rows in the value contract, each with whether it is the last."""
        sql = f"SELECT {table.select_sql()} FROM {table.from_sql()}"
        params: list[Any] = []
        if after is not None:
            condition, params = table.after_key_sql(after)
            sql += f" WHERE {condition}"
        if table.schema.primary_key:
            sql += f" ORDER BY {table.order_sql()}"
        convert = select_row_converter(table.schema)
        cursor = self.connection.cursor(pymysql.cursors.SSCursor)
        try:
            try:
                cursor.execute(sql, params)
            except pymysql.err.MySQLError as error:
                if error.args and error.args[0] == ER_TABLE_DEF_CHANGED:
                    raise SourceError(
                        f"connector {self.connector!r}: table {table.name} was created or altered after the snapshot "
                        "began, so its rows at the snapshot's position cannot be read; run again (the snapshot "
                        "resumes at this table with a new view)"
                    ) from error
                raise
            fetch, size = cursor.fetchmany, self.fetch_size
            previous = None
            while batch := fetch(size):
                for row in batch:
                    if previous is not None:
                        yield previous, False
                    previous = convert(row)
            if previous is not None:
                yield previous, True
        finally:
            cursor.close()
