"""Consistency checks of the real pipelines: a JDBC source and sink on real MariaDB and Kafka, checked at
the source's stored offset while a writer writes, each kind of difference found, counts judged by the
mode, and the repair through Kafka that every consumer of the topic sees."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mungmo_pipelines.core.consistency import CheckSettings
from mungmo_pipelines.core.consistency.pipelines import end_offsets, stored_offset
from mungmo_pipelines.core.consistency.repair import RepairScope
from mungmo_pipelines.core.consistency.store import latest_result, save_result
from mungmo_pipelines.core.errors import ConsistencyError
from tests.support.cdc import read_raw
from tests.support.consistency import (
    FILL_MEMBERS,
    REPAIRABLE_SINK,
    SEOUL,
    Replication,
    Traffic,
    check_under_traffic,
    ensure_time_zone,
    keys_of,
    pipeline_fixture,
)
from tests.support.sandbox import Sandbox

SMALL = CheckSettings(chunk_seconds=0.05, piece_rows=64)
ROWS = 5000


pipeline = pipeline_fixture(Replication)


@pytest.mark.parametrize("mode", ["timestamp+incrementing", "incrementing"])
def test_a_writer_through_the_real_pipeline_gives_no_false_differences(
    pipeline: Callable[..., Replication], sandbox: Sandbox, mode: str
) -> None:
    replication = pipeline(mode=mode)
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=ROWS))
    replication.replicate()
    result = check_under_traffic(replication, SMALL).without_false_differences()
    assert result.explained + result.in_flight
    start = result.positions["start"]
    assert set(start) == {"source_offset", "end_offsets"} and start["source_offset"] is not None


def test_broken_rows_are_named_while_a_writer_writes_through_the_pipeline(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=ROWS))
    replication.replicate()
    sandbox.execute(
        replication.target_db,
        f"UPDATE `{replication.topic}` SET score = 1.23 WHERE id = 50",
        f"DELETE FROM `{replication.topic}` WHERE id = 60",
        f"INSERT INTO `{replication.topic}` (id, name, updated_at) VALUES (0, 'by hand', NOW())",
    )
    with Traffic(replication):
        time.sleep(1)
        result = replication.check(settings=SMALL)
    assert (keys_of(result, "different"), keys_of(result, "missing")) == ({50}, {60}), result.summary()
    by_key = {d.key[0]: d for d in result.differences}
    assert [(c.column, c.target) for c in by_key[50].columns] == [("score", "1.23")]
    # Timestamp modes do not carry deletes: a row only the target has is explained, and named.
    explained = {d.key[0]: d.reason for d in result.explained}
    assert explained[0] == "timestamp+incrementing mode does not carry deletes"


def consumed(replication: Replication, start: dict[int, int]) -> list[tuple[dict, dict | None]]:
    """What a plain kafka-python consumer (no group, read_committed) reads of the topic from ``start``."""
    records = read_raw(replication.sandbox, replication.topic, start=start)
    return [(json.loads(r.key or b"null"), json.loads(r.value) if r.value is not None else None) for r in records]


def documented_results_query() -> str:
    """The SQL block of docs/consistency.md that reads the latest check's differences."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "consistency.md").read_text(encoding="utf-8")
    (query,) = [q for q in re.findall(r"^```sql\n(.*?)^```", page, re.S | re.M) if "_mungmo_consistency_rows" in q]
    return query.strip().rstrip(";")


