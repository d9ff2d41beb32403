"""Consistency checks of CDC pipelines: the real Debezium MariaDB source and a real sink (Debezium's JDBC
sink, or the JDBC sink behind ExtractNewRecordState) on real MariaDB and Kafka, checked at the source's
stored binlog position while a writer writes, each kind of difference found, and the repair through
Kafka (an incremental snapshot of the keys, delete events for the keys the source lacks) that every
consumer of the topic sees, without disturbing the source's stream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.consistency import CheckSettings
from mungmo_pipelines.core.consistency.cdc import BinlogChanges
from mungmo_pipelines.core.consistency.pipelines import end_offsets, stored_offset
from mungmo_pipelines.core.consistency.repair import RepairScope, sink_limits
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.mariadb.binlog import BinlogReader, RowChange
from mungmo_pipelines.core.mariadb.binlog.checks import head_position
from mungmo_pipelines.core.mariadb.connection import server_of
from mungmo_pipelines.core.mariadb.session import admin_connection
from mungmo_pipelines.core.source.cdc.offsets import CdcOffset
from tests.support.binlog import head as binlog_head
from tests.support.binlog import replica_settings
from tests.support.cdc import fold, read_raw
from tests.support.consistency import (
    DEBEZIUM_SINK,
    FILL_MEMBERS,
    HOT,
    CdcReplication,
    Traffic,
    check_under_traffic,
    keys_of,
    pipeline_fixture,
)
from tests.support.sandbox import Sandbox

SMALL = CheckSettings(chunk_seconds=0.05, piece_rows=64)
ROWS = 5000


pipeline = pipeline_fixture(CdcReplication)


def test_a_writer_through_the_real_cdc_pipeline_gives_no_false_differences(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=ROWS))
    replication.replicate()
    result = check_under_traffic(replication, SMALL).without_false_differences()
    assert result.mode == "cdc" and result.in_flight and not result.explained
    reasons = {d.reason.split(" (")[0] for d in result.in_flight}
    assert reasons <= {
        "the source row changed while it was compared",
        "changed in the binary log after the source's stored position",
    }, reasons
    start = result.positions["start"]
    assert set(start) == {"source_offset", "end_offsets"} and start["source_offset"]["gtids"]
    assert HOT in {d.key[0] for d in result.in_flight}


def test_broken_rows_are_named_while_a_writer_writes_through_the_cdc_pipeline(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=ROWS))
    replication.replicate()
    replication.target(
        "UPDATE {t} SET score = 1.23 WHERE id = 50",
        "DELETE FROM {t} WHERE id = 60",
        "INSERT INTO {t} (id, name, updated_at) VALUES (0, 'by hand', NOW())",
    )
    with Traffic(replication):
        time.sleep(1)
        result = replication.check(settings=SMALL)
    kinds = (keys_of(result, "different"), keys_of(result, "missing"), keys_of(result, "extra"))
    assert kinds == ({50}, {60}, {0}), result.summary()
    by_key = {d.key[0]: d for d in result.differences}
    assert [(c.column, c.target) for c in by_key[50].columns] == [("score", "1.23")]
    # The CDC mode explains nothing: a row only the target has is a defect, not a delete the mode cannot carry.
    assert not result.explained and by_key[0].reason == ""


def test_changes_the_source_has_not_sent_are_in_flight_and_the_rest_are_defects(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=50))
    replication.replicate()
    # Changed in the source after its last run (the check never runs the source), and broken on the target.
    sandbox.execute(
        replication.source_db,
        "UPDATE members SET name = 'renamed' WHERE id = 3",
        "DELETE FROM members WHERE id = 4",
        "INSERT INTO members (id, name) VALUES (99, 'new')",
    )
    replication.target("UPDATE {t} SET name = 'edited' WHERE id = 5", "DELETE FROM {t} WHERE id = 6")
    result = replication.check()
    assert (keys_of(result, "different"), keys_of(result, "missing")) == ({5}, {6}), result.summary()
    in_flight = {d.key[0]: (d.kind, d.reason) for d in result.in_flight}
    assert {key: kind for key, (kind, _) in in_flight.items()} == {3: "different", 4: "extra", 99: "missing"}
    offset = result.positions["rechecks"][-1]["source_offset"]
    assert {reason for _, reason in in_flight.values()} == {
        f"changed in the binary log after the source's stored position (gtids {offset['gtids']}, "
        f"{offset['file']}:{offset['pos']}): not sent yet"
    }
    # Counts: two keys changed after the stored position explain a difference of up to two rows, not three.
    counted = replication.check(count_only=True)
    assert counted.passed and (counted.stats.source_rows, counted.stats.target_rows) == (50, 49)
    assert counted.stats.source_unsent == 3
    replication.target("DELETE FROM {t} WHERE id IN (7, 8, 9)")
    short = replication.check(count_only=True)
    assert short.count_mismatch == (
        "the source has 50 rows (3 of its keys changed after what it has sent) and the target 46"
    )
    replication.run_source()
    after = replication.check()
    assert not after.in_flight and keys_of(after, "missing") == {6, 7, 8, 9}


def test_before_the_source_stored_a_position_every_row_is_in_flight(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=20))
    sandbox.execute(
        replication.target_db, f"CREATE TABLE `{replication.target_table}` LIKE `{replication.source_db}`.members"
    )
    result = replication.check()
    assert result.passed and len(result.in_flight) == 20
    assert {d.reason for d in result.in_flight} == {"the source has stored no binlog position yet: it has sent nothing"}


def test_a_cdc_target_with_a_deleted_an_edited_and_an_extra_row_is_found_and_repaired_through_kafka(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=300))
    replication.replicate()
    replication.target(
        "DELETE FROM {t} WHERE id = 150",
        "UPDATE {t} SET name = 'MEMBER-42', score = NULL WHERE id = 42",
        "INSERT INTO {t} (id, name, score, note, updated_at) VALUES (5000, 'extra', 1, NULL, NOW())",
    )
    found = replication.check()
    assert (keys_of(found, "missing"), keys_of(found, "different"), keys_of(found, "extra")) == ({150}, {42}, {5000})
    ends_before = end_offsets(sandbox.kafka, replication.topic)
    repaired = replication.repair(RepairScope.of_differences(found))
    assert (repaired.rows_sent, repaired.rows_deleted, repaired.tombstones_sent) == (2, 1, 1), repaired
    assert repaired.sinks == {replication.sink.name: []} and repaired.tombstones_withheld == []

    # Another consumer of the topic sees the source's rows for 42 and 150 (the incremental snapshot's reads) and a
    # delete event for 5000 whose before is its key, then its tombstone.
    records = read_raw(sandbox, replication.topic, start=ends_before)
    reads = {r.payload["after"]["id"]: r.payload for r in records if r.payload and r.payload["op"] == "r"}
    assert reads.keys() == {42, 150} and {p["source"]["snapshot"] for p in reads.values()} == {"incremental"}
    assert reads[42]["after"]["name"] == "member-42"
    (delete,) = [r for r in records if r.payload and r.payload["op"] == "d"]
    assert delete.payload["before"] == {"id": 5000} and delete.payload["after"] is None
    assert delete.payload["source"]["snapshot"] == "incremental"
    value_schema = json.loads(delete.value)["schema"]
    assert value_schema["fields"][0]["name"].endswith(".Key") and value_schema["name"].endswith(".Envelope")
    tombstones = [r for r in records if r.value is None]
    assert [t.key for t in tombstones] == [delete.key] and delete.key_payload == {"id": 5000}
    assert fold(read_raw(sandbox, replication.topic)).keys() == {row[0] for row in replication.source_rows("id")}

    after = replication.check()
    assert after.passed and not after.in_flight, after.summary()
    assert replication.target_rows("id, name, score, note") == replication.source_rows("id, name, score, note")


def test_a_repair_leaves_the_source_offset_where_a_run_would_and_a_writer_loses_nothing(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    """The repair is a run of the source: its stream goes on from the stored offset while the incremental
    snapshot reads (the watermarks order each read row against the changes), and it ends at the binlog's head
    with no snapshot state left in the offset. Writes during the repair all reach the topic, once, in order."""
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=2000))
    replication.replicate()
    replication.target("UPDATE {t} SET name = 'broken' WHERE id BETWEEN 200 AND 1200")
    stop = threading.Event()
    writes = 0

    def write() -> None:
        nonlocal writes
        conn = admin_connection(replication.source_db)
        try:
            with conn.cursor() as cursor:
                while not stop.is_set():
                    key = 150 + writes % 1200
                    cursor.execute("UPDATE members SET name = %s WHERE id = %s", (f"w{writes}", key))
                    writes += 1
                    time.sleep(0.005)
        finally:
            conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        repaired = replication.repair(RepairScope(ranges=(((200,), (1201,)),)))
    finally:
        stop.set()
        writer.join()
    assert repaired.rows_sent >= 900 and writes >= 50, (repaired, writes)
    (run,) = repaired.notes
    assert "'r_incremental'" in run and "caught up with the binlog head" in run

    offset = CdcOffset.parse(stored_offset(replication.source, replication.replicated.table, sandbox.kafka) or {})
    assert offset.incremental is None and not offset.snapshot_running
    # The writes after the repair's run are left to the next run, which sends each once and ends at the head.
    following = replication.run_source()
    assert following.stats.events.get("u", 0) <= writes and following.stats.events.get("r", 0) == 0
    conn = admin_connection()
    try:
        head = head_position(conn)
    finally:
        conn.close()
    after = CdcOffset.parse(stored_offset(replication.source, replication.replicated.table, sandbox.kafka) or {})
    assert after.position.gtids == head.gtids and after.incremental is None
    records = read_raw(sandbox, replication.topic)
    state = fold(records)
    assert {key: row["name"] for key, row in state.items()} == dict(replication.source_rows("id, name"))
    streamed = [r.payload for r in records if r.payload and r.payload["op"] == "u"]
    assert len(streamed) == writes, "every write reaches the topic once"
    replication.run_sink()
    assert replication.check().passed


def test_a_repair_fences_a_running_source_run_which_resumes_from_its_stored_offset(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=100))
    replication.replicate()
    replication.target("UPDATE {t} SET name = 'broken' WHERE id = 10")
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            replication.cdc.run(**{"mungmo.streaming.duration.ms": "20000", "mungmo.streaming.idle.ms": "20000"})
        except BaseException as err:  # fenced by the repair's producer
            errors.append(err)

    running = threading.Thread(target=stream)
    running.start()
    time.sleep(2)
    sandbox.execute(replication.source_db, "UPDATE members SET name = 'during the long run' WHERE id = 11")
    time.sleep(1.5)
    repaired = replication.repair(RepairScope(keys=((10,),)))
    running.join(timeout=60)
    assert not running.is_alive() and errors, "the running source run is fenced by the repair"
    assert repaired.rows_sent == 1
    replication.replicate()
    records = read_raw(sandbox, replication.topic)
    updates = [r.payload for r in records if r.payload and r.payload["op"] == "u"]
    assert [u["after"]["name"] for u in updates] == ["during the long run"], "the change reaches the topic once"
    assert replication.check().passed


def test_a_key_range_repair_resends_the_range_and_deletes_what_the_source_lacks(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    replication = pipeline()
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=100))
    sandbox.execute(replication.source_db, "DELETE FROM members WHERE id = 36")
    replication.replicate()
    replication.target(
        "DELETE FROM {t} WHERE id BETWEEN 20 AND 24",
        "UPDATE {t} SET name = 'edited' WHERE id = 30",
        "INSERT INTO {t} (id, name, updated_at) VALUES (36, 'extra in the range', NOW())",
        "UPDATE {t} SET name = 'outside the range' WHERE id = 60",
    )
    repaired = replication.repair(RepairScope(ranges=(((20,), (40,)),)))
    assert (repaired.rows_sent, repaired.rows_deleted, repaired.ranges) == (19, 1, 1)
    result = replication.check()
    assert keys_of(result, "different") == {60} and len(result.differences) == 1, result.summary()
    assert replication.target_rows("id, name", "id BETWEEN 20 AND 39") == replication.source_rows(
        "id, name", "id BETWEEN 20 AND 39"
    )


def test_a_cdc_target_behind_extract_new_record_state_is_checked_and_repaired(
    pipeline: Callable[..., CdcReplication], sandbox: Sandbox
) -> None:
    """The JDBC sink reads rows: the unwrap transform turns the repair's delete event into a delete."""
    replication = pipeline(sink_class="jdbc")
    sandbox.execute(replication.source_db, FILL_MEMBERS.format(rows=100))
    replication.replicate()
    sandbox.execute(replication.source_db, "UPDATE members SET note = 'streamed' WHERE id = 2")
    replication.replicate()
    assert replication.check().passed
    replication.target(
        "UPDATE {t} SET note = 'edited' WHERE id = 3",
        "INSERT INTO {t} (id, name, updated_at) VALUES (500, 'extra', NOW())",
    )
    found = replication.check()
    assert (keys_of(found, "different"), keys_of(found, "extra")) == ({3}, {500})
    repaired = replication.repair(RepairScope.of_differences(found))
    assert (repaired.rows_sent, repaired.rows_deleted) == (1, 1)
    assert replication.check().passed


