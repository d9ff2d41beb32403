"""The source runtime: runs any reader, committing records and their offset in one Kafka transaction.

A reader (the JDBC reader; the binary-log reader) knows how to read; the runtime knows how to
deliver. For each offset partition the reader opens (a table, the query, a binlog), the runtime
sends the partition's records through :class:`SourceTransactions`, cuts transactions where the
``transaction.boundary`` policy wants and the reader allows (:meth:`PartitionRead.checkpoint`),
and commits the reader's final offset with the last records. So after a crash at any point a
``read_committed`` consumer sees each record once and the next run starts exactly where the
last committed transaction ended (Kafka Connect's KIP-618 exactly-once source, without Kafka
Connect). When Kafka cannot be reached, the run is done again from the committed offsets as
``errors.retry.timeout`` allows (``kafka/outage.py``), then fails saying for how long it was down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymysql
from confluent_kafka import KafkaException
from sqlalchemy.exc import DBAPIError

from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.kafka.clients import KafkaSettings, wait_until_committed_visible
from mungmo_pipelines.core.kafka.outage import RetryPolicy, kafka_python_outage
from mungmo_pipelines.core.kafka.transactions import BoundaryPolicy, SourceTransactions, TransactionalProducer
from mungmo_pipelines.core.mariadb.dialect import JDBC_TLS_OPTIONS, database_message
from mungmo_pipelines.core.source.offsets import SourceOffsetStore, offset_key

log = logging.getLogger(__name__)

# A record as a reader hands it over: (topic, key, value, headers); headers are (name, bytes) pairs or None.
Headers = Sequence[tuple[str, bytes]] | None
Record = tuple[str, bytes | None, bytes | None, Headers]


def source_transactional_id(connector: str) -> str:
    """The connector's transactional id: a producer starting with it fences any earlier one (one run at a time)."""
    return f"mungmo-source-{connector}"


@contextmanager
def database_errors(connector: str, subject: str, tls_options: str = JDBC_TLS_OPTIONS) -> Iterator[None]:
    """A database error (a lost connection, a refused login) as a :class:`SourceError` naming the connector
    and ``subject`` (a table, a server); a TLS failure names ``tls_options``, where it is set."""
    try:
        yield
    except (pymysql.err.MySQLError, DBAPIError) as err:
        raise SourceError(f"connector {connector!r}, {subject}: {database_message(err, tls_options)}") from err


class NoCut:
    """What :meth:`PartitionRead.checkpoint` returns when no transaction may end before the pending record."""


NO_CUT = NoCut()
# An offset value to store, None for "nothing to store", or NO_CUT.
Checkpoint = dict[str, Any] | None | NoCut


class PartitionRead(Protocol):
    """One offset partition being read: its records, and the offsets between them."""

    label: str  # what the run metadata calls it (a table name, "query")
    topic: str  # where its records go
    partition: dict[str, Any]  # Kafka Connect's source partition: half of the offsets topic's key
    held_back: str  # what the read left for a later run, and why ("" when nothing)

    def records(self) -> Iterator[Record | None]:
        """The records to deliver; ``None`` means "no record now, but a transaction may end here"."""
        ...

    def checkpoint(self) -> Checkpoint:
        """The offset after the records handed over before the pending one, or :data:`NO_CUT`
        when a transaction must not end there (inside a source transaction, between rows of one
        timestamp). ``None`` means no offset to store (bulk mode)."""
        ...

    def offset(self) -> dict[str, Any] | None:
        """The offset to store once every record handed over is in Kafka."""
        ...

    def written_topics(self) -> Iterable[str]:
        """The topics its records went to (a binlog read writes one per table)."""
        ...


