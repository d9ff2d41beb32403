"""Memory stays bounded whatever ``batch.max.rows`` or ``batch.size`` is: what a run holds at once is capped.

bench/memory.py measures the peak RSS; these tests check the caps themselves.
"""

from __future__ import annotations

from typing import Any

import pymysql.cursors
import pytest
from kafka import TopicPartition

from mungmo_pipelines.core.config.options import INT_MAX
from mungmo_pipelines.core.sink.runtime import MAX_BATCH_BYTES
from mungmo_pipelines.core.source.queriers import MAX_FETCH_ROWS
from tests.support.sandbox import Sandbox
from tests.support.sink import member, new_case
from tests.support.source import payloads, run_source, source_config


def test_the_source_fetches_at_most_max_fetch_rows_whatever_batch_max_rows_is(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = sandbox.database("src")
    rows = 2 * MAX_FETCH_ROWS + 500
    sandbox.execute(
        database,
        "CREATE TABLE pets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        f"INSERT INTO pets (name) SELECT CONCAT('pet-', seq) FROM seq_1_to_{rows}",
    )
    fetches: list[int] = []
    fetchmany = pymysql.cursors.SSCursor.fetchmany

    def recorded(cursor: pymysql.cursors.SSCursor, size: int | None = None) -> Any:
        fetches.append(size or 0)
        return fetchmany(cursor, size)

    monkeypatch.setattr(pymysql.cursors.SSCursor, "fetchmany", recorded)
    config = source_config(
        sandbox,
        database,
        mode="incrementing",
        **{"table.whitelist": "pets", "batch.max.rows": str(INT_MAX), "transaction.boundary": "poll"},
    )
    run = run_source(sandbox, config, database)
    assert fetches and max(fetches) == MAX_FETCH_ROWS
    assert run.tables[0].transactions == 1, "batch.max.rows still bounds the transaction, not the fetch"
    assert [p["id"] for p in payloads(sandbox, config.topic_for("pets"))] == list(range(1, rows + 1))


def test_a_sink_batch_ends_at_max_batch_bytes_whatever_batch_size_is(sandbox: Sandbox) -> None:
    case = new_case(sandbox)
    note = "n" * 4096
    records = MAX_BATCH_BYTES // 4096 + 400
    case.produce(member(seq, f"m{seq}", note) for seq in range(1, records + 1))
    run = case.run(case.config(auto_create="true", batch_size=str(INT_MAX)))
    assert run.batches == 2, "the first batch ended at MAX_BATCH_BYTES"
    assert run.records == records
    assert case.rows(f"SELECT COUNT(*), COUNT(DISTINCT seq), MAX(seq) FROM `{case.topic}`") == [
        (records, records, records)
    ]
    assert case.stored_offsets() == {TopicPartition(case.topic, 0): records}