def test_what_a_cdc_repair_cannot_do_is_named(pipeline: Callable[..., CdcReplication], sandbox: Sandbox) -> None:
    without_signal = pipeline(source_options={"signal.data.collection": ""})
    sandbox.execute(without_signal.source_db, FILL_MEMBERS.format(rows=5))
    without_signal.replicate()
    with pytest.raises(
        ConsistencyError, match=r"a repair re-reads rows with an incremental snapshot.*set signal\.data"
    ):
        without_signal.repair(RepairScope(keys=((1,),)))

    inserting = pipeline(label="insert", sink_options={"primary.key.mode": "record_key", "schema.evolution": "basic"})
    sandbox.execute(inserting.source_db, FILL_MEMBERS.format(rows=5))
    inserting.replicate()
    ends = end_offsets(sandbox.kafka, inserting.topic)
    with pytest.raises(ConsistencyError, match=r"refused, nothing sent: sink '.*': insert\.mode=insert stops at"):
        inserting.repair(RepairScope(keys=((2,),)))
    assert end_offsets(sandbox.kafka, inserting.topic) == ends
    # A sink that skips deletes (Debezium's, without delete.enabled) is sent the delete events and says so.
    skipping = pipeline(
        label="skip",
        sink_options={"insert.mode": "upsert", "primary.key.mode": "record_key", "schema.evolution": "basic"},
    )
    sandbox.execute(skipping.source_db, FILL_MEMBERS.format(rows=5))
    skipping.replicate()
    skipping.target("INSERT INTO {t} (id, name, updated_at) VALUES (9, 'extra', NOW())")
    repaired = skipping.repair(RepairScope(keys=((9,),)))
    assert repaired.rows_deleted == 1 and repaired.sinks[skipping.sink.name] == [
        "delete.enabled=false: it skips deletes, so rows the source no longer has stay in its table"
    ]
    result = skipping.check()
    assert keys_of(result, "extra") == {9}
    kept = "has delete.enabled=false: rows deleted from the source stay in the target and show as extra"
    assert f"sink {skipping.sink.name!r} {kept}" in result.notes


