"""The team's CDC pair (``connectors/mungmo-cdc-source.json`` and ``connectors/mungmo-cdc-sink.json``): its
topology as committed, and the committed options end to end through its pipeline job on sandbox databases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance
from sqlalchemy import make_url

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.assets.verification import SKIPPED_TAG
from mungmo_pipelines.core.config.debezium_sink import DebeziumSinkConfig
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.operations.state import TargetState, TargetStateStore
from mungmo_pipelines.core.settings import mariadb_admin_url
from mungmo_pipelines.core.source.cdc.incremental import signal_table_ddl
from mungmo_pipelines.core.topology import Topology
from mungmo_pipelines.definitions import build_definitions
from tests.support.cdc import Cdc, read_raw
from tests.support.debezium import DebeziumSinkCase
from tests.support.operations import materialized, project
from tests.support.sandbox import Sandbox
from tests.support.tables import TEST001

ROOT = Path(__file__).resolve().parents[1]
SOURCE, SINK = "mungmo-cdc-source", "mungmo-cdc-sink"
ENVIRON = {"MUNGMO_DB_PASSWORD": "x"}
COLUMNS = "seq, member_name, pet_name, walk_note, weight_kg, neutered, born, created_at"


def committed(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "connectors" / f"{name}.json").read_text(encoding="utf-8"))


def test_the_committed_cdc_sink_reads_the_cdc_sources_topic_into_mungmomember_test001() -> None:
    connectors = load_connectors(ROOT / "connectors", ENVIRON, strict=True)
    source = next(c for c in connectors.sources if c.name == SOURCE)
    sink = next(c for c in connectors.sinks if c.name == SINK)
    assert isinstance(source, DebeziumSourceConfig) and isinstance(sink, DebeziumSinkConfig)
    # Only the seed table is captured: not the members table or the expiry's outbox beside it.
    assert source.captures("mungMo", "test001")
    assert not source.captures("mungMo", "member")
    assert not source.captures("mungMo", "neighbourhood_verification_expiry_outbox")
    # A repair re-reads rows with an incremental snapshot, whose windows go to this table.
    assert source.signal_table == ("mungMo", "debezium_signal")
    topic = source.topic_for("mungMo.test001")
    assert sink.topics == (topic,) == ("mungmo.mungMo.test001",)
    assert (sink.database, sink.table_for(topic)) == ("mungmoMember", "test001")
    # Paired whatever the database holds now: an explicit topic needs no table listing.
    topology = Topology.build(connectors)
    pipeline = topology.pipeline_of(source)
    assert pipeline is not None and [s.name for s in pipeline.sinks] == [SINK]
    defs = build_definitions(connectors, topology)
    job = defs.resolve_job_def(pipeline_job_name(source))
    assert AssetKey(["mungmoMember", "test001"]) in job.asset_layer.executable_asset_keys
    # The JDBC pair keeps its own target: both can run while the team moves over.
    jdbc_sink = next(c for c in connectors.sinks if c.name == "my-sink-connect-member-test001")
    assert jdbc_sink.table_for("my_topic_test001") != sink.table_for(topic)


def on_sandbox(cdc: Cdc, source_db: str, target_db: str) -> list[dict[str, Any]]:
    """The committed bodies with only the servers, databases, topics and server id of the sandbox."""
    url = make_url(mariadb_admin_url())
    source, sink = committed(SOURCE), committed(SINK)
    source["name"], sink["name"] = f"test-cdc-source-{cdc.sandbox.suffix}", f"test-cdc-sink-{cdc.sandbox.suffix}"
    source["config"].update(
        {
            "database.hostname": url.host or "127.0.0.1",
            "database.port": str(url.port or 3306),
            "database.server.id": cdc.server_id,
            "topic.prefix": cdc.prefix,
            "database.include.list": source_db,
            "table.include.list": source["config"]["table.include.list"].replace("mungMo", source_db),
            "signal.data.collection": source["config"]["signal.data.collection"].replace("mungMo", source_db),
            "offsets.storage.topic": cdc.offsets_topic,
        }
    )
    sink["config"].update(
        {
            "connection.url": re.sub(
                r"//[^/]+/mungmoMember$",
                f"//{url.host}:{url.port or 3306}/{target_db}",
                sink["config"]["connection.url"],
            ),
            "topics": cdc.topic(source_db, "test001"),
        }
    )
    return [source, sink]


def test_the_committed_pair_carries_inserts_updates_deletes_and_a_key_change(sandbox: Sandbox, tmp_path: Path) -> None:
    source_db, target_db = sandbox.database("mungmo"), sandbox.database("member")
    sandbox.execute(
        source_db,
        TEST001,
        "CREATE TABLE member (id INT PRIMARY KEY, nickname VARCHAR(40))",
        "INSERT INTO member VALUES (1, '김민지')",
        *[
            "INSERT INTO test001 (member_name, pet_name, walk_note, weight_kg, neutered, born, created_at) "
            f"VALUES ('회원 {n}', '초코', {note}, {n}.25, {n % 2}, '2020-01-0{n}', '2026-01-01 09:00:0{n}.123')"
            for n, note in enumerate(["NULL", "'산책 🐾'", "''", "'a \\\\ \"q\"'", "NULL"], start=1)
        ],
    )
    sandbox.execute(source_db, signal_table_ddl(source_db, "debezium_signal"))
    cdc = Cdc(sandbox, [source_db])
    for body in on_sandbox(cdc, source_db, target_db):
        (tmp_path / f"{body['name']}.json").write_text(json.dumps(body))
    connectors = load_connectors(tmp_path)
    defs = build_definitions(connectors)
    job = defs.resolve_job_def(pipeline_job_name(connectors.sources[0]))
    topic = cdc.topic(source_db, "test001")
    sandbox.topics.add(topic)
    target = AssetKey([target_db, "test001"])

    def run() -> tuple[dict[str, int], dict[str, Any]]:
        result = job.execute_in_process(instance=instance)
        assert result.success
        metadata = {
            event.materialization.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()
        }
        return metadata[AssetKey(["kafka", topic])]["events"], metadata[target]

    def same_rows() -> None:
        ordered = f"SELECT {COLUMNS} FROM test001 ORDER BY seq"
        assert sandbox.rows(target_db, ordered) == sandbox.rows(source_db, ordered)

    with DagsterInstance.ephemeral() as instance:
        events, written = run()
        assert events == {"r": 5} and written["rows_inserted"] == 5
        same_rows()
        # Column lineage reaches the target: each of its columns from the topic's field of that name.
        lineage = written["dagster/column_lineage"].deps_by_column
        assert {name: [(d.asset_key, d.column_name) for d in deps] for name, deps in lineage.items()} == {
            name: [(AssetKey(["kafka", topic]), name)] for name in COLUMNS.split(", ")
        }
        sandbox.execute(
            source_db,
            "UPDATE test001 SET walk_note = '비 와서 짧게 ☔', weight_kg = NULL WHERE seq = 2",
            "DELETE FROM test001 WHERE seq = 3",
            "UPDATE test001 SET seq = 50 WHERE seq = 4",
            "INSERT INTO test001 (member_name, created_at) VALUES ('새 회원', '2026-02-01 00:00:00.5')",
            "UPDATE member SET nickname = '이서준'",
        )
        events, written = run()
        # Events count row changes: the key change is one update, sent as a delete (and tombstone) of 4
        # and a create of 50.
        assert events == {"u": 2, "d": 1, "c": 1}
        assert (written["rows_inserted"], written["rows_updated"], written["rows_deleted"]) == (2, 1, 2)
        same_rows()
        events, written = run()  # nothing new: the sink still runs, and finds nothing to apply
        assert events == {} and written["rows_inserted"] == written["rows_updated"] == written["rows_deleted"] == 0
        # Rows broken by hand in the target come back through Kafka with the pair's repair job.
        sandbox.execute(
            target_db,
            "DELETE FROM test001 WHERE seq = 1",
            "UPDATE test001 SET walk_note = 'edited by hand' WHERE seq = 2",
            "INSERT INTO test001 (seq, member_name, created_at) VALUES (99, 'extra', NOW(3))",
        )
        repair = defs.resolve_job_def(f"{job_name(connectors.sources[0].name)}_repair")
        repaired = repair.execute_in_process(
            instance=instance, run_config={"ops": {repair.nodes[0].name: {"config": {"keys": [1, 2, 99]}}}}
        )
        assert repaired.success
        same_rows()
    assert read_raw(sandbox, cdc.topic(source_db, "member")) == []
    # Beside the table: the sink's offsets and the check results the repair's check stored.
    assert sandbox.rows(target_db, "SHOW TABLES") == [
        ("_connect_sink_offsets",),
        ("_mungmo_consistency_results",),
        ("_mungmo_consistency_rows",),
        ("test001",),
    ]


def topic_bytes(sandbox: Sandbox, topic: str) -> int:
    """The bytes the broker keeps for ``topic`` (its log segments)."""
    admin = sandbox.kafka.admin()
    try:
        described = admin.describe_log_dirs([topic])
    finally:
        admin.close()
    return sum(
        partition["partition_size"]
        for broker in described
        for directory in broker["log_dirs"]
        for found in directory["topics"]
        if found["name"] == topic
        for partition in found["partitions"]
    )


def test_the_sink_reads_what_the_source_compressed_with_lz4(sandbox: Sandbox) -> None:
    """``producer.override.compression.type=lz4`` (docs/performance.md): the project's sink reads it (``lz4``
    is a dependency for that)."""
    source_db, target_db = sandbox.database("src"), sandbox.database("dst")
    sandbox.execute(
        source_db,
        TEST001,
        *[
            "INSERT INTO test001 (member_name, walk_note, created_at) "
            f"VALUES ('회원 {n}', '아침 산책 🐾 {n}', '2026-01-01 09:00:00.5')"
            for n in range(1, 21)
        ],
    )
    cdc = Cdc(sandbox, [source_db])
    assert cdc.run(**{"producer.override.compression.type": "lz4"}).stats.events == {"r": 20}
    topic = cdc.topic(source_db, "test001")
    # Twenty records of ~4 KB, mostly their repeated schema, kept in a fraction of that: compressed.
    written = sum(len(record.value or b"") for record in read_raw(sandbox, topic))
    assert 0 < topic_bytes(sandbox, topic) < written / 5
    sink = DebeziumSinkCase(sandbox, target_db, topic)
    config = sink.config(
        **{
            "insert.mode": "upsert",
            "primary.key.mode": "record_key",
            "schema.evolution": "basic",
            "collection.name.format": "${source.table}",
        }
    )
    assert sink.run(config).records == 20
    ordered = f"SELECT {COLUMNS} FROM test001 ORDER BY seq"
    assert sandbox.rows(target_db, ordered) == sandbox.rows(source_db, ordered)


def test_a_stopped_cdc_pair_moves_nothing_and_resumed_carries_what_came_meanwhile(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_db, target_db = sandbox.database("mungmo"), sandbox.database("member")
    sandbox.execute(source_db, TEST001, "INSERT INTO test001 (member_name, created_at) VALUES ('회원', NOW(3))")
    cdc = Cdc(sandbox, [source_db])
    topic = cdc.topic(source_db, "test001")
    sandbox.topics.add(topic)
    with project(sandbox, tmp_path, monkeypatch) as box:
        bodies = on_sandbox(cdc, source_db, target_db)
        for body in bodies:
            box.write(body)
        defs = box.definitions()
        source, sink = (body["name"] for body in bodies)
        job = pipeline_job_name(load_connectors(box.connectors).sources[0])
        assert box.run(defs, source, job).success
        states = TargetStateStore(sandbox.kafka, box.status_topic)
        for name in (source, sink):
            states.put(name, TargetState.STOPPED, "test")
        sandbox.execute(source_db, "UPDATE test001 SET member_name = '이름 바뀜'", "DELETE FROM test001")
        skipped = box.run(defs, source, job)
        assert skipped.success and materialized(skipped) == {}
        assert f"connector '{source}' is STOPPED" in box.instance.get_run_by_id(skipped.run_id).tags[SKIPPED_TAG]
        assert len(read_raw(sandbox, topic)) == 1  # the snapshot's record only
        for name in (source, sink):
            states.put(name, TargetState.RUNNING, "test")
        resumed = box.run(defs, source, job)
        assert materialized(resumed)[AssetKey(["kafka", topic])]["events"] == {"u": 1, "d": 1}
        assert sandbox.rows(target_db, "SELECT COUNT(*) FROM test001") == [(0,)]
        # The operations see the pair's runs: its pipeline job, the source's step and change sensor.
        status = box.connect().status(source)["mungmo"]
        assert status["last_run"]["run_id"] == resumed.run_id and status["last_run"]["job"] == job
        assert list(status["sensors"]) == [f"{job_name(source)}_changes"]
        assert box.connect().status(sink)["mungmo"]["last_run"]["run_id"] == resumed.run_id
