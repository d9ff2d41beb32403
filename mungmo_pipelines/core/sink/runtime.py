"""The sink: Kafka records into MariaDB tables, exactly once (Confluent's and Debezium's JDBC sink bodies).

A run drains its topics up to the end offsets seen when it starts, in batches of
``batch.size`` records. Each batch is one database transaction holding its rows (multi-row
INSERTs of literals the decoder already wrote) and the topic/partition offsets it covers
(``_connect_sink_offsets``), so after a crash at any point the next run resumes exactly after
the last committed batch: no duplicate, no gap, whatever ``insert.mode`` and ``pk.mode`` are.
The consumer group ``connect-<name>`` gets the same offsets afterwards so lag tools keep working.

Inside a batch:

* Table DDL (``auto.create``/``auto.evolve``) runs before the transaction opens; MariaDB
  commits on DDL and must not commit rows without their offsets.
* A write that fails on the data (too long, NOT NULL, duplicate key, out of range) is retried
  row by row inside a savepoint to isolate the bad record; with ``errors.tolerance=all`` it goes
  to the dead-letter topic and the good rows still land.
* Dead letters are produced and acknowledged before the commit that moves past them: a crash
  between the two can repeat a dead letter on the rerun, never lose one. Acknowledged ones are
  noted (``DeadLetterLedger``), so a batch done again after a failure does not send them again.
* Transient database errors (deadlock, lock wait timeout, lost connection) roll the batch back
  and retry it ``max.retries`` times, ``retry.backoff.ms`` apart, on a fresh connection.
* The session uses a strict ``sql_mode`` so MariaDB rejects instead of truncating.

A Debezium truncate event (``truncate.enabled``) is a batch of its own, because ``TRUNCATE
TABLE`` is DDL and commits: the batch before it commits its rows and offsets first, then the
table is truncated, then a transaction stores the offset past the truncate event. A crash
between the truncate and that commit reruns the truncate: nothing after the event was
committed (it is in later batches), so truncating again gives the same table.

One run at a time per connector: the run holds a MariaDB named lock, and every batch checks
(``SELECT ... FOR UPDATE``) that the stored offsets are still the ones it started from.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pymysql
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Engine

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.config.sink import ErrorsTolerance, SinkConfig
from mungmo_pipelines.core.connect.dead_letters import DeadLetterQueue, Failure, qualified_name
from mungmo_pipelines.core.connect.sink_types import fraction_loss
from mungmo_pipelines.core.errors import ConnectValueError, KafkaUnavailable, RecordRejected, SinkError, TableNameError
from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end, record_address, unreachable_reason
from mungmo_pipelines.core.kafka.outage import RetryPolicy, kafka_python_outage
from mungmo_pipelines.core.mariadb.dialect import database_message, is_data_error, is_transient
from mungmo_pipelines.core.sink.offsets import (
    DeadLetterLedger,
    OffsetStore,
    sink_consumer,
    starting_positions,
    topic_partitions_of,
)
from mungmo_pipelines.core.sink.records import TASK_PUT, RecordDecoder, RowChange, Shape
from mungmo_pipelines.core.sink.tables import NarrowColumn, TableManager
from mungmo_pipelines.core.sink.writers import CountingCursor, Statement, TableStats, WriterSession, writer_for

log = logging.getLogger(__name__)

FETCH_BYTES = 8 * 1024 * 1024
# kafka-python 3.0.12 sleeps retry_backoff_ms (default 100) in poll() when it sees no fetch in
# flight and nothing buffered. It also gets there when a fetch response lands between its drain
# of buffered records and its wait: send_fetches() drops the completed future, and the response
# sits unread in _completed_fetches through the sleep. Measured at 8 such sleeps per 200,000
# records, 13% of the run; the Java client once had the same stall (KAFKA-2486).
IDLE_POLL_SLEEP_MS = 20
# A batch also ends at this many bytes of records (keys and values), whatever batch.size says: a batch
# is held decoded in memory, up to three at once (one written, one queued, one being read).
MAX_BATCH_BYTES = 8 * 1024 * 1024

T = TypeVar("T")


@dataclass
class PartitionProgress:
    start: int
    end: int
    position: int


@dataclass
class SinkRun:
    """What one run did: per table, per partition, in total."""

    connector: str
    tables: dict[str, TableStats] = field(default_factory=dict)
    partitions: dict[TopicPartition, PartitionProgress] = field(default_factory=dict)
    missing_topics: list[str] = field(default_factory=list)
    records: int = 0
    skipped: int = 0  # records that change nothing (deletes with delete.enabled off, dropped by a transform…)
    batches: int = 0
    seconds: float = 0.0

    def stats(self, table: str) -> TableStats:
        return self.tables.setdefault(table, TableStats(table))

    def _of(self, topic: str | None) -> list[PartitionProgress]:
        return [p for tp, p in self.partitions.items() if topic is None or tp.topic == topic]

    def lag_before(self, topic: str | None = None) -> int:
        return sum(max(0, p.end - p.start) for p in self._of(topic))

    def lag_after(self, topic: str | None = None) -> int:
        return sum(max(0, p.end - p.position) for p in self._of(topic))

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {tp.partition: p.end for tp, p in self.partitions.items() if tp.topic == topic}

    def positions(self, topic: str) -> dict[int, int]:
        return {tp.partition: p.position for tp, p in self.partitions.items() if tp.topic == topic}


@dataclass
class DecodedBatch:
    """Up to ``batch.size`` consecutive records (and :data:`MAX_BATCH_BYTES`), decoded, and the positions past them."""

    size: int = 0
    skipped: int = 0
    bytes: int = 0
    changes: list[RowChange] = field(default_factory=list)
    rejected: list[tuple[ConsumerRecord, RecordRejected]] = field(default_factory=list)
    covered: dict[TopicPartition, int] = field(default_factory=dict)


class BatchReader:
    """Reads and decodes the next batch in a thread while the writer writes the current one.

    Reading (kafka-python) and decoding (JSON) hold the GIL; the writer spends part of each
    batch waiting for MariaDB without it, which is when the next batch gets ready. The
    consumer belongs to the thread until the thread ends; consumer-group offsets are handed
    over with ``commit_async``. Errors in the thread come out of the iteration.
    """

    _DONE = object()

    def __init__(
        self, consumer: KafkaConsumer, records: Iterator[ConsumerRecord], batch_size: int, decoder: RecordDecoder
    ) -> None:
        self._consumer = consumer
        self._records = records
        self._batch_size = batch_size
        self._decoder = decoder
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._group_offsets: dict[TopicPartition, OffsetAndMetadata] | None = None
        self._thread = threading.Thread(target=self._run, name="sink-batch-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            batch = DecodedBatch()
            last: dict[tuple[str, int], int] = {}
            decode = self._decoder.decode
            for record in self._records:
                try:
                    change = decode(record)
                except RecordRejected as err:
                    batch.rejected.append((record, err))
                else:
                    if change is None:
                        batch.skipped += 1
                    elif change.shape.truncate:  # DDL: a batch of its own, after everything before it
                        if batch.size:
                            self._hand_over(batch, last)
                        self._hand_over(
                            DecodedBatch(size=1, changes=[change]), {(record.topic, record.partition): record.offset}
                        )
                        batch, last = DecodedBatch(), {}
                        continue
                    else:
                        batch.changes.append(change)
                last[record.topic, record.partition] = record.offset
                batch.size += 1
                batch.bytes += len(record.key or b"") + len(record.value or b"")
                if batch.size >= self._batch_size or batch.bytes >= MAX_BATCH_BYTES:
                    self._hand_over(batch, last)
                    batch, last = DecodedBatch(), {}
            if batch.size:
                self._hand_over(batch, last)
            self._put(self._DONE)
        except _Stopped:
            return
        except BaseException as err:  # handed to the writer, which raises it
            with contextlib.suppress(_Stopped):
                self._put(err)

    def _hand_over(self, batch: DecodedBatch, last: dict[tuple[str, int], int]) -> None:
        batch.covered = {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()}
        with self._lock:
            offsets, self._group_offsets = self._group_offsets, None
        if offsets:
            with contextlib.suppress(KafkaError):
                self._consumer.commit_async(offsets)
        self._put(batch)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def __iter__(self) -> Iterator[DecodedBatch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                self._thread.join()
                return
            if isinstance(item, BaseException):
                self._thread.join()
                raise item
            yield item

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit ``offsets`` to the consumer group from the reading thread, before its next batch."""
        with self._lock:
            self._group_offsets = offsets

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Stopped(Exception):
    """The writer stopped reading; the reader thread ends quietly."""


