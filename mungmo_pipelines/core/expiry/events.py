"""Expiry events: the outbox's rows published to Kafka, one Kafka transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from mungmo_pipelines.core.errors import EventPublishError
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.kafka.topics import ensure_topic


class ExpiryEvents:
    """The Kafka side: one transactional producer for the run, one Kafka transaction per outbox batch.

    ``transactional_id`` must be the same for every run of one expiry job, so a zombie producer
    of an earlier run is fenced off.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, transactional_id: str, send_timeout_s: float = 60.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.transactional_id = transactional_id
        self.send_timeout_s = send_timeout_s
        self._producer: KafkaProducer | None = None

    def __enter__(self) -> ExpiryEvents:
        ensure_topic(self.kafka, self.topic)
        self._producer = self.kafka.producer(transactional_id=self.transactional_id, acks="all", linger_ms=5)
        try:
            self._producer.init_transactions()
        except BaseException:
            self._producer.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=self.send_timeout_s)
        except KafkaError:
            if exc_type is None:
                raise  # otherwise the error already propagating says more than a failed close

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("ExpiryEvents.publish outside its `with` block")
        try:
            producer.begin_transaction()
            futures = [producer.send(self.topic, key=key, value=value) for key, value in records]
            producer.flush(timeout=self.send_timeout_s)
            for future in futures:
                future.get(timeout=self.send_timeout_s)  # raises the broker's error for a refused record
            producer.commit_transaction()  # only once every record is in: kafka-python waits forever otherwise
        except Exception as error:
            try:
                producer.abort_transaction()
            except Exception as abort_error:
                error.add_note(f"aborting the Kafka transaction failed too: {abort_error!r}")
            raise EventPublishError(
                f"publishing {len(records)} expiry events to topic {self.topic!r} failed ({error!r}); "
                "they stay in the outbox and the next run publishes them"
            ) from error
