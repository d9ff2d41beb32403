"""Kafka transactions for sources: records and the offset that covers them commit together.

:class:`TransactionalProducer` is librdkafka's (confluent-kafka) transactional producer, for the
source's hot path (``docs/decisions/librdkafka-for-the-source-producer.md``).
:class:`SourceTransactions` cuts one run's records into Kafka transactions by Kafka Connect's
KIP-618 ``transaction.boundary`` policy and writes the offset record into each, so after a crash
at any point a ``read_committed`` consumer sees each record once and the next run starts where
the last committed transaction ended. Every source reader commits through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from confluent_kafka import KafkaException, Producer

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.kafka.clients import KafkaSettings

log = logging.getLogger(__name__)

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

    def __init__(
        self, settings: KafkaSettings, transactional_id: str, buffer_kbytes: int = 65536, compression: str = "none"
    ) -> None:
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
                "compression.type": compression,
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

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> None:
        """Queue a record; waits while the bounded local queue is full (bounded memory)."""
        # librdkafka takes headers as a list (or dict) only.
        listed: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=listed)
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


class TransactionBoundary(StrEnum):
    """KIP-618's ``transaction.boundary``: when a source's Kafka transaction may end."""

    POLL = "poll"  # every batch of records a poll returns (here: every ``batch.max.rows`` records)
    INTERVAL = "interval"  # every ``transaction.boundary.interval.ms``


@dataclass(frozen=True)
class BoundaryPolicy:
    kind: TransactionBoundary
    max_records: int
    interval_ms: int


class SourceTransactions:
    """The Kafka transactions of one source run, cut by a :class:`BoundaryPolicy`.

    A transaction opens with the first record sent after a commit; :meth:`due` says whether the
    policy wants it committed. The reader decides where a cut may fall (never inside a source
    transaction, never between rows of the same timestamp); :meth:`commit` writes the offset record
    and commits.
    """

    def __init__(self, producer: TransactionalProducer, policy: BoundaryPolicy, offsets_topic: str) -> None:
        self.producer = producer
        self.policy = policy
        self.offsets_topic = offsets_topic
        self.open = False
        self.rows = 0
        self.started = 0.0
        self.committed = 0

    def due(self) -> bool:
        if not self.open:
            return False
        if self.policy.kind is TransactionBoundary.POLL:
            return self.rows >= self.policy.max_records
        return time.monotonic() - self.started >= self.policy.interval_ms / 1000

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open, self.rows, self.started = True, 0, time.monotonic()
        self.producer.send(topic, key, value, headers)
        self.rows += 1

    def commit(self, offset_key: bytes, offset_value: bytes | None) -> None:
        """Commit the open transaction (opening one if needed) with ``offset_value`` under ``offset_key``.

        ``offset_value`` None commits without writing an offset (nothing to move).
        """
        if not self.open:
            self.producer.begin_transaction()
            self.open = True
        if offset_value is not None:
            self.producer.send(self.offsets_topic, offset_key, offset_value)
        # The records reach the brokers here either way (committing flushes them first); the crash
        # tests stop the process at this point, with the transaction's records written, uncommitted.
        self.producer.flush()
        faults.reached("source.before_commit")
        self.producer.commit_transaction()
        self.open = False
        self.committed += 1

    def abort(self) -> None:
        """Aborts the open transaction, as far as the broker lets it: a run that fails is failing
        anyway, and the next run's producer aborts whatever is left open when it starts (the same
        ``transactional.id`` fences it). Seen here: ``INVALID_TXN_STATE`` for an abort right after a
        transaction began, which hid the error that failed the run."""
        if self.open:
            self.open = False
            try:
                self.producer.abort_transaction()
            except KafkaException as error:
                log.warning("could not abort the source transaction (%s); the next run's producer aborts it", error)
