"""The dead-letter topic: records the sink could not write, with Kafka Connect's error headers.

A dead letter keeps the original key, value and headers, and adds the headers Kafka Connect's
``DeadLetterQueueReporter`` writes (``__connect.errors.topic``, ``.partition``, ``.offset``,
``.connector.name``, ``.task.id``, ``.stage``, ``.class.name``, ``.exception.class.name``,
``.exception.message``, ``.exception.stacktrace``). Class names are this project's Python
classes, not Java ones. ``publish`` returns only once the broker has acknowledged or refused
every record, and the sink calls it before the database commit that moves past them.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.kafka.clients import KafkaSettings, kafka_error_text, record_address
from mungmo_pipelines.core.kafka.topics import ensure_topic, max_message_bytes

HEADER_PREFIX = "__connect.errors."
ACK_TIMEOUT_S = 60.0
# The exception's message and stack trace are cut to this many characters, so a dead letter is its record plus
# at most this much: a message quoting a huge field value must not make the dead letter too large to send.
HEADER_TEXT_CHARS = 16 * 1024
# Room for the error headers above the largest record the source topics take.
HEADER_ROOM_BYTES = 64 * 1024
# Request framing above one record: the producer sends whatever the topic takes and leaves refusing to the broker.
REQUEST_OVERHEAD_BYTES = 64 * 1024

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


def _cut(text: str) -> str:
    if len(text) <= HEADER_TEXT_CHARS:
        return text
    return f"{text[:HEADER_TEXT_CHARS]}... ({len(text) - HEADER_TEXT_CHARS:,} more characters cut)"


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
        "exception.message": _cut(failure.message),
        "exception.stacktrace": _cut("".join(traceback.format_exception(error))),
    }
    return [(HEADER_PREFIX + name, value.encode("utf-8")) for name, value in values.items()]


@dataclass(frozen=True)
class Refused:
    """A dead letter the broker did not take, and why."""

    failure: Failure
    size: int
    reason: str

    def describe(self, topic: str, limit: int) -> str:
        return (
            f"record {record_address(self.failure.record)} ({self.size:,} bytes as a dead letter) could not be "
            f"dead-lettered to {topic!r} (max.message.bytes {limit:,}): {self.reason}"
        )


class DeadLetterQueue:
    """Produces failures to ``errors.deadletterqueue.topic.name`` and waits for the broker's acks.

    The topic is created, when missing, taking records as large as the largest of the topics the
    sink reads (their ``max.message.bytes``) plus room for the error headers, so any record those
    topics hold can be dead-lettered; an existing topic that takes less is reported.
    """

    def __init__(self, kafka: KafkaSettings, config: SinkConfig, source_topics: Sequence[str]) -> None:
        self.kafka = kafka
        self.config = config
        self.max_message_bytes = self._ensure_topic(source_topics)
        self._producer = kafka.producer(
            acks="all", linger_ms=5, max_request_size=self.max_message_bytes + REQUEST_OVERHEAD_BYTES
        )

    def _ensure_topic(self, source_topics: Sequence[str]) -> int:
        """Create the topic if missing; its ``max.message.bytes``."""
        config = self.config
        largest = max(max_message_bytes(self.kafka, source_topics).values(), default=0)
        wanted = largest + HEADER_ROOM_BYTES if largest else None
        configs = {"max.message.bytes": str(wanted)} if wanted else None
        ensure_topic(self.kafka, config.dlq_topic, 1, config.dlq_replication_factor, configs)
        limit = max_message_bytes(self.kafka, [config.dlq_topic]).get(config.dlq_topic, wanted or 0)
        if wanted and limit < wanted:
            log.warning(
                "connector %r: dead-letter topic %r takes records up to %d bytes (max.message.bytes), the topics it "
                "takes records from up to %d: raise its max.message.bytes to %d or a large bad record stops the run",
                config.name,
                config.dlq_topic,
                limit,
                largest,
                wanted,
            )
        return limit

    def publish(self, failures: Sequence[Failure]) -> list[Refused]:
        """Produce ``failures`` and wait for every ack; the ones the broker refused, with its reason."""
        config = self.config
        sent: list[tuple[Failure, int, Any]] = []
        refused: list[Refused] = []
        for failure in failures:
            record = failure.record
            headers = list(record.headers or [])
            if config.dlq_context_headers:
                headers += error_headers(config.name, failure)
            size = len(record.key or b"") + len(record.value or b"") + sum(len(k) + len(v) for k, v in headers)
            try:
                future = self._producer.send(config.dlq_topic, key=record.key, value=record.value, headers=headers)
            except KafkaError as err:
                refused.append(Refused(failure, size, kafka_error_text(err)))
                continue
            sent.append((failure, size, future))
            if config.errors_log:
                content = f" key={record.key!r} value={record.value!r}" if config.errors_log_messages else ""
                log.warning(
                    "connector %r: record %s failed at %s, sent to %s: %s%s",
                    config.name,
                    record_address(record),
                    failure.stage,
                    config.dlq_topic,
                    failure.message,
                    content,
                )
        self._producer.flush(timeout=ACK_TIMEOUT_S)
        for failure, size, future in sent:
            try:
                future.get(timeout=ACK_TIMEOUT_S)
            except KafkaError as err:
                refused.append(Refused(failure, size, kafka_error_text(err)))
        return refused

    def close(self) -> None:
        self._producer.close(timeout=5)
