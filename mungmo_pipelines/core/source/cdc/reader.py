"""The binlog reader as a reader of the source runtime: Debezium's MariaDB connector, run by run.

One offset partition (``{"server": "<topic.prefix>"}``) per connector. A run:

1. checks the server (before the first run: every setting, grant and the server id; later: the
   settings, and that the stored position is still in the binlog);
2. decides from ``snapshot.mode`` and the stored offset whether to snapshot (:mod:`.snapshot`),
   resume a snapshot, or stream from the stored position, the head or the oldest binlog;
3. streams from the snapshot's position (or the stored one) until it has caught up with the
   binlog head it saw when streaming started, or, with ``mungmo.streaming.duration.ms``, keeps
   streaming while changes keep coming, up to that long.

Exactly once: a Kafka transaction may end only between source transactions
(:meth:`CdcRead.checkpoint` answers :data:`NO_CUT` inside one), and each commit carries the offset
right after the last whole source transaction, so after a crash anywhere the next run resumes by
GTID exactly after what a ``read_committed`` consumer saw. During a snapshot every row is a
possible cut, with the snapshot's progress in the offset.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysql.constants import FIELD_TYPE
from pymysql.converters import conversions, convert_date, convert_datetime

from mungmo_pipelines.core.config.debezium_source import TLS_OPTIONS, DebeziumSourceConfig, SnapshotMode
from mungmo_pipelines.core.connect.debezium import DebeziumRecord, SourceInfo, heartbeat_record, new_run_id
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.mariadb.binlog import (
    BinlogPosition,
    BinlogReader,
    Gtid,
    GtidState,
    Heartbeat,
    ReplicaSettings,
    RowChange,
    Statement,
    TransactionBegin,
    TransactionCommit,
    wire,
)
from mungmo_pipelines.core.mariadb.binlog.checks import (
    ServerCheckFailed,
    binary_logs,
    bytes_between,
    check_binary_log,
    check_binlog_format,
    check_position_available,
    check_row_image,
    check_row_metadata,
    check_server,
    head_position,
)
from mungmo_pipelines.core.mariadb.binlog.replica import open_dump
from mungmo_pipelines.core.mariadb.binlog.schema import SchemaCompleter
from mungmo_pipelines.core.mariadb.columns import TableSchema
from mungmo_pipelines.core.mariadb.connection import JdbcConnection
from mungmo_pipelines.core.mariadb.session import fetch_one
from mungmo_pipelines.core.source.cdc.incremental import IncrementalSnapshots, IncrementalStats
from mungmo_pipelines.core.source.cdc.offsets import CdcOffset, SnapshotProgress, server_partition
from mungmo_pipelines.core.source.cdc.snapshot import InitialSnapshot, SnapshotStats
from mungmo_pipelines.core.source.cdc.tables import CapturedTable, TableShapes, list_captured_tables
from mungmo_pipelines.core.source.offsets import SourceOffsetStore
from mungmo_pipelines.core.source.runtime import NO_CUT, Checkpoint, Record, SourceRun, SourceRuntime, database_errors

log = logging.getLogger(__name__)

_OPERATION_CODES = {"insert": "c", "update": "u", "delete": "d"}


@dataclass(frozen=True)
class SnapshotRequest:
    """An incremental snapshot to start without a signal row: tables (names or regular expressions
    over ``db.table``) and per-table conditions (SQL ``WHERE`` text)."""

    tables: tuple[str, ...]
    conditions: dict[str, str] = field(default_factory=dict)
    correlation_id: str = "mungmo-request"


@dataclass
class CdcStats:
    """What one run did, for the run's metadata."""

    events: Counter[str] = field(default_factory=Counter)  # c, u, d, r (snapshot), r_incremental, tombstones
    tables: dict[str, Counter[str]] = field(default_factory=dict)
    transactions: int = 0
    ddl: int = 0
    heartbeats: int = 0
    position_before: dict[str, Any] | None = None
    position_after: dict[str, Any] | None = None
    head: BinlogPosition | None = None
    bytes_behind: int | None = None
    newest_event: dt.datetime | None = None
    seconds_behind: float | None = None
    started_with: str = ""
    stopped_because: str = ""
    snapshot: SnapshotStats | None = None
    incremental: IncrementalStats = field(default_factory=IncrementalStats)

    def count(self, table: str, op: str, records: int = 1) -> None:
        self.events[op] += records
        per_table = self.tables.get(table)
        if per_table is None:
            per_table = self.tables[table] = Counter()
        per_table[op] += records


