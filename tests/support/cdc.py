"""Helpers for the CDC source tests: a Debezium body on a test's databases, runs, and reading its topics
raw (bytes, headers, tombstones) or folded into the state a sink would end with."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import make_url

from mungmo_pipelines.core.config.debezium_source import MARIADB_CONNECTOR_CLASS, DebeziumSourceConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.kafka.clients import read_to_end, topic_partitions
from mungmo_pipelines.core.settings import mariadb_admin_url
from mungmo_pipelines.core.source.cdc.offsets import server_partition
from mungmo_pipelines.core.source.cdc.reader import CdcRun, SnapshotRequest, run_cdc_source
from mungmo_pipelines.core.source.offsets import SourceOffsetStore, offset_key
from tests.support.sandbox import Sandbox

# Each connector of a test run reads the binlog under its own server id.
_server_ids = itertools.count(5_000_000 + (id(object()) % 100_000) * 10)


@dataclass(frozen=True)
class Raw:
    """A record as it is in Kafka."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def payload(self) -> dict[str, Any] | None:
        return None if self.value is None else json.loads(self.value)["payload"]

    @property
    def key_payload(self) -> Any:
        return None if self.key is None else json.loads(self.key)["payload"]


@dataclass
class Cdc:
    """One test's CDC connector: its body, and its topics (dropped with the sandbox)."""

    sandbox: Sandbox
    databases: list[str]
    options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = f"mungmo_test_{self.sandbox.suffix}"
        self.offsets_topic = self.sandbox.topic("offsets")
        self.server_id = str(next(_server_ids))

    def body(self, **options: str) -> dict[str, Any]:
        url = make_url(mariadb_admin_url())
        return {
            "name": f"test-cdc-{self.sandbox.suffix}",
            "config": {
                "connector.class": MARIADB_CONNECTOR_CLASS,
                "database.hostname": url.host or "127.0.0.1",
                "database.port": str(url.port or 3306),
                "database.user": "mungmo",
                "database.password": "${env:MUNGMO_DB_PASSWORD}",
                "database.server.id": self.server_id,
                "topic.prefix": self.prefix,
                "database.include.list": ",".join(re.escape(d) for d in self.databases),
                "offsets.storage.topic": self.offsets_topic,
                **self.options,
                **options,
            },
        }

    def config(self, **options: str) -> DebeziumSourceConfig:
        config = parse_connector(self.body(**options))
        assert isinstance(config, DebeziumSourceConfig)
        return config

    def run(self, requests: tuple[SnapshotRequest, ...] = (), **options: str) -> CdcRun:
        config = self.config(**options)
        try:
            return run_cdc_source(config, config.connection, self.sandbox.kafka, requests)
        finally:
            self._register_topics()

    def _register_topics(self) -> None:
        admin = self.sandbox.kafka.admin()
        try:
            self.sandbox.topics.update(t for t in admin.list_topics() if t.startswith(self.prefix))
        finally:
            admin.close()

    def topic(self, database: str, table: str) -> str:
        return f"{self.prefix}.{database}.{table}"

    def records(self, database: str, table: str, isolation: str = "read_committed") -> list[Raw]:
        return read_raw(self.sandbox, self.topic(database, table), isolation)

    def offset(self) -> dict[str, Any] | None:
        stored = SourceOffsetStore(self.sandbox.kafka, self.offsets_topic).load(self.body()["name"])
        return stored.get(offset_key(self.body()["name"], server_partition(self.prefix)))


def read_raw(
    sandbox: Sandbox, topic: str, isolation: str = "read_committed", start: dict[int, int] | None = None
) -> list[Raw]:
    """What a plain consumer (no group) reads of ``topic``, from ``start`` (partition -> offset) or the beginning."""
    consumer = sandbox.kafka.consumer(isolation_level=isolation, enable_auto_commit=False)
    try:
        try:
            partitions = topic_partitions(consumer, topic)
        except LookupError:
            return []
        begin = {tp: (start or {}).get(tp.partition, 0) for tp in partitions}
        return [
            Raw(r.topic, r.key, r.value, [(k, bytes(v)) for k, v in (r.headers or [])])
            for r in read_to_end(consumer, partitions, begin)
        ]
    finally:
        consumer.close()


def fold(records: list[Raw], key_column: str = "id") -> dict[Any, dict[str, Any]]:
    """The rows a sink ends with after applying every record in order (upsert, delete on d/tombstone)."""
    rows: dict[Any, dict[str, Any]] = {}
    for record in records:
        payload = record.payload
        if payload is None:
            rows.pop(record.key_payload[key_column], None)
            continue
        if payload["op"] == "d":
            rows.pop(payload["before"][key_column], None)
        else:
            rows[payload["after"][key_column]] = payload["after"]
    return rows


def check_chain(records: list[Raw], key_column: str = "id") -> list[str]:
    """Every key's records read as one unbroken history: a snapshot read or create first, each update's
    and delete's ``before`` the previous ``after``. Returns what breaks it (empty when nothing)."""
    current: dict[Any, dict[str, Any] | None] = {}
    problems = []
    for index, record in enumerate(records):
        payload = record.payload
        if payload is None:
            continue  # tombstones follow their delete
        op = payload["op"]
        key = (payload["after"] or payload["before"])[key_column]
        state = current.get(key)
        if op == "r" and key in current:
            problems.append(f"@{index} key {key}: read again after {state}")
        elif op == "c" and state is not None:
            problems.append(f"@{index} key {key}: created while it exists as {state}")
        elif op in ("u", "d") and payload["before"] != state:
            problems.append(f"@{index} key {key}: {op} from {payload['before']}, but the last record left {state}")
        current[key] = payload["after"]
    return problems
