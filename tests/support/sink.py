"""Building blocks for the sink tests: JsonConverter records, topics filled with them, sink runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end, topic_partitions
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.sink.runtime import JdbcSink, SinkRun
from tests.support.sandbox import Sandbox

Message = tuple[bytes | None, bytes | None]


def field(name: str, connect_type: str, optional: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": connect_type, "optional": optional, **extra, "field": name}


def envelope(fields: Sequence[dict[str, Any]], payload: dict[str, Any] | None, name: str | None = None) -> bytes:
    schema: dict[str, Any] = {"type": "struct", "fields": list(fields), "optional": False}
    if name:
        schema["name"] = name
    return dumps({"schema": schema, "payload": payload})


def primitive(connect_type: str, payload: Any) -> bytes:
    return dumps({"schema": {"type": connect_type, "optional": False}, "payload": payload})


# The value schema most tests use: a member row like the seed table's.
MEMBER_FIELDS = [
    field("seq", "int32"),
    field("member_name", "string"),
    field("pet_name", "string", optional=True),
]
KEY_FIELDS = [field("seq", "int32")]


def member(seq: int, name: str, pet: str | None = None, fields: Sequence[dict[str, Any]] = MEMBER_FIELDS) -> Message:
    """A keyed member record (key: struct {seq}), as this project's source writes it."""
    payload = {"seq": seq, "member_name": name, "pet_name": pet}
    return envelope(KEY_FIELDS, {"seq": seq}), envelope(fields, payload, "members")


def tombstone(seq: int) -> Message:
    return envelope(KEY_FIELDS, {"seq": seq}), None


def produce(kafka: KafkaSettings, topic: str, messages: Iterable[Message], partitions: int = 1) -> None:
    """Create ``topic`` and append ``messages``; keyed ones are spread by key over the partitions."""
    ensure_topic(kafka, topic, partitions)
    producer = kafka.producer(acks="all", linger_ms=5)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def read_topic(kafka: KafkaSettings, topic: str) -> list[ConsumerRecord]:
    consumer = kafka.consumer(enable_auto_commit=False)
    try:
        return list(read_to_end(consumer, topic_partitions(consumer, topic)))
    finally:
        consumer.close()


@dataclass
class SinkCase:
    """A target database and a sink connector on one topic of a sandbox."""

    sandbox: Sandbox
    database: str
    topic: str

    def config(self, **options: str) -> JdbcSinkConfig:
        options = {"topics": self.topic, **{k.replace("_", "."): v for k, v in options.items()}}
        config = parse_connector(self.sandbox.sink_body(self.database, **options))
        assert isinstance(config, JdbcSinkConfig)
        return config

    def run(self, config: JdbcSinkConfig) -> SinkRun:
        return JdbcSink(config, self.sandbox.engine(self.database), self.sandbox.kafka).run()

    def produce(self, messages: Iterable[Message], partitions: int = 1) -> None:
        produce(self.sandbox.kafka, self.topic, messages, partitions)

    def rows(self, sql: str | None = None) -> list[tuple[Any, ...]]:
        return self.sandbox.rows(self.database, sql or f"SELECT * FROM `{self.topic}` ORDER BY 1")

    def stored_offsets(self) -> dict[TopicPartition, int]:
        rows = self.sandbox.rows(self.database, "SELECT topic, kafka_partition, next_offset FROM _connect_sink_offsets")
        return {TopicPartition(t, p): o for t, p, o in rows}

    def columns(self, table: str | None = None) -> dict[str, str]:
        rows = self.sandbox.rows(
            self.database,
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND TABLE_NAME = '{table or self.topic}' ORDER BY ORDINAL_POSITION",
        )
        return dict(rows)


def new_case(sandbox: Sandbox, label: str = "events") -> SinkCase:
    return SinkCase(sandbox, sandbox.database("target"), sandbox.topic(label))


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}
