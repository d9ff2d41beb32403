"""The dead-letter topic: records the sink could not write, with Kafka Connect's error headers.

A dead letter keeps the original key, value and headers, and adds the headers Kafka Connect's
``DeadLetterQueueReporter`` writes (``__connect.errors.topic``, ``.partition``, ``.offset``,
``.connector.name``, ``.task.id``, ``.stage``, ``.class.name``, ``.exception.class.name``,
``.exception.message``, ``.exception.stacktrace``). Class names are this project's Python
classes, not Java ones. ``publish`` returns only once the broker has acknowledged every
record, and the sink calls it before the database commit that moves past them.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import SinkError
from mungmo_pipelines.core.kafka.clients import KafkaSettings, record_address
from mungmo_pipelines.core.kafka.topics import ensure_topic

HEADER_PREFIX = "__connect.errors."
ACK_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A record the sink gave up on: where it failed (a Kafka Connect stage) and why."""

    record: ConsumerRecord
    stage: str
    executing_class: str
    error: BaseException
    message: str


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def error_headers(connector: str, failure: Failure) -> list[tuple[str, bytes]]:
    record, error = failure.record, failure.error
    values = {
        "topic": record.topic,
        "partition": str(record.partition),
        "offset": str(record.offset),
        "connector.name": connector,
        "task.id": "0",
        "stage": failure.stage,
        "class.name": failure.executing_class,
        "exception.class.name": qualified_name(type(error)),
        "exception.message": failure.message,
        "exception.stacktrace": "".join(traceback.format_exception(error)),
    }
    return [(HEADER_PREFIX + name, value.encode("utf-8")) for name, value in values.items()]


class DeadLetterQueue:
    """Produces failures to ``errors.deadletterqueue.topic.name`` and waits for the broker's acks."""

    def __init__(self, kafka: KafkaSettings, config: SinkConfig) -> None:
        self.kafka = kafka
        self.config = config
        ensure_topic(kafka, config.dlq_topic, 1, config.dlq_replication_factor)
        self._producer = kafka.producer(acks="all", linger_ms=5, max_request_size=16 * 1024 * 1024)

    def publish(self, failures: Sequence[Failure]) -> None:
        config = self.config
        futures = []
        for failure in failures:
            headers = list(failure.record.headers or [])
            if config.dlq_context_headers:
                headers += error_headers(config.name, failure)
            futures.append(
                self._producer.send(
                    config.dlq_topic, key=failure.record.key, value=failure.record.value, headers=headers
                )
            )
            if config.errors_log:
                content = (
                    f" key={failure.record.key!r} value={failure.record.value!r}" if config.errors_log_messages else ""
                )
                log.warning(
                    "connector %r: record %s failed at %s, sent to %s: %s%s",
                    config.name,
                    record_address(failure.record),
                    failure.stage,
                    config.dlq_topic,
                    failure.message,
                    content,
                )
        self._producer.flush(timeout=ACK_TIMEOUT_S)
        try:
            for future in futures:
                future.get(timeout=ACK_TIMEOUT_S)
        except KafkaError as err:
            raise SinkError(
                f"connector {config.name!r}: could not produce to dead-letter topic {config.dlq_topic!r}: {err}"
            ) from err

    def close(self) -> None:
        self._producer.close()