def gtid_state_at(replica: ReplicaSettings, position: BinlogPosition) -> GtidState:
    """The GTID state at ``position`` (a transaction boundary, file/pos), for where ``BINLOG_GTID_POS``
    has no answer (snapshot.py): the state at the start of its binlog file, advanced by every GTID
    event up to it, from a dump of the file with nothing decoded but event headers and GTIDs (the
    row reader would refuse other sessions' statement-logged changes on the way)."""
    file, pos = position.file or "", position.pos or 0
    control = replica.connect()
    try:
        with control.cursor() as cursor:
            cursor.execute("SELECT BINLOG_GTID_POS(%s, 4), @@global.binlog_checksum", (file,))
            start, checksum = fetch_one(cursor)
    finally:
        control.close()
    state = GtidState.parse(start)
    dump = open_dump(
        replica, BinlogPosition(GtidState(), file, 4), by_gtid=False, blocking=False, checksum=str(checksum)
    )
    body = 1 + wire.HEADER_SIZE
    ended_at = 0
    try:
        while (packet := dump.read()) is not None:
            _, kind, server_id, size, next_pos, _ = wire.HEADER.unpack_from(packet, 1)
            if next_pos == 0:
                continue  # the dump's own artificial events, at no position
            if next_pos - size >= pos:
                if next_pos - size == pos:
                    return state
                break
            if kind == wire.GTID:
                sequence = int.from_bytes(packet[body : body + 8], "little")
                domain = int.from_bytes(packet[body + 8 : body + 12], "little")
                state = state.advance(Gtid(domain, server_id, sequence))
            ended_at = next_pos
            if kind == wire.ROTATE:
                break  # the file's last event
        if ended_at == pos:
            return state  # the end of the binlog, where no event starts yet
    finally:
        dump.close()
    raise LookupError(f"{file}:{pos} is at no event of its binlog file")


def binlog_head(connection: pymysql.Connection) -> BinlogPosition:
    """The binlog head; tried longer than the checks' default, as writers may commit between every
    read of a busy server's file/pos and GTID state."""
    return head_position(connection, attempts=200)


def binlog_order(position: BinlogPosition) -> tuple[int, int]:
    """``(file number, pos)``: binlog files are ``<base>.<number>``, numbered in order."""
    suffix = (position.file or "").rpartition(".")[2]
    return (int(suffix) if suffix.isdigit() else -1, position.pos or 0)


def gtid_reached(state: GtidState, target: GtidState) -> bool:
    """Whether ``state`` has every transaction ``target`` has, in every domain."""
    for wanted in target.gtids:
        ours = state.domain(wanted.domain)
        if ours is None or ours.sequence < wanted.sequence:
            return False
    return True