def test_the_binlog_rule_reads_beside_a_replica_without_ending_its_dump(sandbox: Sandbox) -> None:
    """The rule reads the binary log with server id 0: the server ends an older dump of the same id only for
    a non-zero id, so a running source keeps its dump (a reader under the source's own id ends it)."""
    database = sandbox.database("src")
    sandbox.execute(database, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
    settings = replica_settings()
    running = BinlogReader(settings, binlog_head(), include=lambda db, table: db == database)
    seen: list[object] = []

    def follow() -> None:
        try:
            seen.extend(change for change in running if type(change) is RowChange)
        except Exception as err:  # the server ended the dump
            seen.append(err)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        time.sleep(0.5)
        offset = {"gtids": str(binlog_head().gtids), "file": "", "pos": 4}
        sandbox.execute(database, "UPDATE t SET v = 2 WHERE id = 1", "INSERT INTO t VALUES (2, 2)")
        rule = BinlogChanges(server_of(sandbox.admin), database, "t")
        assert rule.unsent_keys({"source_offset": offset}, ("id",)).keys == {(1,), (2,)}
        sandbox.execute(database, "DELETE FROM t WHERE id = 2")
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [type(change) for change in seen] == [RowChange] * 3 and running.connections == 1
        # A reader under the running one's id (a check reading as the source would) ends its dump.
        list(BinlogReader(settings, binlog_head(), blocking=False))
        follower.join(timeout=10)
        assert "A slave with the same server_uuid/server_id is already connected" in str(seen[-1])
    finally:
        running.close()
        follower.join(timeout=10)


def _sink(connector_class: str, **options: str) -> SinkConfig:
    config = parse_connector(
        {
            "name": "limits",
            "config": {
                "connector.class": connector_class,
                "connection.url": "jdbc:mariadb://localhost:3306/t",
                "connection.username" if connector_class == DEBEZIUM_SINK_CLASS else "connection.user": "u",
                "topics": "p.db.t",
                "table.name.format": "t",
                **options,
            },
        }
    )
    assert isinstance(config, SinkConfig)
    return config


UNWRAP = {"transforms": "u", "transforms.u.type": "io.debezium.transforms.ExtractNewRecordState"}
KEYED = {"pk.mode": "record_key", "insert.mode": "upsert"}


@pytest.mark.parametrize(
    ("connector_class", "options", "delete_events", "stops", "limit"),
    [
        (DEBEZIUM_SINK_CLASS, DEBEZIUM_SINK, True, False, ""),
        (DEBEZIUM_SINK_CLASS, {**DEBEZIUM_SINK, "delete.enabled": "false"}, True, False, "it skips deletes"),
        (JDBC_SINK_CLASS, {**KEYED, **UNWRAP, "delete.enabled": "true"}, True, False, ""),
        (JDBC_SINK_CLASS, {**KEYED, **UNWRAP}, True, True, "it cannot apply a tombstone"),
        (JDBC_SINK_CLASS, {**KEYED, **UNWRAP, "transforms.u.delete.handling.mode": "drop"}, True, False, "drops"),
        (JDBC_SINK_CLASS, {**KEYED, **UNWRAP, "transforms.u.delete.tombstone.handling.mode": "rewrite"}, True, False,
         "rewrites a delete as a row with __deleted"),
        (JDBC_SINK_CLASS, {**KEYED, **UNWRAP}, False, False, "drops deletes"),  # a JDBC repair's tombstones alone
        (JDBC_SINK_CLASS, KEYED, False, True, "it cannot apply a tombstone"),
    ],
)  # fmt: skip
def test_what_each_sink_does_with_a_repairs_deletes(
    connector_class: str, options: dict[str, str], delete_events: bool, stops: bool, limit: str
) -> None:
    harm, limits, stopping = sink_limits(_sink(connector_class, **options), delete_events)
    assert (harm, stopping) == ("", stops)
    assert any(limit in text for text in limits) if limit else limits == [], limits