def test_repair_through_kafka_fixes_every_consumer_of_an_incrementing_source(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline(mode="incrementing")
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=300))
    replication.replicate()
    sandbox.execute(
        replication.source_db, "DELETE FROM members WHERE id = 7", "UPDATE members SET name = 'renamed' WHERE id = 9"
    )
    topic = f"`{replication.topic}`"
    sandbox.execute(
        replication.target_db,
        f"DELETE FROM {topic} WHERE id = 5",
        f"UPDATE {topic} SET note = 'edited by hand' WHERE id = 11",
        f"INSERT INTO {topic} (id, name, score, note, updated_at) VALUES (1000, 'extra', 1, NULL, NOW())",
    )
    found = replication.check()
    assert keys_of(found, "missing") == {5} and not found.passed
    # The incrementing mode carries no updates and no deletes: those are explained, and repairable too.
    assert {(d.kind, d.key[0]) for d in found.explained} == {
        ("different", 9),
        ("different", 11),
        ("extra", 7),
        ("extra", 1000),
    }
    save_result(replication.target_engine, "rows_match_source", found)
    stored = latest_result(replication.target_engine, found.source, found.target, "rows_match_source")
    assert stored == found
    # The query docs/consistency.md gives the team reads the same differences.
    ((_, kind, difference),) = sandbox.rows(replication.target_db, documented_results_query())
    assert kind == "missing" and json.loads(difference)["key"] == [5]

    offset_before = stored_offset(replication.source, "members", sandbox.kafka)
    ends_before = end_offsets(sandbox.kafka, replication.topic)
    repaired = replication.repair(RepairScope.of_differences(stored, explained=True))
    assert (repaired.rows_sent, repaired.tombstones_sent, repaired.keys_requested) == (3, 2, 5)
    assert repaired.sinks == {replication.sink.name: []}
    # The source's offset did not move: the next source run sends nothing again, and nothing is skipped.
    assert stored_offset(replication.source, "members", sandbox.kafka) == offset_before == {"incrementing": 300}
    assert replication.run_source().rows == 0

    # Another consumer of the topic sees the source's current rows and the tombstones.
    records = consumed(replication, ends_before)
    values = {key["payload"]["id"]: value["payload"] if value else None for key, value in records}
    assert values.keys() == {5, 9, 11, 7, 1000}
    assert values[9]["name"] == "renamed" and values[11]["note"] == replication.source_rows("id = 11")[0][3]
    assert values[7] is None and values[1000] is None
    # A tombstone's key is byte for byte the key the source gave the row.
    original = consumed(replication, {})[6]
    assert original[0] == next(key for key, value in records if value is None and key["payload"]["id"] == 7)

    after = replication.check()
    assert after.passed and not after.explained and not after.in_flight, after.summary()
    assert replication.target_rows() == replication.source_rows()


def test_a_target_with_a_deleted_an_edited_and_an_extra_row_is_found_and_repaired(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=2000))
    replication.replicate()
    topic = f"`{replication.topic}`"
    sandbox.execute(
        replication.target_db,
        f"DELETE FROM {topic} WHERE id = 1500",
        f"UPDATE {topic} SET name = 'MEMBER-42', score = NULL WHERE id = 42",
        f"INSERT INTO {topic} (id, name, score, note, updated_at) VALUES (5000, 'extra', 1, NULL, NOW())",
    )
    found = replication.check()
    assert (keys_of(found, "missing"), keys_of(found, "different")) == ({1500}, {42})
    assert {c.column for c in found.differences[[d.key[0] for d in found.differences].index(42)].columns} == {
        "name",
        "score",
    }
    assert [(d.kind, d.key[0]) for d in found.explained] == [("extra", 5000)]
    repaired = replication.repair(RepairScope.of_differences(found, explained=True))
    assert (repaired.rows_sent, repaired.tombstones_sent) == (2, 1)
    assert replication.check().passed
    assert replication.sandbox.rows(replication.target_db, f"SELECT COUNT(*) FROM {topic}") == [(2000,)]


def test_a_key_range_repair_resends_the_range_and_deletes_what_the_source_lacks(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=100))
    replication.replicate()
    sandbox.execute(replication.source_db, "DELETE FROM members WHERE id = 36")
    topic = f"`{replication.topic}`"
    sandbox.execute(
        replication.target_db,
        f"DELETE FROM {topic} WHERE id BETWEEN 20 AND 24",
        f"UPDATE {topic} SET name = 'edited' WHERE id = 30",
        f"UPDATE {topic} SET name = 'outside the range' WHERE id = 60",
    )
    repaired = replication.repair(RepairScope(ranges=(((20,), (40,)),)))
    assert (repaired.rows_sent, repaired.tombstones_sent, repaired.ranges) == (19, 1, 1)
    result = replication.check()
    assert keys_of(result, "different") == {60}, result.summary()
    assert replication.target_rows("id BETWEEN 20 AND 39") == replication.source_rows("id BETWEEN 20 AND 39")


