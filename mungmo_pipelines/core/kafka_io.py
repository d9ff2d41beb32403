"""Kafka plumbing shared by the source and the sink: client settings and topic creation."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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


def read_to_end(
    consumer: KafkaConsumer,
    partitions: list[TopicPartition],
    start: Mapping[TopicPartition, int] | None = None,
    stall_timeout_s: float = 60.0,
) -> Iterator[ConsumerRecord]:
    """Yield every record from ``start`` (or the beginning) up to the end offsets seen now.

    The consumer must be unsubscribed; with ``read_committed`` the end is the last stable offset,
    so records of transactions still open are left for the next reader.
    """
    consumer.assign(partitions)
    end = consumer.end_offsets(partitions)
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


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (the Java client's key hash), a word at a time."""
    mask, multiplier = 0xFFFFFFFF, 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * multiplier) & mask
        k ^= k >> 24
        h = ((h * multiplier) & mask) ^ ((k * multiplier) & mask)
    tail = data[words * 4 :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * multiplier) & mask
    h ^= h >> 13
    h = (h * multiplier) & mask
    return h ^ (h >> 15)


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key, so ours match Kafka Connect's."""
    return 0 if partitions == 1 else (murmur2(key) & 0x7FFFFFFF) % partitions
