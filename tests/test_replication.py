"""The seed pair end to end on real MariaDB and Kafka: test001 → topic → target table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from kafka import TopicPartition

from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.sink.runtime import JdbcSink
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from mungmo_pipelines.core.source.offsets import SourceOffsetStore
from tests.support.sandbox import Sandbox
from tests.support.tables import TEST001

ROWS = [
    (
        "김민지",
        "초코",
        "아침 산책 30분 🐾",
        Decimal("4.25"),
        1,
        dt.date(2021, 3, 1),
        dt.datetime(2026, 1, 2, 3, 4, 5, 678000),
    ),
    ("이서준", None, None, None, 0, None, dt.datetime(2026, 5, 6, 7, 8, 9)),
    (
        "bob",
        "Max",
        "'quotes' and \\backslash",
        Decimal("-12.50"),
        0,
        dt.date(1969, 12, 31),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999000),
    ),
]


class Pair:
    """The seed connector pair pointed at one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.source_db = sandbox.database("mungMo")
        self.target_db = sandbox.database("mungmoMember")
        sandbox.execute(self.source_db, TEST001)
        self.topic = sandbox.topic("test001")
        self.source = parse_connector(
            sandbox.source_body(
                self.source_db,
                mode="incrementing",
                **{"incrementing.column.name": "seq", "table.whitelist": "test001", "tasks.max": "1"},
            )
        )
        self.sink = parse_connector(
            sandbox.sink_body(
                self.target_db,
                topics=self.topic,
                **{"auto.create": "true", "auto.evolve": "true", "delete.enabled": "false"},
            )
        )

    def insert(self, rows: list[tuple]) -> None:
        with self.sandbox.admin.begin() as conn:
            conn.exec_driver_sql(f"USE `{self.source_db}`")
            conn.exec_driver_sql(
                "INSERT INTO test001 (member_name, pet_name, walk_note, weight_kg, neutered, born, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )

    def run_source(self):
        return run_jdbc_source(self.source, self.sandbox.engine(self.source_db), self.sandbox.kafka)

    def run_sink(self):
        return JdbcSink(self.sink, self.sandbox.engine(self.target_db), self.sandbox.kafka).run()

    def source_rows(self) -> list[tuple]:
        return self.sandbox.rows(self.source_db, "SELECT * FROM test001 ORDER BY seq")

    def target_rows(self) -> list[tuple]:
        return self.sandbox.rows(self.target_db, f"SELECT * FROM `{self.topic}` ORDER BY seq")


@pytest.fixture
def pair(sandbox: Sandbox) -> Pair:
    return Pair(sandbox)


def test_seed_pair_replicates_every_column(pair: Pair) -> None:
    pair.insert(ROWS * 20)
    produced = pair.run_source()
    assert produced.rows == 60
    assert produced.tables[0].offset_after == {"incrementing": 60}
    written = pair.run_sink()
    assert written.stats(pair.topic).inserted == 60
    assert written.lag_after() == 0
    assert pair.target_rows() == pair.source_rows()
    assert pair.target_rows()[0][1:4] == ("김민지", "초코", "아침 산책 30분 🐾")


def test_second_run_moves_only_new_rows_and_offsets_survive_restart(pair: Pair) -> None:
    pair.insert(ROWS)
    pair.run_source()
    pair.run_sink()
    pair.insert(ROWS[:2])
    # A new run_jdbc_source is a restarted process: its offset comes back from the offsets topic.
    second = pair.run_source()
    assert second.rows == 2
    assert second.tables[0].offset_before == {"incrementing": 3}
    assert second.tables[0].offset_after == {"incrementing": 5}
    assert pair.run_sink().stats(pair.topic).inserted == 2
    assert pair.target_rows() == pair.source_rows()
    stored = SourceOffsetStore(pair.sandbox.kafka, pair.source.offsets_topic).load(pair.source.name)
    assert list(stored.values()) == [{"incrementing": 5}]


def test_rerun_with_nothing_new_changes_nothing(pair: Pair) -> None:
    pair.insert(ROWS)
    pair.run_source()
    pair.run_sink()
    consumer = pair.sandbox.kafka.consumer()
    partition = TopicPartition(pair.topic, 0)
    end_before = consumer.end_offsets([partition])[partition]
    again = pair.run_source()
    assert again.rows == 0 and again.tables[0].transactions == 0
    assert consumer.end_offsets([partition])[partition] == end_before
    consumer.close()
    sink_again = pair.run_sink()
    assert (sink_again.records, sink_again.lag_before(), sink_again.stats(pair.topic).inserted) == (0, 0, 0)
    assert pair.target_rows() == pair.source_rows()