def test_what_a_sink_cannot_apply_is_said_and_what_would_break_it_is_refused(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline(sink_options={**REPAIRABLE_SINK, "delete.enabled": "false"})
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=10))
    replication.replicate()
    sandbox.execute(replication.source_db, "DELETE FROM members WHERE id = 3")
    sandbox.execute(replication.target_db, f"DELETE FROM `{replication.topic}` WHERE id = 4")
    repaired = replication.repair(RepairScope(keys=((3,), (4,))))
    assert (repaired.rows_sent, repaired.tombstones_sent, repaired.tombstones_withheld) == (1, 0, [[3]])
    (limits,) = repaired.sinks.values()
    assert limits == [
        "delete.enabled=false: it cannot apply a tombstone (it would stop at it), so no tombstone is sent and rows "
        "the source no longer has stay in the targets"
    ]
    result = replication.check()
    assert keys_of(result, "missing") == set() and [d.key[0] for d in result.explained] == [3]

    inserting = pipeline(sink_options={"pk.mode": "record_key", "auto.create": "true"}, label="insert")
    sandbox.execute(inserting.source_db, FILL_MEMBERS.format(rows=10))
    inserting.replicate()
    ends = end_offsets(sandbox.kafka, inserting.topic)
    with pytest.raises(ConsistencyError, match=r"refused, nothing sent: sink '.*': insert\.mode=insert stops at"):
        inserting.repair(RepairScope(keys=((2,),)))
    assert end_offsets(sandbox.kafka, inserting.topic) == ends


def test_a_table_without_a_primary_key_is_counted_only_with_the_reason(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline(
        mode="incrementing",
        table="logs",
        ddl="CREATE TABLE logs (id INT NOT NULL AUTO_INCREMENT, line TEXT, KEY (id)) DEFAULT CHARSET=utf8mb4",
        sink_options={"auto.create": "true"},
    )
    sandbox.execute(replication.source_db, "INSERT INTO logs (line) SELECT CONCAT('line ', seq) FROM seq_1_to_50")
    replication.replicate()
    result = replication.check()
    assert (result.method, result.passed) == ("count", True)
    assert result.reason == (
        f"source table {replication.source_db}.logs has no primary key: rows cannot be matched by key, so only "
        "row counts are compared"
    )
    # Rows the source has not sent yet are counted apart: the target is not short of them.
    sandbox.execute(replication.source_db, "INSERT INTO logs (line) VALUES ('new'), ('newer')")
    pending = replication.check()
    assert pending.passed and (pending.stats.source_rows, pending.stats.source_unsent) == (52, 2)
    sandbox.execute(replication.target_db, f"DELETE FROM `{replication.topic}` WHERE id = 10")
    short = replication.check()
    assert not short.passed
    assert short.count_mismatch == (
        "the target has 49 rows, fewer than the 50 the source has sent (source 52 rows, 50 of them sent): rows were "
        "lost or deleted on the target"
    )
    with pytest.raises(ConsistencyError, match="table logs has no primary key, so its records have no key"):
        replication.repair(RepairScope(keys=((10,),)))


def test_the_count_check_judges_counts_by_the_mode(pipeline: Callable[..., Replication], sandbox: Sandbox) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=500))
    replication.replicate()
    sandbox.execute(
        replication.source_db, "DELETE FROM members WHERE id <= 3", "UPDATE members SET name = 'x' WHERE id = 9"
    )
    counted = replication.check(count_only=True)
    # Deletes are not carried (3 extra target rows); the update is not sent yet (1 row in flight).
    assert counted.passed and counted.method == "count" and counted.reason == "row counts only, as asked"
    assert (counted.stats.source_rows, counted.stats.source_unsent, counted.stats.target_rows) == (497, 1, 500)
    sandbox.execute(replication.target_db, f"DELETE FROM `{replication.topic}` WHERE id > 490")
    assert "fewer than the 496 the source has sent" in replication.check(count_only=True).count_mismatch


