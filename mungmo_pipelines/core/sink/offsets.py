"""Where a sink connector is in its topics, stored in its target database
(``docs/decisions/sink-offsets-in-the-target-database.md``).

``_connect_sink_offsets`` holds one row per (connector, topic, partition): the next offset to
read. The sink updates it in the same transaction as the rows it wrote, so the table and the
offsets can only move together. A partition without a row starts at the consumer group's
committed offset (so a sink taking over from Kafka Connect's ``connect-<name>`` group resumes
where Kafka Connect stopped), else at the beginning of the topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from pymysql.err import ProgrammingError
from sqlalchemy import Engine

from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import OffsetConflict, SinkError
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.dialect import NO_SUCH_TABLE
from mungmo_pipelines.core.mariadb.session import DbConnection

OFFSETS_TABLE = "_connect_sink_offsets"
DEAD_LETTERS_TABLE = "_connect_sink_dead_letters"


class OffsetStore:
    """One connector's rows of ``_connect_sink_offsets``, through a PyMySQL (DB-API) connection."""

    def __init__(self, connector: str) -> None:
        self.connector = connector

    @staticmethod
    def ensure_table(conn: DbConnection) -> None:
        with closing(conn.cursor()) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} ("
                "connector VARCHAR(255) COLLATE utf8mb4_nopad_bin NOT NULL, "
                "topic VARCHAR(249) COLLATE utf8mb4_nopad_bin NOT NULL, kafka_partition INT NOT NULL, "
                "next_offset BIGINT NOT NULL, updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
                "ON UPDATE CURRENT_TIMESTAMP(3), PRIMARY KEY (connector, topic, kafka_partition)) "
                "DEFAULT CHARSET=utf8mb4"
            )

    def load(self, conn: DbConnection, for_update: bool = False) -> dict[TopicPartition, int]:
        """The stored positions; ``for_update`` locks the rows until the transaction ends."""
        with closing(conn.cursor()) as cursor:
            cursor.execute(
                f"SELECT topic, kafka_partition, next_offset FROM {OFFSETS_TABLE} WHERE connector = %s"
                + (" FOR UPDATE" if for_update else ""),
                (self.connector,),
            )
            return {TopicPartition(topic, partition): offset for topic, partition, offset in cursor.fetchall()}

    def store(self, conn: DbConnection, positions: Mapping[TopicPartition, int]) -> None:
        if not positions:
            return
        with closing(conn.cursor()) as cursor:
            cursor.executemany(
                f"INSERT INTO {OFFSETS_TABLE} (connector, topic, kafka_partition, next_offset) "
                "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)",
                [(self.connector, tp.topic, tp.partition, offset) for tp, offset in positions.items()],
            )

    def fence(self, conn: DbConnection, expected: Mapping[TopicPartition, int]) -> None:
        """Lock this connector's rows and check they still say ``expected`` (call inside the transaction)."""
        stored = self.load(conn, for_update=True)
        moved = {tp: (offset, stored.get(tp)) for tp, offset in expected.items() if stored.get(tp, offset) != offset}
        if moved:
            detail = ", ".join(f"{tp.topic}[{tp.partition}] expected {a}, found {b}" for tp, (a, b) in moved.items())
            raise OffsetConflict(
                f"connector {self.connector!r}: stored offsets moved during this run ({detail}): another process "
                "is writing for this connector; this run stops without committing"
            )