class JdbcSink:
    """Runs one sink connector: drains its topics up to the end offsets seen at start."""

    def __init__(self, config: SinkConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.engine = engine
        self.kafka = kafka
        zone = ZoneInfo(config.db_timezone)
        self.decoder = RecordDecoder(config, zone)
        self.tables = TableManager(config, zone)
        self.offsets = OffsetStore(config.name)
        self.ledger = DeadLetterLedger(config.name, engine) if config.errors_tolerance is ErrorsTolerance.ALL else None
        self._statements: dict[Shape, Statement | None] = {}

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> SinkRun:
        """Drain the topics; after a Kafka outage, again from the stored offsets as ``errors.retry.*`` allow.

        The result is the last attempt's: batches an earlier attempt committed are written but not counted.
        """
        config = self.config
        retry = RetryPolicy(config.errors_retry_timeout_ms, config.errors_retry_delay_max_ms)
        return retry.run(config.name, self.kafka, self._run_once, self._outage_error)

    def _outage_error(self, problem: str) -> SinkError:
        return SinkError(
            f"connector {self.config.name!r}: {problem}. Every batch written so far is committed with its offsets; "
            "the next run starts after the last one"
        )

    def _run_once(self) -> SinkRun:
        with kafka_python_outage(self.kafka):
            return self._drain_topics()

    def _drain_topics(self) -> SinkRun:
        started = time.monotonic()
        config = self.config
        result = SinkRun(config.name)
        session = WriterSession(self.engine, config)
        consumer = sink_consumer(
            self.kafka, config, max_partition_fetch_bytes=FETCH_BYTES, retry_backoff_ms=IDLE_POLL_SLEEP_MS
        )
        dead_letters = None
        try:
            stored = self._with_retries(session, self._stored_offsets)
            partitions, result.missing_topics = topic_partitions_of(config, consumer)
            if self.ledger is not None:
                dead_letters = DeadLetterQueue(self.kafka, config, sorted({tp.topic for tp in partitions}))
            for topic in result.missing_topics:
                log.warning("connector %r: topic %r does not exist (yet); nothing to read from it", config.name, topic)
            if partitions:
                start, end = starting_positions(config, consumer, partitions, stored)
                result.partitions = {tp: PartitionProgress(start[tp], end[tp], start[tp]) for tp in partitions}
                self._drain(session, consumer, partitions, start, end, result, dead_letters)
        finally:
            if dead_letters is not None:
                dead_letters.close()
            consumer.close()
            session.close()
        result.seconds = time.monotonic() - started
        log.info(
            "connector %r: %d records in %d batches, lag %d -> %d, %.2fs",
            config.name,
            result.records,
            result.batches,
            result.lag_before(),
            result.lag_after(),
            result.seconds,
        )
        return result

    def _drain(
        self,
        session: WriterSession,
        consumer: KafkaConsumer,
        partitions: list[TopicPartition],
        start: dict[TopicPartition, int],
        end: dict[TopicPartition, int],
        result: SinkRun,
        dead_letters: DeadLetterQueue | None,
    ) -> None:
        positions = dict(start)
        reader = BatchReader(
            consumer, read_to_end(consumer, partitions, start, end=end), self.config.batch_size, self.decoder
        )
        try:
            for batch in reader:
                if batch.changes and batch.changes[0].shape.truncate:
                    self._truncate(session, batch, positions, result)
                else:
                    self._commit_batch(session, batch, positions, result, dead_letters)
                reader.commit_async(_group_offsets(positions))
        finally:
            reader.close()
        # Transaction markers sit after a partition's last record: store the position past them too.
        final = {tp: consumer.position(tp) for tp in partitions}
        moved = {tp: offset for tp, offset in final.items() if offset != positions[tp]}
        if moved:
            self._with_retries(session, lambda conn: self._commit_offsets_only(conn, positions, moved))
            positions.update(moved)
        for tp, offset in positions.items():
            result.partitions[tp].position = offset
        try:
            consumer.commit(_group_offsets(positions))
        except KafkaError as err:  # the database holds the truth; the group only feeds lag tools
            log.warning("connector %r: could not commit offsets to consumer group: %s", self.config.name, err)

    # --- one batch ---------------------------------------------------------------------------

    def _commit_batch(
        self,
        session: WriterSession,
        batch: DecodedBatch,
        positions: dict[TopicPartition, int],
        result: SinkRun,
        dead_letters: DeadLetterQueue | None,
    ) -> None:
        rejected = [self._failure(record, err.stage, err.cause or err, str(err)) for record, err in batch.rejected]
        changes, covered = batch.changes, batch.covered
        shapes = list(dict.fromkeys(map(_shape_of, changes)))

        def attempt(conn: pymysql.Connection) -> tuple[dict[str, TableStats], list[Failure]]:
            self.tables.prepare(conn, shapes)
            conn.begin()
            self.offsets.fence(conn, {tp: positions[tp] for tp in covered})
            stats: dict[str, TableStats] = {}
            failures = list(rejected)
            with conn.cursor(CountingCursor) as cursor:
                cursor.statement_chars = session.statement_chars
                for shape, group in itertools.groupby(changes, key=_shape_of):
                    self._write_group(cursor, shape, list(group), stats, failures)
            faults.reached("sink.rows_written")
            done: set[tuple[str, int, int]] = set()
            if failures:
                assert dead_letters is not None  # with errors.tolerance=none _failure raised already
                self._dead_letter(failures, dead_letters)
                faults.reached("sink.dead_letters_published")
            self.offsets.store(conn, covered)
            if self.ledger is not None:
                done = self.ledger.forget(conn, covered)
            faults.reached("sink.before_commit")
            conn.commit()
            faults.reached("sink.committed")
            if self.ledger is not None:
                self.ledger.committed(done)
            return stats, failures

        stats, failures = self._with_retries(session, attempt)
        for table, table_stats in stats.items():
            result.stats(table).add(table_stats)
        for failure in failures:
            result.stats(self._table_of(failure)).dead_lettered += 1
        self._count(batch, positions, result)

    def _truncate(
        self, session: WriterSession, batch: DecodedBatch, positions: dict[TopicPartition, int], result: SinkRun
    ) -> None:
        """A truncate event: ``TRUNCATE TABLE`` (DDL, it commits by itself), then the offset past the event."""
        table = batch.changes[0].shape.table
        covered = batch.covered

        def attempt(conn: pymysql.Connection) -> bool:
            conn.begin()
            self.offsets.fence(conn, {tp: positions[tp] for tp in covered})
            conn.commit()
            truncated = self.tables.truncate(conn, table)
            faults.reached("sink.truncated")
            self._commit_offsets_only(conn, positions, covered)
            faults.reached("sink.committed")
            return truncated

        if self._with_retries(session, attempt):
            result.stats(table).truncated += 1
        self._count(batch, positions, result)

    def _count(self, batch: DecodedBatch, positions: dict[TopicPartition, int], result: SinkRun) -> None:
        """A committed batch: its positions, and what it held."""
        positions.update(batch.covered)
        result.records += batch.size
        result.skipped += batch.skipped
        result.batches += 1
        for tp, offset in batch.covered.items():
            result.partitions[tp].position = offset

    def _table_of(self, failure: Failure) -> str:
        """The table a failed record was for, as far as its topic tells."""
        try:
            return self.decoder.table(failure.record.topic)
        except TableNameError:
            return str(failure.record.topic)

    def _stored_offsets(self, conn: pymysql.Connection) -> dict[TopicPartition, int]:
        self.offsets.ensure_table(conn)
        stored = self.offsets.load(conn)
        if self.ledger is not None:
            self.ledger.load(conn)
        conn.commit()
        return stored

    def _dead_letter(self, failures: list[Failure], dead_letters: DeadLetterQueue) -> None:
        """Send the batch's failures not sent by an earlier try, note the acknowledged ones, stop on a refused one."""
        ledger = self.ledger
        assert ledger is not None
        pending = [failure for failure in failures if not ledger.was_sent(failure.record)]
        started = time.monotonic()
        refused = dead_letters.publish(pending)
        turned_down = {id(r.failure) for r in refused}
        ledger.record([failure.record for failure in pending if id(failure) not in turned_down])
        if refused and (reason := unreachable_reason(self.kafka.servers())):
            raise KafkaUnavailable(self.kafka.bootstrap_servers, started, f"{reason} ({refused[0].reason})")
        if refused:
            others = f"; {len(refused) - 1} more of the batch refused too" if len(refused) > 1 else ""
            raise SinkError(
                f"connector {self.config.name!r}: "
                + refused[0].describe(self.config.dlq_topic, dead_letters.max_message_bytes)
                + f"{others}. Nothing of its batch was committed; the next run does the batch again without "
                "re-sending the dead letters the broker acknowledged"
            )

    def _commit_offsets_only(
        self, conn: pymysql.Connection, positions: dict[TopicPartition, int], moved: dict[TopicPartition, int]
    ) -> None:
        conn.begin()
        self.offsets.fence(conn, {tp: positions[tp] for tp in moved})
        self.offsets.store(conn, moved)
        conn.commit()

    def _with_retries(self, session: WriterSession, attempt: Callable[[pymysql.Connection], T]) -> T:
        """Run ``attempt`` in a fresh transaction, again after transient errors, up to ``max.retries`` times."""
        config = self.config
        for retry in itertools.count():
            try:
                return attempt(session.connection())
            except (pymysql.err.MySQLError, ConnectionError) as err:
                session.rollback_quietly()
                if not is_transient(err):
                    raise SinkError(f"connector {config.name!r}: {database_message(err)}") from err
                if retry >= config.max_retries:
                    raise SinkError(
                        f"connector {config.name!r}: {database_message(err)}, "
                        f"still after max.retries={config.max_retries}"
                    ) from err
                log.warning(
                    "connector %r: %s; retry %d of %d in %d ms",
                    config.name,
                    database_message(err),
                    retry + 1,
                    config.max_retries,
                    config.retry_backoff_ms,
                )
                session.reset()
                time.sleep(config.retry_backoff_ms / 1000)
            except BaseException:
                session.rollback_quietly()
                raise
        raise AssertionError("unreachable")

    # --- writing -------------------------------------------------------------------------------

    def _failure(self, record: ConsumerRecord, stage: str, error: BaseException, message: str) -> Failure:
        """A record's failure, or, with ``errors.tolerance=none``, the end of the run naming it."""
        if self.config.errors_tolerance is ErrorsTolerance.NONE:
            raise SinkError(
                f"connector {self.config.name!r}: record {record_address(record)} failed at {stage}: {message} "
                "(errors.tolerance=none: nothing from its batch was committed, the next run starts at its batch again)"
            )
        return Failure(record, stage, qualified_name(type(self)), error, message)

    def _write_group(
        self,
        cursor: CountingCursor,
        shape: Shape,
        group: list[RowChange],
        stats: dict[str, TableStats],
        failures: list[Failure],
    ) -> None:
        """Write consecutive changes of one shape; on a data error, find the bad rows one by one."""
        if shape.delete and not self.tables.exists(shape.table):
            return
        statement = self._statement(shape)
        if statement is None:
            return
        narrowed = self.tables.narrowed(shape)
        if narrowed:
            group = self._without_fraction_loss(shape, group, narrowed, failures)
        table_stats = stats.setdefault(shape.table, TableStats(shape.table))
        cursor.execute("SAVEPOINT sink_group")
        try:
            self._execute(cursor, shape, statement, group, table_stats)
            return
        except pymysql.err.MySQLError as err:
            if not is_data_error(err):
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT sink_group")
        # A failing single-row statement leaves nothing behind, so no savepoint per row is needed.
        for change in group:
            try:
                self._execute(cursor, shape, statement, [change], table_stats)
            except pymysql.err.MySQLError as err:
                if not is_data_error(err):
                    raise
                message = f"writing to {shape.table!r} failed: {database_message(err)}"
                failures.append(self._failure(change.record, TASK_PUT, err, message))

    def _without_fraction_loss(
        self, shape: Shape, group: list[RowChange], narrowed: Sequence[NarrowColumn], failures: list[Failure]
    ) -> list[RowChange]:
        """The changes whose temporal values fit their columns' fractional digits; the others are failures."""
        kept = []
        for change in group:
            lost = next((c for c in narrowed if fraction_loss(change.row[c.position], c.digits)), None)
            if lost is None:
                kept.append(change)
                continue
            message = (
                f"writing to {shape.table!r}: column {lost.name!r} is {lost.column_type}, which would drop the "
                f"fractional seconds of {change.row[lost.position]}; widen the column"
            )
            failures.append(self._failure(change.record, TASK_PUT, ConnectValueError(message), message))
        return kept

    def _execute(
        self, cursor: CountingCursor, shape: Shape, statement: Statement, group: Sequence[RowChange], stats: TableStats
    ) -> None:
        cursor.reset_counts()
        for sql in statement.statements([change.row for change in group], cursor.statement_chars):
            cursor.execute(sql)
        writer_for(shape, self.config.insert_mode).count(cursor, len(group), stats)

    def _statement(self, shape: Shape) -> Statement | None:
        if shape not in self._statements:
            self._statements[shape] = writer_for(shape, self.config.insert_mode).statement(shape)
        return self._statements[shape]


_shape_of = operator.attrgetter("shape")


def _group_offsets(positions: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in positions.items()}
