"""Shared helpers for the source tests: run a connector body, read its topic, hold transactions open."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pymysql
from kafka import TopicPartition

from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.kafka.clients import read_to_end, topic_partitions
from mungmo_pipelines.core.mariadb.session import admin_connection
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from mungmo_pipelines.core.source.offsets import SourceOffsetStore
from mungmo_pipelines.core.source.runtime import SourceRun
from tests.support.sandbox import Sandbox


def source_config(sandbox: Sandbox, database: str, **options: str) -> JdbcSourceConfig:
    config = parse_connector(sandbox.source_body(database, **options))
    assert isinstance(config, JdbcSourceConfig)
    return config


def run_source(sandbox: Sandbox, config: JdbcSourceConfig, database: str) -> SourceRun:
    return run_jdbc_source(config, sandbox.engine(database), sandbox.kafka)


def records(sandbox: Sandbox, topic: str, isolation: str = "read_committed") -> list[tuple[Any, Any]]:
    """Every (key, value) of ``topic`` as parsed JSON, in partition order."""
    consumer = sandbox.kafka.consumer(isolation_level=isolation, enable_auto_commit=False)
    try:
        partitions = topic_partitions(consumer, topic)
        return [(json.loads(r.key) if r.key else None, json.loads(r.value)) for r in read_to_end(consumer, partitions)]
    finally:
        consumer.close()


def payloads(sandbox: Sandbox, topic: str, isolation: str = "read_committed") -> list[dict[str, Any]]:
    return [value["payload"] for _, value in records(sandbox, topic, isolation)]


def stored_offsets(sandbox: Sandbox, config: JdbcSourceConfig) -> list[dict[str, Any]]:
    return list(SourceOffsetStore(sandbox.kafka, config.offsets_topic).load(config.name).values())


def end_offset(sandbox: Sandbox, topic: str) -> int:
    consumer = sandbox.kafka.consumer()
    try:
        partition = TopicPartition(topic, 0)
        return consumer.end_offsets([partition])[partition]
    finally:
        consumer.close()


def wide_pets_table(sandbox: Sandbox, database: str, rows: int) -> None:
    """``pets`` with ``rows`` rows of about 420 bytes: 60,000 make 25 MB, enough that a run is still reading
    (and the server still sending) when its first transaction commits."""
    sandbox.execute(
        database,
        "CREATE TABLE pets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL, notes VARCHAR(400))",
        f"INSERT INTO pets (name, notes) SELECT CONCAT('pet-', seq), REPEAT('x', 400) FROM seq_1_to_{rows}",
    )


def writer(database: str) -> pymysql.connections.Connection:
    """A second client whose transactions stay open until the test commits or rolls them back."""
    return admin_connection(database, autocommit=False)


def run_until(sandbox: Sandbox, config: JdbcSourceConfig, database: str, done: Callable[[], bool]) -> int:
    """Run the source until ``done()``; returns the rows delivered.

    Any client's open write transaction on the server holds rows back (that is the no-skip rule),
    so on a server shared with other test runs a row can take a few runs to arrive.
    """
    rows = 0
    deadline = time.monotonic() + 30
    while True:
        rows += run_source(sandbox, config, database).rows
        if done() or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)