class DeadLetterLedger:
    """Records of batches not committed yet whose dead letters the broker has acknowledged
    (``_connect_sink_dead_letters``).

    A batch that fails after some of its dead letters were acknowledged (the database lost, another
    dead letter refused) is done again, in this run or the next; the ledger keeps it from sending
    those dead letters twice. A row is written on a connection of its own and committed at once,
    as it must outlive the batch's rollback, and deleted by the transaction that commits the batch.
    A crash between the broker's ack and that write repeats a dead letter, never loses one.
    """

    def __init__(self, connector: str, engine: Engine) -> None:
        self.connector = connector
        self.engine = engine
        self.sent: set[tuple[str, int, int]] = set()

    def load(self, conn: DbConnection) -> None:
        with closing(conn.cursor()) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {DEAD_LETTERS_TABLE} ("
                "connector VARCHAR(255) COLLATE utf8mb4_nopad_bin NOT NULL, "
                "topic VARCHAR(249) COLLATE utf8mb4_nopad_bin NOT NULL, kafka_partition INT NOT NULL, "
                "kafka_offset BIGINT NOT NULL, PRIMARY KEY (connector, topic, kafka_partition, kafka_offset)) "
                "DEFAULT CHARSET=utf8mb4"
            )
            cursor.execute(
                f"SELECT topic, kafka_partition, kafka_offset FROM {DEAD_LETTERS_TABLE} WHERE connector = %s",
                (self.connector,),
            )
            self.sent = {(topic, partition, offset) for topic, partition, offset in cursor.fetchall()}

    def was_sent(self, record: ConsumerRecord) -> bool:
        return (record.topic, record.partition, record.offset) in self.sent

    def record(self, records: Sequence[ConsumerRecord]) -> None:
        """Note ``records`` as dead-lettered, committed now on a connection of its own."""
        if not records:
            return
        rows = [(self.connector, r.topic, r.partition, r.offset) for r in records]
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT IGNORE INTO {DEAD_LETTERS_TABLE} (connector, topic, kafka_partition, kafka_offset) "
                "VALUES (%s, %s, %s, %s)",
                rows,
            )
        self.sent.update(row[1:] for row in rows)

    def forget(self, conn: DbConnection, covered: Mapping[TopicPartition, int]) -> set[tuple[str, int, int]]:
        """Delete the rows of records before ``covered`` in the transaction that commits them; returns them,
        for :meth:`committed` once that transaction has committed."""
        done = {entry for entry in self.sent if covered.get(TopicPartition(entry[0], entry[1]), -1) > entry[2]}
        if done:
            with closing(conn.cursor()) as cursor:
                cursor.executemany(
                    f"DELETE FROM {DEAD_LETTERS_TABLE} WHERE connector = %s AND topic = %s AND kafka_partition = %s "
                    "AND kafka_offset = %s",
                    [(self.connector, *entry) for entry in sorted(done)],
                )
        return done

    def committed(self, done: set[tuple[str, int, int]]) -> None:
        self.sent -= done


def stored_positions(engine: Engine, connector: str) -> dict[TopicPartition, int]:
    """The stored positions read through a pooled connection; empty before the table exists."""
    conn = engine.raw_connection()
    try:
        return OffsetStore(connector).load(conn)
    except ProgrammingError as err:
        if err.args and err.args[0] == NO_SUCH_TABLE:
            return {}
        raise
    finally:
        conn.close()


def topic_partitions_of(config: SinkConfig, consumer: KafkaConsumer) -> tuple[list[TopicPartition], list[str]]:
    """The partitions this connector reads now, and the configured topics that do not exist (yet)."""
    if config.topics:
        topics = list(config.topics)
    else:
        pattern = re.compile(config.topics_regex)
        topics = sorted(
            t for t in consumer.topics() if pattern.fullmatch(t) and not t.startswith("__") and t != config.dlq_topic
        )
    partitions: list[TopicPartition] = []
    missing: list[str] = []
    for topic in topics:
        numbers = consumer.partitions_for_topic(topic)
        if numbers:
            partitions += [TopicPartition(topic, p) for p in sorted(numbers)]
        else:
            missing.append(topic)
    return partitions, missing


def starting_positions(
    config: SinkConfig,
    consumer: KafkaConsumer,
    partitions: Iterable[TopicPartition],
    stored: Mapping[TopicPartition, int],
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """``(start, end)`` per partition; ``end`` is the last stable offset of a ``read_committed`` consumer.

    A stored offset outside the log (records deleted by retention before they were written, or a
    recreated topic) stops the run rather than skip or repeat records silently.
    """
    partitions = list(partitions)
    end = consumer.end_offsets(partitions)
    beginning = consumer.beginning_offsets(partitions)
    start: dict[TopicPartition, int] = {}
    for tp in partitions:
        if tp in stored:
            offset = stored[tp]
            if not beginning[tp] <= offset <= end[tp]:
                raise SinkError(
                    f"connector {config.name!r}: stored offset {offset} of {tp.topic}[{tp.partition}] is outside "
                    f"the topic's log ({beginning[tp]}..{end[tp]}): records were deleted before this sink wrote "
                    f"them, or the topic was recreated. Check the target table, then set next_offset in "
                    f"{OFFSETS_TABLE} to where the sink should continue"
                )
            start[tp] = offset
        else:
            committed = consumer.committed(tp)
            start[tp] = committed if committed is not None and beginning[tp] <= committed <= end[tp] else beginning[tp]
    return start, end


def sink_consumer(kafka: KafkaSettings, config: SinkConfig, **options: Any) -> KafkaConsumer:
    """A consumer in the connector's group that reads only committed records and never commits on its own."""
    return kafka.consumer(
        group_id=config.consumer_group,
        isolation_level="read_committed",
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="none",
        **options,
    )
