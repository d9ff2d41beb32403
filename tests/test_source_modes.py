"""Every source mode on real MariaDB and Kafka: inserts, updates, and writers that commit out of order."""

from __future__ import annotations

import pytest

from mungmo_pipelines.core.source.offsets import SourceOffsetStore
from mungmo_pipelines.core.source.probe import probe_changes
from tests.support.sandbox import Sandbox
from tests.support.source import end_offset, payloads, run_source, run_until, source_config, stored_offsets, writer

WALKS = """
CREATE TABLE walks (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  note VARCHAR(40) NOT NULL,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY (updated_at)
) DEFAULT CHARSET=utf8mb4
"""

MODES = {
    "incrementing": {"mode": "incrementing", "table.whitelist": "walks"},
    "incrementing-query": {
        "mode": "incrementing",
        "query": "SELECT id, note, updated_at FROM walks",
        "incrementing.column.name": "id",
    },
    "timestamp": {"mode": "timestamp", "timestamp.column.name": "updated_at", "table.whitelist": "walks"},
    "timestamp+incrementing": {
        "mode": "timestamp+incrementing",
        "timestamp.column.name": "updated_at",
        "incrementing.column.name": "id",
        "table.whitelist": "walks",
    },
}


class Walks:
    """A ``walks`` table, a connector in one mode over it, and its topic."""

    def __init__(self, sandbox: Sandbox, mode: str) -> None:
        self.sandbox = sandbox
        self.database = sandbox.database("src")
        sandbox.execute(self.database, WALKS)
        options = dict(MODES[mode])
        if "query" in options:
            self.topic = sandbox.topic("walks_query")
            options["topic.prefix"] = self.topic
        else:
            self.topic = sandbox.topic("walks")
        self.config = source_config(sandbox, self.database, **options)

    def insert(self, note: str, age_seconds: int = 0) -> None:
        self.sandbox.execute(
            self.database,
            f"INSERT INTO walks (note, updated_at) VALUES ('{note}', NOW(6) - INTERVAL {age_seconds} SECOND)",
        )

    def run(self):
        return run_source(self.sandbox, self.config, self.database)

    def run_until(self, notes: list[str]) -> int:
        return run_until(self.sandbox, self.config, self.database, lambda: self.notes() == notes)

    def notes(self) -> list[str]:
        return [p["note"] for p in payloads(self.sandbox, self.topic)]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_row_committed_after_a_later_one_is_never_skipped(sandbox: Sandbox, mode: str, outcome: str) -> None:
    """Txn A inserts id 2 and stays open, B inserts id 3 and commits, the source runs, then A ends."""
    walks = Walks(sandbox, mode)
    walks.insert("before", age_seconds=60)
    assert walks.run_until(["before"]) == 1

    slow, fast = writer(walks.database), writer(walks.database)
    try:
        slow.cursor().execute("INSERT INTO walks (note) VALUES ('late')")
        fast.cursor().execute("INSERT INTO walks (note) VALUES ('early')")
        fast.commit()
        held = walks.run()
        assert held.rows == 0, "a row past the open transaction's was delivered"
        assert "open write transaction" in held.tables[0].held_back
        assert walks.notes() == ["before"]
        slow.commit() if outcome == "commit" else slow.rollback()
    finally:
        slow.close()
        fast.close()

    expected = ["before", "late", "early"] if outcome == "commit" else ["before", "early"]
    walks.run_until(expected)
    assert walks.notes() == expected
    assert walks.run().rows == 0
    assert walks.notes() == expected


@pytest.mark.parametrize("mode", ["timestamp", "timestamp+incrementing"])
def test_timestamp_modes_deliver_updated_rows(sandbox: Sandbox, mode: str) -> None:
    walks = Walks(sandbox, mode)
    walks.insert("first", age_seconds=60)
    walks.insert("second", age_seconds=30)
    walks.run_until(["first", "second"])
    sandbox.execute(walks.database, "UPDATE walks SET note = 'first, edited' WHERE id = 1")
    assert walks.run_until(["first", "second", "first, edited"]) == 1
    (offset,) = stored_offsets(sandbox, walks.config)
    assert set(offset) == (
        {"timestamp", "timestamp_nanos", "incrementing"} if "+" in mode else {"timestamp", "timestamp_nanos"}
    )
    if "+" in mode:
        assert offset["incrementing"] == 1


def test_incrementing_mode_catches_inserts_only(sandbox: Sandbox) -> None:
    walks = Walks(sandbox, "incrementing")
    walks.insert("first")
    walks.run_until(["first"])
    sandbox.execute(walks.database, "UPDATE walks SET note = 'edited' WHERE id = 1")
    walks.insert("second")
    assert walks.run_until(["first", "second"]) == 1
    assert stored_offsets(sandbox, walks.config) == [{"incrementing": 2}]