class SourceReader(Protocol):
    """Opens the partitions a connector reads, each from its stored offset."""

    def reads(self, stored: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[PartitionRead]:
        """Each partition's read in turn; ``stored(partition)`` is its committed offset value."""
        ...


@dataclass
class TableRun:
    """What one run did for one partition (a table); shown as Dagster metadata."""

    table: str
    topic: str
    rows: int = 0
    bytes: int = 0
    transactions: int = 0
    offset_before: dict[str, Any] | None = None
    offset_after: dict[str, Any] | None = None
    held_back: str = ""
    seconds: float = 0.0
    topics: tuple[str, ...] = ()


@dataclass
class SourceRun:
    connector: str
    tables: list[TableRun] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


class SourceRuntime:
    """Delivers a reader's records for one connector, exactly once."""

    def __init__(
        self,
        connector: str,
        kafka: KafkaSettings,
        offsets: SourceOffsetStore,
        policy: BoundaryPolicy,
        retry: RetryPolicy | None = None,
        compression: str = "none",
    ) -> None:
        self.connector = connector
        self.kafka = kafka
        self.offsets = offsets
        self.policy = policy
        self.retry = retry or RetryPolicy()
        self.compression = compression

    def run(self, reader: SourceReader) -> SourceRun:
        """Deliver the reader's records; after a Kafka outage, again from the committed offsets (``errors.retry.*``).

        The result is the last attempt's: rows an earlier attempt committed are in Kafka but not counted.
        """
        return self.retry.run(self.connector, self.kafka, lambda: self._run_once(reader), self._outage_error)

    def _outage_error(self, problem: str) -> SourceError:
        return SourceError(
            f"connector {self.connector!r}: {problem}. The open Kafka transaction was not committed: read_committed "
            "consumers never see its records, and the next run resumes from the last committed offset"
        )

    def _run_once(self, reader: SourceReader) -> SourceRun:
        with kafka_python_outage(self.kafka):
            producer = TransactionalProducer(
                self.kafka, source_transactional_id(self.connector), compression=self.compression
            )
            try:
                # Fencing the previous producer first settles its last transaction: a commit it had sent completes
                # (or an open one aborts) before the offsets are read, so they are the committed ones (KIP-618).
                producer.init_transactions()
                self.offsets.ensure_topic()
                stored = self.offsets.load(self.connector)
                result = SourceRun(self.connector)
                for read in reader.reads(lambda partition: stored.get(offset_key(self.connector, partition))):
                    result.tables.append(self._deliver(producer, read, stored))
            except KafkaException as err:
                raise SourceError(f"connector {self.connector!r}: Kafka transaction failed: {err}") from err
            finally:
                producer.close()
            written = [topic for run in result.tables if run.rows for topic in run.topics]
            if not wait_until_committed_visible(self.kafka, written):
                log.warning(
                    "connector %r: another producer's open transaction holds %s back from read_committed readers",
                    self.connector,
                    ", ".join(written),
                )
        return result

    def _deliver(
        self, producer: TransactionalProducer, read: PartitionRead, stored: dict[bytes, dict[str, Any]]
    ) -> TableRun:
        started = time.monotonic()
        key = offset_key(self.connector, read.partition)
        before = stored.get(key)
        run = TableRun(read.label, read.topic, offset_before=before)
        transactions = SourceTransactions(producer, self.policy, self.offsets.topic)
        send, due = transactions.send, transactions.due
        size = 0
        try:
            for record in read.records():
                if due():
                    offset = read.checkpoint()
                    if not isinstance(offset, NoCut):
                        transactions.commit(key, None if offset is None else dumps(offset))
                if record is None:
                    continue
                topic, record_key, value, headers = record
                send(topic, record_key, value, headers)
                size += len(value or b"") + len(record_key or b"")
                run.rows += 1
            final = read.offset()
            if final is not None and final != before:
                transactions.commit(key, dumps(final))
            elif transactions.open:
                transactions.commit(key, None)
        except BaseException:
            transactions.abort()
            raise
        run.bytes = size
        run.held_back = read.held_back
        run.transactions = transactions.committed
        run.offset_after = final
        run.topics = tuple(sorted(set(read.written_topics())))
        run.seconds = time.monotonic() - started
        return run