def _datetime(text: str) -> dt.datetime | str:
    """PyMySQL's DATETIME conversion at C speed (``fromisoformat``; its own parser for the rest: zero
    and invalid dates come back as text either way). A fifth of a snapshot row's decoding here."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        result: dt.datetime | str = convert_datetime(text)
        return result


def _date(text: str) -> dt.date | str:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        result: dt.date | str = convert_date(text)
        return result


_CONVERSIONS: dict[int | type[Any], Callable[[Any], str] | Callable[[str], Any]] = {
    **conversions,
    FIELD_TYPE.DATETIME: _datetime,
    FIELD_TYPE.TIMESTAMP: _datetime,
    FIELD_TYPE.DATE: _date,
}


def connect(
    connection: JdbcConnection, config: DebeziumSourceConfig, timeout_s: float | None = None
) -> pymysql.Connection:
    """A plain connection (autocommit, session time zone UTC) for snapshots, schemas and signals."""
    conn = pymysql.connect(
        conv=_CONVERSIONS,
        host=connection.host,
        port=connection.port,
        user=connection.user,
        password=connection.password.reveal() if connection.password else "",
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=timeout_s or config.connect_timeout_ms / 1000,
        **connection.tls.pymysql_arguments(),
    )
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION time_zone = '+00:00', SESSION net_write_timeout = 600")
        for statement in filter(None, (s.strip() for s in config.initial_statements.split(";"))):
            cursor.execute(statement)
    return conn


class CdcRead:
    """The connector's one partition: snapshot and/or stream, with the offsets between records."""

    label = "binlog"
    held_back = ""

    def __init__(
        self,
        config: DebeziumSourceConfig,
        connection: JdbcConnection,
        kafka: KafkaSettings,
        stored: dict[str, Any] | None,
        requests: Sequence[SnapshotRequest] = (),
        progress: Callable[[CdcStats], None] | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        self.kafka = kafka
        self.stored = stored
        self.requests = requests
        self.report = progress
        self.topic = config.topic_prefix
        self.partition = server_partition(config.topic_prefix)
        self.stats = CdcStats(position_before=stored)
        self.run_id = new_run_id()
        self.shapes = TableShapes(config, self.run_id)
        self._topics: set[str] = set()
        self._known_topics: set[str] | None = None
        # Where the records handed over so far lead: the offset a commit may store.
        self._position: BinlogPosition | None = None
        self._ts_sec = 0
        self._server_id: int | None = None
        self._between = True
        self._commit: TransactionCommit | None = None  # the last source transaction's end, when newer
        self._snapshot: InitialSnapshot | None = None
        self._incremental: IncrementalSnapshots | None = None
        self._start: CdcOffset | None = None
        self._reported = 0.0

    # -- the runtime's side -----------------------------------------------------------------

    def _settle(self) -> None:
        """The last commit's position, built only when needed (a Kafka commit, the run's end)."""
        commit = self._commit
        if commit is not None:
            self._position, self._ts_sec, self._server_id = commit.position, commit.timestamp, commit.server_id
            self._commit = None

    def _offset(self) -> CdcOffset | None:
        self._settle()
        if self._position is None:
            return None
        snapshot = self._snapshot
        if snapshot is not None and not snapshot.stats.done:
            return CdcOffset(self._position, self._ts_sec, None, True, snapshot.progress)
        incremental = self._incremental.state if self._incremental is not None else None
        return CdcOffset(self._position, self._ts_sec, self._server_id, False, None, incremental)

    def checkpoint(self) -> Checkpoint:
        if not self._between:
            return NO_CUT
        offset = self._offset()
        return None if offset is None else offset.to_value()

    def offset(self) -> dict[str, Any] | None:
        offset = self._offset()
        if offset is None:
            return self.stored
        if self._start is not None and offset == self._start and self.stored is not None:
            return self.stored  # nothing moved: keep the stored value as it is
        value = offset.to_value()
        self.stats.position_after = value
        return value

    def written_topics(self) -> Iterable[str]:
        return self._topics

    # -- records ----------------------------------------------------------------------------

    def records(self) -> Iterator[Record | None]:
        connection = self.connection
        server = f"server {connection.host}:{connection.port}"
        with database_errors(self.config.name, server, TLS_OPTIONS):
            yield from self._records()

    def _records(self) -> Iterator[Record | None]:
        config = self.config
        stored = CdcOffset.parse(self.stored) if self.stored is not None else None
        self._start = stored
        control = connect(self.connection, config)
        try:
            start = yield from self._begin(control, stored)
            if start is None:
                return
            self._incremental = IncrementalSnapshots(
                config,
                control,
                self.shapes,
                start.incremental,
                lambda: list_captured_tables_of(control, config),
            )
            self.stats.incremental = self._incremental.stats
            if config.streaming_delay_ms:
                time.sleep(config.streaming_delay_ms / 1000)
            yield from self._stream(control, start)
            self._lag(control)
        finally:
            control.close()

    def _begin(
        self, control: pymysql.Connection, stored: CdcOffset | None
    ) -> Generator[Record | None, None, CdcOffset | None]:
        """Checks the server, snapshots when ``snapshot.mode`` says so; returns where streaming starts
        (``None``: no streaming this run)."""
        config = self.config
        mode = config.snapshot_mode
        if stored is None:
            for note in self._check_server(control):
                log.info("connector %r: %s", config.name, note)
        else:
            for check in (check_binary_log, check_binlog_format, check_row_image, check_row_metadata):
                check(control)

        resume: SnapshotProgress | None = None
        if stored is None:
            if not mode.copies_data:
                start = self._first_position(control, mode)
                self.stats.started_with = "streaming from " + (
                    "the oldest binlog" if mode is SnapshotMode.NEVER else "now"
                )
                self._position = start
                return CdcOffset(start)
            self.stats.started_with = "snapshot"
        elif stored.snapshot_running and mode.copies_data:
            if stored.progress is not None and self._available(control, stored.position):
                resume = stored.progress
                self.stats.started_with = f"snapshot resumed after {resume.table} {resume.after}"
            else:
                self.stats.started_with = self.stats.started_with or "snapshot again (the stored one did not finish)"
        elif mode is SnapshotMode.ALWAYS:
            self.stats.started_with = "snapshot (snapshot.mode=always)"
        elif mode is SnapshotMode.INITIAL_ONLY and not stored.snapshot_running:
            self.stats.started_with = "nothing: snapshot.mode=initial_only and the snapshot is done"
            self._position, self._ts_sec, self._server_id = stored.position, stored.ts_sec, stored.server_id
            return None
        elif self._available(control, stored.position):
            self.stats.started_with = "streaming from the stored offset"
            self._position, self._ts_sec, self._server_id = stored.position, stored.ts_sec, stored.server_id
            return stored

        if config.snapshot_delay_ms:
            time.sleep(config.snapshot_delay_ms / 1000)
        stream_from = stored.position if resume is not None and stored is not None else None
        position = yield from self._run_snapshot(control, stream_from, resume)
        return None if mode is SnapshotMode.INITIAL_ONLY else CdcOffset(position)

    def _check_server(self, control: pymysql.Connection, wait_s: float = 12.0) -> list[str]:
        """Every check before the first run. A replica registered under our server id may be this
        connector's own dump of a run that just ended: the server drops it at the next heartbeat it
        fails to send (5 s at most here), so the check is repeated that long before it counts."""
        captured = list_captured_tables_of(control, self.config)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return check_server(control, self.config.server_id, None, captured)
            except ServerCheckFailed as failed:
                if "connected replica" not in str(failed) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _available(self, control: pymysql.Connection, position: BinlogPosition) -> bool:
        """Whether the binlog still holds ``position``; ``when_needed`` snapshots again when not,
        every other mode stops with the setting to change."""
        try:
            check_position_available(control, position)
            return True
        except ServerCheckFailed as failed:
            if self.config.snapshot_mode is SnapshotMode.WHEN_NEEDED:
                log.warning(
                    "connector %r: %s; snapshot.mode=when_needed takes a new snapshot", self.config.name, failed
                )
                self.stats.started_with = "snapshot: the stored position was purged (when_needed)"
                return False
            raise ServerCheckFailed(
                failed.setting,
                f"connector {self.config.name!r}: the stored offset {position} is no longer in the binlog "
                f"({str(failed).split('. Fix:')[0]})",
                "set snapshot.mode=when_needed to snapshot again, or delete the connector's offset; keep binlogs "
                "longer (binlog_expire_logs_seconds) so runs find their position",
            ) from failed

    def _first_position(self, control: pymysql.Connection, mode: SnapshotMode) -> BinlogPosition:
        if mode is not SnapshotMode.NEVER:
            return binlog_head(control)
        first = binary_logs(control)[0].name
        with control.cursor() as cursor:
            cursor.execute("SELECT BINLOG_GTID_POS(%s, 4)", (first,))
            (state,) = fetch_one(cursor)
        return BinlogPosition(GtidState.parse(state), first, 4)

    def _run_snapshot(
        self, control: pymysql.Connection, stream_from: BinlogPosition | None, resume: SnapshotProgress | None
    ) -> Generator[Record | None, None, BinlogPosition]:
        """The initial snapshot's records; returns the position streaming starts from."""
        config = self.config
        tables = [t for t in list_captured_tables_of(control, config) if config.snapshots(*t)]
        reading = connect(self.connection, config)
        try:
            snapshot = InitialSnapshot(
                config.name, reading, tables, self.shapes, config.snapshot_fetch_size, self._gtid_state_at, resume
            )
            position = snapshot.open()
            stream_from = stream_from or position
            self.stats.snapshot = snapshot.stats
            self._snapshot = snapshot
            self._position, self._ts_sec, self._server_id = stream_from, snapshot.ts_ns // 1_000_000_000, None
            self._between = True
            yield from snapshot.records(self._snapshot_table, self._tick)
            for table in snapshot.stats.tables:
                self.stats.count(self.config.topic_for(table.table), "r", table.rows)
            log.info("connector %r: snapshot done, %d rows", config.name, snapshot.stats.rows)
            return stream_from
        finally:
            reading.close()

    # -- streaming --------------------------------------------------------------------------

    def _gtid_state_at(self, position: BinlogPosition) -> GtidState:
        try:
            return gtid_state_at(self._replica(), position)
        except LookupError as missing:
            raise SourceError(f"connector {self.config.name!r}: {missing}") from None

    def _snapshot_table(self, table: CapturedTable) -> None:
        self._ensure_topic(table.topic)
        self._topics.add(table.topic)
        self._tick()

    def _tick(self) -> None:
        """Progress for the run's log: at most every 5 s."""
        if self.report is not None and time.monotonic() - self._reported >= 5:
            self._reported = time.monotonic()
            self.report(self.stats)

    def _replica(self) -> ReplicaSettings:
        config = self.config
        # A run that keeps streaming commits its open Kafka transaction at the first event or server
        # heartbeat after it is due: with the heartbeat at half the transaction interval, a change
        # written just before the binlog goes quiet is visible ~1-1.5 s later, not a 5 s heartbeat later.
        follow_heartbeat = max(0.1, min(5.0, config.run_idle_ms / 2000, config.transaction_interval_ms / 2000))
        return ReplicaSettings.of(
            self.connection,
            config.server_id,
            heartbeat_seconds=follow_heartbeat if config.run_duration_ms else 1.0,
            connect_timeout=config.connect_timeout_ms / 1000,
        )

    def _stream(self, control: pymysql.Connection, start: CdcOffset) -> Iterator[Record | None]:
        config = self.config
        incremental = self._incremental
        assert incremental is not None
        head = binlog_head(control)
        self.stats.head = head
        target = head.gtids
        follow_s = config.run_duration_ms / 1000
        idle_s = config.run_idle_ms / 1000
        started = time.monotonic()
        incremental.resume()
        for request in self.requests:
            incremental.request(request.tables, request.conditions, request.correlation_id)
        if incremental.wrote:
            incremental.wrote, target = False, binlog_head(control).gtids
        idle = not incremental.running and incremental.window is None and not follow_s
        if idle and gtid_reached(start.position.gtids, target):
            self.stats.stopped_because = "already at the binlog head"
            return

        completer = SchemaCompleter(control)
        captures = config.captures
        signal = config.signal_table
        skipped = config.skipped_operations
        skip_unchanged = config.skip_messages_without_change
        include_query = config.include_query
        count = self.stats.count
        by_table: dict[int, tuple[TableSchema, CapturedTable]] = {}
        heartbeat_s = config.heartbeat_interval_ms / 1000
        last_heartbeat = time.monotonic()
        last_change = time.monotonic()
        transaction_id = None
        gtid_text: str | None = None
        rows_in_transaction = 0
        state = start.position.gtids
        reader = BinlogReader(self._replica(), start.position, include=lambda db, table: captures(db, table))
        try:
            for change in reader:
                kind = type(change)
                if kind is RowChange:
                    assert isinstance(change, RowChange)
                    raw = change.table
                    entry = by_table.get(id(raw))
                    if entry is None:
                        entry = (raw, self._captured(completer.complete(raw)))
                        if len(by_table) > TableShapes.CACHE_LIMIT:
                            by_table.clear()
                        by_table[id(raw)] = entry
                    table = entry[1]
                    self._between = False
                    src = change.source
                    if src.transaction is not transaction_id:
                        transaction_id, gtid_text = src.transaction, str(src.transaction.gtid)
                    source = SourceInfo(
                        src.timestamp * 1_000_000_000,
                        "false",
                        src.server_id,
                        gtid_text,
                        src.file,
                        src.pos,
                        change.row,
                        None,
                        src.query if include_query else None,
                    )
                    operation = change.operation
                    op = _OPERATION_CODES[operation]
                    records: list[DebeziumRecord] = []
                    if op not in skipped:
                        project = table.project
                        encoder = table.encoder
                        if operation == "insert":
                            records = encoder.create(project(change.after), source)  # type: ignore[arg-type]
                        elif operation == "update":
                            before, after = project(change.before), project(change.after)  # type: ignore[arg-type]
                            if not (skip_unchanged and before == after):
                                records = encoder.update(before, after, source)
                        else:
                            records = encoder.delete(project(change.before), source)  # type: ignore[arg-type]
                    if incremental.window is not None:
                        incremental.observe(change, table)
                    if records:
                        rows_in_transaction += 1
                        count(table.topic, op)
                        for record in records:
                            yield record
                    if signal is not None and (raw.database, raw.name) == signal:
                        window_rows = incremental.on_signal(change, source)
                        if incremental.wrote:  # the windows' own rows: read up to them too
                            incremental.wrote, target = False, binlog_head(control).gtids
                        if window_rows:
                            self._ensure_topic(window_rows[0].topic)
                            self._topics.add(window_rows[0].topic)
                            count(window_rows[0].topic, "r_incremental", len(window_rows))
                            for record in window_rows:
                                yield record
                    last_change = time.monotonic()
                elif kind is TransactionCommit:
                    assert isinstance(change, TransactionCommit)
                    state = change.state_after
                    self._commit = change
                    self._between = True
                    if rows_in_transaction:
                        self.stats.transactions += 1
                        rows_in_transaction = 0
                    if heartbeat_s and time.monotonic() - last_heartbeat >= heartbeat_s:
                        yield self._heartbeat(control)
                        last_heartbeat = time.monotonic()
                    yield None
                    if self._done(state, target, started, last_change, follow_s, idle_s):
                        break
                elif kind is TransactionBegin:
                    self._between = False
                elif kind is Statement:
                    assert isinstance(change, Statement)
                    self._between = False
                    self.stats.ddl += 1
                    incremental.on_statement(change)
                    if incremental.wrote:
                        incremental.wrote, target = False, binlog_head(control).gtids
                elif kind is Heartbeat:
                    assert isinstance(change, Heartbeat)
                    if heartbeat_s and time.monotonic() - last_heartbeat >= heartbeat_s:
                        yield self._heartbeat(control)
                        last_heartbeat = time.monotonic()
                    yield None
                    # Everything up to the server's position was sent: at or past the head, caught up.
                    at_head = binlog_order(change.position) >= binlog_order(head)
                    if self._done(target if at_head else state, target, started, last_change, follow_s, idle_s):
                        break
        finally:
            reader.close()

    def _done(
        self, state: GtidState, target: GtidState, started: float, last_change: float, follow_s: float, idle_s: float
    ) -> bool:
        incremental = self._incremental
        if incremental is not None and (incremental.running or incremental.window is not None):
            return False
        now = time.monotonic()
        if not follow_s:
            if gtid_reached(state, target):
                self.stats.stopped_because = "caught up with the binlog head seen at the start"
                return True
            return False
        if now - started >= follow_s:
            self.stats.stopped_because = f"mungmo.streaming.duration.ms ({self.config.run_duration_ms}) reached"
            return True
        if gtid_reached(state, target) and now - last_change >= idle_s:
            self.stats.stopped_because = f"no change for mungmo.streaming.idle.ms ({self.config.run_idle_ms})"
            return True
        return False

    def _heartbeat(self, control: pymysql.Connection) -> DebeziumRecord:
        config = self.config
        if config.heartbeat_action_query:
            with control.cursor() as cursor:
                cursor.execute(config.heartbeat_action_query)
        record = heartbeat_record(config.topic_prefix, time.time_ns() // 1_000_000)._replace(
            topic=config.heartbeat_topic
        )
        self._ensure_topic(record.topic)
        self._topics.add(record.topic)
        self.stats.heartbeats += 1
        return record

    def _captured(self, schema: TableSchema) -> CapturedTable:
        table = self.shapes.captured(schema)
        self._ensure_topic(table.topic)
        self._topics.add(table.topic)
        return table

    def _ensure_topic(self, topic: str) -> None:
        """Creates a data topic once per run when it does not exist (Debezium relies on auto-creation
        or topic.creation.*; here it is the connector's partitions and replication factor)."""
        if self._known_topics is None:
            admin = self.kafka.admin()
            try:
                self._known_topics = set(admin.list_topics())
            finally:
                admin.close()
        if topic not in self._known_topics:
            ensure_topic(self.kafka, topic, self.config.topic_partitions, self.config.topic_replication_factor)
            self._known_topics.add(topic)

    def _lag(self, control: pymysql.Connection) -> None:
        self._settle()
        position = self._position
        if position is None or position.file is None:
            return
        try:
            head = binlog_head(control)
            self.stats.bytes_behind = bytes_between(position, head, binary_logs(control))
        except (ValueError, pymysql.MySQLError) as err:
            log.info("connector %r: lag not measured (%s)", self.config.name, err)
        if self._ts_sec:
            self.stats.newest_event = dt.datetime.fromtimestamp(self._ts_sec, dt.UTC)
            self.stats.seconds_behind = max(0.0, time.time() - self._ts_sec)


def list_captured_tables_of(control: pymysql.Connection, config: DebeziumSourceConfig) -> list[tuple[str, str]]:
    with control.cursor() as cursor:
        return list_captured_tables(cursor, config)


def captured_tables_now(config: DebeziumSourceConfig, server_url: str | None = None) -> list[tuple[str, str]]:
    """The tables ``config`` captures on its server now (``server_url``: ``MUNGMO_MARIADB_URL``'s override)."""
    control = connect(config.connection.on_server(server_url), config, timeout_s=3)
    try:
        return list_captured_tables_of(control, config)
    finally:
        control.close()


class CdcReader:
    """Reads a Debezium MariaDB connector's binlog (one partition per connector)."""

    def __init__(
        self,
        config: DebeziumSourceConfig,
        connection: JdbcConnection,
        kafka: KafkaSettings,
        requests: Sequence[SnapshotRequest] = (),
        progress: Callable[[CdcStats], None] | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        self.kafka = kafka
        self.requests = requests
        self.progress = progress
        self.read: CdcRead | None = None

    def reads(self, stored: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[CdcRead]:
        partition = server_partition(self.config.topic_prefix)
        self.read = CdcRead(self.config, self.connection, self.kafka, stored(partition), self.requests, self.progress)
        yield self.read


@dataclass
class CdcRun:
    run: SourceRun
    stats: CdcStats


def run_cdc_source(
    config: DebeziumSourceConfig,
    connection: JdbcConnection,
    kafka: KafkaSettings,
    requests: Sequence[SnapshotRequest] = (),
    progress: Callable[[CdcStats], None] | None = None,
) -> CdcRun:
    """One run of a Debezium MariaDB connector: snapshot and/or stream, exactly once into Kafka.

    ``requests`` start incremental snapshots without a signal row (a job that re-sends chosen keys
    passes ``SnapshotRequest(("db.table",), {"db.table": "id IN (1, 2)"})``).
    """
    offsets = SourceOffsetStore(kafka, config.offsets_topic, config.topic_replication_factor)
    reader = CdcReader(config, connection, kafka, requests, progress)
    runtime = SourceRuntime(config.name, kafka, offsets, config.transactions, compression=config.compression)
    run = runtime.run(reader)
    if reader.read is None:
        raise SourceError(f"connector {config.name!r}: the run read nothing")
    return CdcRun(run, reader.read.stats)
