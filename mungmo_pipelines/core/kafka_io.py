"""Kafka plumbing shared by the source and the sink: client settings and topic creation."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the brokers; ``extra`` carries client options such as security settings."""

    bootstrap_servers: str
    client_id: str = "mungmo-pipelines"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _common(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers.split(","), "client_id": self.client_id, **self.extra}

    def producer(self, **options: Any) -> KafkaProducer:
        return KafkaProducer(**self._common(), **options)

    def consumer(self, **options: Any) -> KafkaConsumer:
        return KafkaConsumer(**self._common(), **options)

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**self._common())


def ensure_topic(
    settings: KafkaSettings,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
) -> bool:
    """Create ``name`` unless it exists; returns whether it was created."""
    admin = settings.admin()
    try:
        if name in admin.list_topics():
            return False
        admin.create_topics(
            [NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))], timeout_ms=30_000
        )
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise LookupError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def wait_until_committed_visible(settings: KafkaSettings, topics: Iterable[str], timeout_s: float = 10.0) -> bool:
    """Wait until ``read_committed`` readers see everything written to ``topics`` so far.

    ``commit_transaction`` returns once the coordinator has logged the commit; the commit markers
    reach the partitions a moment later, and until then the last stable offset stays below the
    records. A sink that starts right after the source (the pipeline job) would otherwise find
    nothing to read. Returns False if another producer's open transaction holds a partition back
    past ``timeout_s``; nothing is lost then, the rows wait for the next run.
    """
    topics = sorted(set(topics))
    if not topics:
        return True
    committed = settings.consumer(isolation_level="read_committed", enable_auto_commit=False)
    written = settings.consumer(enable_auto_commit=False)
    try:
        partitions = [tp for topic in topics for tp in topic_partitions(committed, topic)]
        high_watermarks = written.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while True:
            stable = committed.end_offsets(partitions)
            if all(stable[tp] >= high_watermarks[tp] for tp in partitions):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
    finally:
        committed.close()
        written.close()


def read_to_end(
    consumer: KafkaConsumer,
    partitions: list[TopicPartition],
    start: Mapping[TopicPartition, int] | None = None,
    stall_timeout_s: float = 60.0,
    end: Mapping[TopicPartition, int] | None = None,
) -> Iterator[ConsumerRecord]:
    """Yield every record from ``start`` (or the beginning) up to ``end`` (default: the end offsets seen now).

    The consumer must be unsubscribed; with ``read_committed`` the end is the last stable offset,
    so records of transactions still open are left for the next reader.
    """
    consumer.assign(partitions)
    end = end if end is not None else consumer.end_offsets(partitions)
    for tp in partitions:
        if start and tp in start:
            consumer.seek(tp, start[tp])
        else:
            consumer.seek_to_beginning(tp)
    pending = {tp for tp in partitions if consumer.position(tp) < end[tp]}
    last_progress = time.monotonic()
    while pending:
        batches = consumer.poll(timeout_ms=500, max_records=5000)
        for tp, records in batches.items():
            for record in records:
                if record.offset < end[tp]:
                    yield record
        still = {tp for tp in pending if consumer.position(tp) < end[tp]}
        if batches or still != pending:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall_timeout_s:
            stuck = ", ".join(f"{tp.topic}[{tp.partition}] at {consumer.position(tp)} of {end[tp]}" for tp in still)
            raise TimeoutError(f"no progress reading to the end offsets for {stall_timeout_s:.0f}s: {stuck}")
        pending = still


# kafka-python option names (KafkaSettings.extra) and their librdkafka equivalents.
_LIBRDKAFKA_NAMES = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
}


class TransactionalProducer:
    """A transactional producer on librdkafka (confluent-kafka), for the source's hot path.

    kafka-python's producer tops out near 35,000 records/s here and about 13,000/s while the same
    process reads and encodes rows (bench/source.py); librdkafka produces in C threads. Keys are
    partitioned with ``murmur2_random``, the Java client's partitioner, so records land where
    Kafka Connect would have put them.
    """

    def __init__(self, settings: KafkaSettings, transactional_id: str, buffer_kbytes: int = 65536) -> None:
        unknown = sorted(set(settings.extra) - set(_LIBRDKAFKA_NAMES))
        if unknown:
            raise ValueError(f"Kafka client options {unknown} have no librdkafka equivalent here")
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "client.id": settings.client_id,
                "transactional.id": transactional_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",
                "queue.buffering.max.kbytes": buffer_kbytes,
                # librdkafka's own log lines go through Python logging, not straight to stderr.
                "logger": logging.getLogger("mungmo_pipelines.librdkafka"),
                **{_LIBRDKAFKA_NAMES[k]: v for k, v in settings.extra.items()},
            }
        )

    def init_transactions(self, timeout_s: float = 60.0) -> None:
        self._producer.init_transactions(timeout_s)

    def begin_transaction(self) -> None:
        self._producer.begin_transaction()

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Queue a record; waits while the bounded local queue is full (bounded memory)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key)
                return
            except BufferError:
                self._producer.poll(0.05)

    def flush(self, timeout_s: float = 60.0) -> None:
        if self._producer.flush(timeout_s) > 0:
            raise TimeoutError(f"records still unsent after {timeout_s:.0f}s")

    def commit_transaction(self, timeout_s: float = 60.0) -> None:
        self._producer.commit_transaction(timeout_s)

    def abort_transaction(self, timeout_s: float = 60.0) -> None:
        self._producer.abort_transaction(timeout_s)
