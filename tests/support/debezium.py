"""Debezium's golden records (tests/fixtures/debezium/, written by the real Debezium 3.5) replayed into test
topics, the source tables they came from rebuilt in a test database, and Debezium JDBC sink bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS, DebeziumSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.sink.runtime import JdbcSink, SinkRun
from tests.support.sandbox import Sandbox
from tests.support.source import writer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"


@dataclass(frozen=True)
class GoldenRecord:
    """One record as Debezium wrote it: topic, offset, key and value bytes, headers."""

    topic: str
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def event(self) -> dict[str, Any] | None:
        """The value's payload (``{before, after, op, …}``), ``None`` for a tombstone."""
        return None if self.value is None else json.loads(self.value)["payload"]


def _bytes(line: dict[str, Any], field: str) -> bytes | None:
    if f"{field}_base64" in line:
        return base64.b64decode(line[f"{field}_base64"])
    text = line.get(field)
    return None if text is None else text.encode("utf-8")


def golden_records(scenario: str, table: str) -> list[GoldenRecord]:
    """The records of ``<prefix>.gold.<table>`` in the scenario, in offset order."""
    return scenario_records(scenario, lambda topic: topic.endswith(f".gold.{table}"))


def scenario_records(scenario: str, wanted: Callable[[str], bool]) -> list[GoldenRecord]:
    """The records of the scenario's topics that ``wanted`` accepts, in topic and offset order."""
    records = []
    for text in (FIXTURES / "records" / f"{scenario}.jsonl").read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        if wanted(line["topic"]):
            headers = tuple(
                (key, b"" if value.get("text") is None else value["text"].encode())
                for key, value in line.get("headers", [])
            )
            key, value = _bytes(line, "key"), _bytes(line, "value")
            records.append(GoldenRecord(line["topic"], line["offset"], key, value, headers))
    return sorted(records, key=lambda r: (r.topic, r.offset))


def replay(sandbox: Sandbox, topic: str, records: Iterable[GoldenRecord]) -> None:
    """Write the records' exact key, value and header bytes to ``topic`` (one partition, in order).

    librdkafka's producer, because Debezium writes records with neither key nor value (a table
    without a primary key's tombstone), which kafka-python refuses to send.
    """
    ensure_topic(sandbox.kafka, topic, 1)
    producer = Producer({"bootstrap.servers": sandbox.kafka.bootstrap_servers, "acks": "all", "linger.ms": 5})
    for record in records:
        producer.produce(topic, key=record.key, value=record.value, headers=list(record.headers))
    assert producer.flush(30) == 0, "records not delivered"


def statements(script: str) -> list[str]:
    """The statements of schema.sql / changes.sql: each ends with ``;`` at the end of a line."""
    found, current = [], []
    for line in (FIXTURES / script).read_text(encoding="utf-8").splitlines():
        if line.startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            found.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    return found


def load_source(database: str, *scripts: str) -> None:
    """Run schema.sql (and changes.sql) in ``database``, as the golden records' source ran them."""
    conn = writer(database)
    try:
        with conn.cursor() as cursor:
            for script in scripts:
                for statement in statements(script):
                    cursor.execute(statement)
        conn.commit()
    finally:
        conn.close()


@dataclass
class DebeziumSinkCase:
    """A target database and a Debezium JDBC sink connector on one topic of a sandbox."""

    sandbox: Sandbox
    database: str
    topic: str

    def body(self, **options: str) -> dict[str, Any]:
        return {
            "name": f"test-dbz-sink-{self.sandbox.suffix}",
            "config": {
                "connector.class": DEBEZIUM_SINK_CLASS,
                "connection.url": self.sandbox.jdbc_url(self.database).replace("jdbc:mysql:", "jdbc:mariadb:"),
                "connection.username": "mungmo",
                "connection.password": "${env:MUNGMO_DB_PASSWORD}",
                "topics": self.topic,
                **options,
            },
        }

    def config(self, **options: str) -> DebeziumSinkConfig:
        config = parse_connector(self.body(**options))
        assert isinstance(config, DebeziumSinkConfig)
        return config

    def run(self, config: DebeziumSinkConfig) -> SinkRun:
        return JdbcSink(config, self.sandbox.engine(self.database), self.sandbox.kafka).run()

    @property
    def table(self) -> str:
        """The table ``collection.name.format=${topic}`` makes: the topic with ``.`` as ``_``."""
        return self.topic.replace(".", "_")

    def rows(self, sql: str | None = None) -> list[tuple[Any, ...]]:
        return self.sandbox.rows(self.database, sql or f"SELECT * FROM `{self.table}` ORDER BY 1")


def new_debezium_case(sandbox: Sandbox, label: str) -> DebeziumSinkCase:
    """A case whose topic is named like Debezium's, ``<prefix>.gold.<label>``."""
    number = len(sandbox.databases)
    topic = f"{sandbox.topic(f'dbz{number}')}.gold.{label}"
    sandbox.topics.add(topic)
    return DebeziumSinkCase(sandbox, sandbox.database(f"target{number}"), topic)
