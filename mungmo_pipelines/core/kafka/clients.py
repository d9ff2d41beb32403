"""Kafka clients: how to reach the brokers, and reading partitions to an end offset.

kafka-python serves the sink, admin, offsets and events; the source's transactional producer is
librdkafka (``transactions.py``), where kafka-python measured 6x slower.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.errors import KafkaUnavailable

# A read that makes no progress this long checks whether the brokers can be reached at all.
STALL_PROBE_S = 2.0
PROBE_TIMEOUT_S = 2.0
RECONNECT_BACKOFF_MAX_MS = 1000


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the brokers; ``extra`` carries client options such as security settings."""

    bootstrap_servers: str
    client_id: str = "mungmo-pipelines"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def servers(self) -> list[str]:
        return [server.strip() for server in self.bootstrap_servers.split(",")]

    def _common(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.servers(),
            "client_id": self.client_id,
            # kafka-python backs off up to 30 s between reconnects: a broker back from an outage went unnoticed.
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
            **self.extra,
        }

    def producer(self, **options: Any) -> KafkaProducer:
        return KafkaProducer(**self._common(), **options)

    def consumer(self, **options: Any) -> KafkaConsumer:
        return KafkaConsumer(**self._common(), **options)

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**self._common())


def unreachable_reason(servers: Iterable[str], timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why none of ``servers`` (``host:port``) accepts a TCP connection; ``None`` when one does."""
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return None
        except (OSError, ValueError) as err:
            reasons.append(f"connecting to {server}: {getattr(err, 'strerror', None) or err}")
    return "; ".join(reasons)


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
    so records of transactions still open are left for the next reader. A read stalled for
    :data:`STALL_PROBE_S` while no broker accepts a connection raises :class:`KafkaUnavailable`.
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
        elif time.monotonic() - last_progress > STALL_PROBE_S and (
            reason := unreachable_reason(consumer.config["bootstrap_servers"])
        ):
            raise KafkaUnavailable(",".join(consumer.config["bootstrap_servers"]), last_progress, reason)
        elif time.monotonic() - last_progress > stall_timeout_s:
            stuck = ", ".join(f"{tp.topic}[{tp.partition}] at {consumer.position(tp)} of {end[tp]}" for tp in still)
            raise TimeoutError(f"no progress reading to the end offsets for {stall_timeout_s:.0f}s: {stuck}")
        pending = still


def kafka_error_text(err: BaseException) -> str:
    """A Kafka client error with the broker's reason: kafka-python's errors often carry no message of their own."""
    text = str(err)
    description = getattr(err, "description", None)
    if description and not (err.args and err.args[0]):
        return f"{text}: {description}"
    return text


def record_address(record: ConsumerRecord) -> str:
    """``topic[partition]@offset``: how errors and logs name a record."""
    return f"{record.topic}[{record.partition}]@{record.offset}"
