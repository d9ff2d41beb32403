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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.errors import KafkaUnavailable
from mungmo_pipelines.core.kafka.clients import KafkaSettings

log = logging.getLogger(__name__)

# librdkafka's default, written out because error messages name it: a transaction open longer than this is
# aborted by the coordinator, which bumps the producer's epoch (KIP-360).
TRANSACTION_TIMEOUT_MS = 60_000
# How long a blocking librdkafka call runs before the producer checks whether the brokers are down.
WAIT_SLICE_S = 0.5
# What librdkafka reports about a transaction an outage broke: fenced (the coordinator's epoch bump after
# transaction.timeout.ms), deliveries that timed out, and the abortable state those leave.
_OUTAGE_AFTERMATH = frozenset(
    {KafkaError._FENCED, KafkaError._INCONSISTENT, KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._STATE}
)

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

    librdkafka reports all brokers down through its error callback and otherwise keeps waiting
    (``message.timeout.ms``, ``transaction.timeout.ms``); every wait here is cut into short slices
    that raise :class:`KafkaUnavailable` as soon as it has. An error after an outage says what the
    outage did, not what librdkafka calls it (:meth:`_explain`).
    """

    def __init__(
        self, settings: KafkaSettings, transactional_id: str, buffer_kbytes: int = 65536, compression: str = "none"
    ) -> None:
        unknown = sorted(set(settings.extra) - set(_LIBRDKAFKA_NAMES))
        if unknown:
            raise ValueError(f"Kafka client options {unknown} have no librdkafka equivalent here")
        self.servers = settings.bootstrap_servers
        self.transactional_id = transactional_id
        self.down_since: float | None = None  # when librdkafka last found every broker down, until an operation works
        self.outage_seconds = 0.0  # the longest outage this producer lived through
        self._reason = ""
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "client.id": settings.client_id,
                "transactional.id": transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": compression,
                "partitioner": "murmur2_random",
                "queue.buffering.max.kbytes": buffer_kbytes,
                "error_cb": self._on_error,
                # librdkafka's own log lines go through Python logging, not straight to stderr.
                "logger": logging.getLogger("mungmo_pipelines.librdkafka"),
                **{_LIBRDKAFKA_NAMES[k]: v for k, v in settings.extra.items()},
            }
        )

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            if self.down_since is None:
                self.down_since = time.monotonic()
            self._reason = self._reason or error.str()
        elif error.code() in (KafkaError._TRANSPORT, KafkaError._RESOLVE):
            self._reason = error.str()

    def _check(self) -> None:
        """Serve librdkafka's callbacks; raise :class:`KafkaUnavailable` if it has found every broker down."""
        self._producer.poll(0)
        if self.down_since is not None:
            self.outage_seconds = max(self.outage_seconds, time.monotonic() - self.down_since)
            raise KafkaUnavailable(self.servers, self.down_since, self._reason or "all brokers down")

    def _worked(self) -> None:
        """A call that needed the transaction coordinator succeeded: the brokers are back, if they were gone."""
        if self.down_since is not None:
            self.outage_seconds = max(self.outage_seconds, time.monotonic() - self.down_since)
            self.down_since, self._reason = None, ""

    def _wait(self, operation: Callable[[float], None], what: str, timeout_s: float) -> None:
        """Run a blocking transactional ``operation(timeout)`` in short slices, resuming it after each timeout
        (librdkafka allows that) until it is done, the brokers are found down, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                operation(min(WAIT_SLICE_S, max(deadline - time.monotonic(), 0.001)))
            except KafkaException as err:
                error = err.args[0]
                if not (isinstance(error, KafkaError) and error.retriable()):
                    raise self._explain(error) from err
                self._check()
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{what} not done after {timeout_s:.0f}s: {error.str()}") from err
                continue
            self._worked()
            return

    def _explain(self, error: Any) -> Exception:
        """The exception to raise for a librdkafka error: after an outage, what the outage did."""
        if not isinstance(error, KafkaError):
            return KafkaException(error)
        outage = max(self.outage_seconds, time.monotonic() - self.down_since if self.down_since else 0.0)
        if outage and error.code() in _OUTAGE_AFTERMATH:
            since = self.down_since or time.monotonic() - outage
            fenced = error.code() == KafkaError._FENCED
            return KafkaUnavailable(
                self.servers,
                since,
                f"librdkafka reports {error.str()!r} after the brokers were unreachable for {outage:.1f} s"
                + (
                    f": the transaction coordinator aborted the open transaction once it was older than "
                    f"transaction.timeout.ms ({TRANSACTION_TIMEOUT_MS} ms) and bumped the producer epoch, which "
                    "librdkafka calls fenced; no other producer fenced this one"
                    if fenced
                    else ": its records were not delivered and the transaction was not committed"
                ),
            )
        if error.code() == KafkaError._FENCED:
            return KafkaException(
                KafkaError(
                    error.code(),
                    f"{error.str()}: another producer with transactional.id {self.transactional_id!r} started (a "
                    "second run of this connector?), or this one's transaction stayed open longer than "
                    f"transaction.timeout.ms ({TRANSACTION_TIMEOUT_MS} ms) and the coordinator aborted it; it stops "
                    "without committing",
                    fatal=True,
                )
            )
        return KafkaException(error)

    def init_transactions(self, timeout_s: float = 60.0) -> None:
        self._wait(self._producer.init_transactions, "init_transactions", timeout_s)

    def begin_transaction(self) -> None:
        self._check()
        try:
            self._producer.begin_transaction()
        except KafkaException as err:
            raise self._explain(err.args[0]) from err

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> None:
        """Queue a record; waits while the bounded local queue is full (bounded memory)."""
        if self.down_since is not None:
            self._check()
        # librdkafka takes headers as a list (or dict) only.
        listed: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=listed)
                return
            except BufferError:
                self._producer.poll(0.05)
                self._check()
            except KafkaException as err:
                raise self._explain(err.args[0]) from err

    def flush(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._producer.flush(WAIT_SLICE_S) > 0:
            self._check()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"records still unsent after {timeout_s:.0f}s")
        self._check()  # an empty queue flushes at once, brokers or not

    def commit_transaction(self, timeout_s: float = 60.0) -> None:
        self.flush(timeout_s)
        self._wait(self._producer.commit_transaction, "commit_transaction", timeout_s)

    def abort_transaction(self, timeout_s: float = 10.0) -> None:
        """Abort the open transaction, if the brokers can be reached; otherwise the coordinator aborts it (after
        ``transaction.timeout.ms``, or when the next run's :meth:`init_transactions` fences this producer)."""
        if self.down_since is None:
            try:
                self._wait(self._producer.abort_transaction, "abort_transaction", timeout_s)
            except (KafkaException, KafkaUnavailable, TimeoutError) as err:
                log.warning(
                    "could not abort the transaction of %r (%s); the coordinator will", self.transactional_id, err
                )

    def close(self) -> None:
        """Drop what is queued and let go of the brokers, without waiting for an unreachable one."""
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        if self.down_since is None:
            try:
                self._producer.close()
            except KafkaException as err:
                # A producer left in a fatal state (an abort the broker refused with INVALID_TXN_STATE, right
                # after a transaction began) says so again here; the run's own error is the one to raise.
                log.warning("closing the producer of %r: %s", self.transactional_id, err)


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