def test_rows_with_equal_timestamps_never_straddle_a_commit(sandbox: Sandbox) -> None:
    """In timestamp mode the offset is a time, so a transaction ends only where the time changes."""
    walks = Walks(sandbox, "timestamp")
    walks.config = source_config(
        sandbox,
        walks.database,
        **MODES["timestamp"],
        **{"transaction.boundary": "poll", "batch.max.rows": "2"},
    )
    sandbox.execute(
        walks.database,
        "INSERT INTO walks (note, updated_at) VALUES "
        "('a', '2026-01-01 00:00:01'), ('b', '2026-01-01 00:00:02'), ('c', '2026-01-01 00:00:02'), "
        "('d', '2026-01-01 00:00:02'), ('e', '2026-01-01 00:00:03')",
    )
    run = walks.run()
    # a+b would fill the first transaction, but c and d share b's time: the cut comes after d.
    assert (run.rows, run.tables[0].transactions) == (5, 2)
    assert walks.notes() == ["a", "b", "c", "d", "e"]


def test_timestamp_initial_and_delay(sandbox: Sandbox) -> None:
    walks = Walks(sandbox, "timestamp")
    sandbox.execute(
        walks.database,
        "INSERT INTO walks (note, updated_at) VALUES ('old', '2020-01-01 00:00:00'), "
        "('new', '2026-01-01 00:00:00'), ('future', NOW(6) + INTERVAL 1 HOUR)",
    )
    walks.config = source_config(
        sandbox,
        walks.database,
        **MODES["timestamp"],
        **{"timestamp.initial": "1577836800000", "timestamp.delay.interval.ms": "60000"},
    )
    walks.run()
    # 'old' is at timestamp.initial itself (excluded: rows after it), 'future' is not yet below now - delay.
    assert walks.notes() == ["new"]


def test_timestamp_initial_now_starts_from_the_database_clock(sandbox: Sandbox) -> None:
    walks = Walks(sandbox, "timestamp+incrementing")
    walks.insert("history", age_seconds=3600)
    walks.config = source_config(
        sandbox, walks.database, **MODES["timestamp+incrementing"], **{"timestamp.initial": "-1"}
    )
    assert walks.run().rows == 0
    walks.insert("fresh")
    walks.run_until(["fresh"])
    assert walks.notes() == ["fresh"]


def test_bulk_copies_the_whole_table_every_run(sandbox: Sandbox) -> None:
    walks = Walks(sandbox, "incrementing")
    walks.config = source_config(sandbox, walks.database, mode="bulk", **{"table.whitelist": "walks"})
    walks.insert("a")
    walks.insert("b")
    walks.run()
    walks.insert("c")
    walks.run()
    assert walks.notes() == ["a", "b", "a", "b", "c"]
    assert stored_offsets(sandbox, walks.config) == []


def test_nothing_new_produces_nothing(sandbox: Sandbox) -> None:
    walks = Walks(sandbox, "timestamp+incrementing")
    walks.insert("a", age_seconds=10)
    walks.run_until(["a"])
    before = end_offset(sandbox, walks.topic)
    again = walks.run()
    assert (again.rows, again.tables[0].transactions) == (0, 0)
    assert end_offset(sandbox, walks.topic) == before


@pytest.mark.parametrize("mode", list(MODES))
def test_change_probe_sees_new_rows_until_they_are_delivered(sandbox: Sandbox, mode: str) -> None:
    walks = Walks(sandbox, mode)
    store = SourceOffsetStore(sandbox.kafka, walks.config.offsets_topic)
    store.ensure_topic()

    def offsets() -> dict:
        return store.load(walks.config.name)

    engine = sandbox.engine(walks.database)
    assert [p.behind for p in probe_changes(walks.config, engine, offsets())] == [False]
    walks.insert("a", age_seconds=5)
    (probe,) = probe_changes(walks.config, engine, offsets())
    assert probe.behind and probe.newest is not None
    walks.run_until(["a"])
    assert [p.behind for p in probe_changes(walks.config, engine, offsets())] == [False]


def test_change_probe_always_runs_bulk(sandbox: Sandbox) -> None:
    walks = Walks(sandbox, "incrementing")
    walks.config = source_config(sandbox, walks.database, mode="bulk", **{"table.whitelist": "walks"})
    assert [p.behind for p in probe_changes(walks.config, sandbox.engine(walks.database), {})] == [True]