def test_a_timestamp_column_in_another_zone_tells_the_rows_not_sent_yet(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    zone = ensure_time_zone(sandbox.admin, SEOUL)
    replication = pipeline(
        mode="timestamp",
        ddl=(
            "CREATE TABLE members (id INT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, score DECIMAL(7,2), "
            "note TEXT, updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3))"
        ),
        source_options={"db.timezone": zone},
        sink_options={**REPAIRABLE_SINK, "db.timezone": zone},
    )
    sandbox.execute(
        replication.source_db,
        "INSERT INTO members (id, name, score, updated_at) SELECT seq, CONCAT('m', seq), seq, "
        "NOW(3) - INTERVAL 1 HOUR FROM seq_1_to_20",
    )
    replication.replicate()
    time.sleep(0.01)
    sandbox.execute(replication.source_db, "UPDATE members SET name = 'changed' WHERE id = 4")
    result = replication.check()  # the sink runs; the source does not
    assert result.passed, result.summary()
    (pending,) = result.in_flight
    assert pending.key == [4] and pending.reason.startswith("beyond the source's stored offset (updated_at ")
    replication.run_source()
    assert replication.check().in_flight == []


def test_the_wait_gives_up_on_a_sink_that_does_not_run(pipeline: Callable[..., Replication], sandbox: Sandbox) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=50))
    replication.replicate()
    sandbox.execute(replication.source_db, "INSERT INTO members (name) SELECT CONCAT('late-', seq) FROM seq_1_to_10")
    replication.run_source()  # sent, never applied
    result = replication.check(apply=None, wait_s=1)
    assert not result.caught_up and result.passed
    late = {row[0] for row in replication.source_rows("LEFT(name, 5) = 'late-'")}
    assert len(late) == 10 and {d.key[0] for d in result.in_flight} == late
    assert {d.reason for d in result.in_flight} == {"the target had not applied the source's point when compared"}
    assert list(result.positions["start"]["end_offsets"]) == ["0"]
    counted = replication.check(apply=None, wait_s=1, count_only=True)
    assert counted.passed and not counted.caught_up
    assert counted.notes[-1].startswith("the target had not applied the source's point when counted: the target has 50")


def test_a_sink_that_fails_to_apply_the_point_is_named_and_the_check_does_not_blame_the_rows(
    pipeline: Callable[..., Replication], sandbox: Sandbox
) -> None:
    replication = pipeline(sink_options={**REPAIRABLE_SINK, "delete.enabled": "false"})
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=20))
    replication.replicate()
    sandbox.execute(replication.source_db, "UPDATE members SET name = 'after the tombstone' WHERE id = 2")
    # A tombstone the sink cannot apply stops it: the row changed after it never reaches the target.
    key = json.dumps({"schema": {"type": "struct", "fields": [{"type": "int32", "optional": False, "field": "id"}],
                                 "optional": False, "name": "members.Key"}, "payload": {"id": 1}})  # fmt: skip
    producer = sandbox.kafka.producer(acks="all")
    producer.send(replication.topic, key=key.encode(), value=None).get(timeout=30)
    producer.close()
    replication.run_source()
    result = replication.check()
    assert result.passed and not result.caught_up
    assert [(d.key[0], d.reason) for d in result.in_flight] == [
        (2, "the target had not applied the source's point when compared")
    ]
    (problem,) = result.notes[-1:]
    assert problem.startswith(f"running sink {replication.sink.name!r} to apply the point failed: ")
    assert "delete.enabled=false" in problem
