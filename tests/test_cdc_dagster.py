"""The CDC source's Dagster side: lineage as the JDBC source gives it, the binlog sensor, run metadata,
and the run that keeps streaming while changes come."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from dagster import AssetKey, DagsterInstance, build_sensor_context

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.settings import kafka_bootstrap
from mungmo_pipelines.core.source.cdc.reader import CdcRead
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from tests.support.binlog import connect
from tests.support.cdc import Cdc
from tests.support.sandbox import Sandbox

TABLE = "CREATE TABLE {} (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL) DEFAULT CHARSET=utf8mb4"


def test_lineage_sensor_and_run_metadata(sandbox: Sandbox, tmp_path: Path) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE.format("dogs"), TABLE.format("cats"), "INSERT INTO dogs VALUES (1, '초코')")
    cdc = Cdc(sandbox, [database])
    body = cdc.body()
    (tmp_path / "cdc.json").write_text(json.dumps(body))
    defs = build_definitions(load_connectors(tmp_path))
    graph = defs.resolve_asset_graph()
    for table in ("dogs", "cats"):
        assert graph.get(AssetKey(["kafka", cdc.topic(database, table)])).parent_keys == {AssetKey([database, table])}
    sensor = defs.resolve_sensor_def(f"{job_name(body['name'])}_changes")
    resources = {"mariadb": MariaDBResource(), "kafka": KafkaResource(bootstrap_servers=kafka_bootstrap())}
    job = defs.resolve_job_def(job_name(body["name"]))

    def tick(instance: DagsterInstance, cursor: str | None):
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
            return sensor.evaluate_tick(context)

    with DagsterInstance.ephemeral() as instance:
        first = tick(instance, None)
        (request,) = first.run_requests  # no offset yet: the first run snapshots
        result = job.execute_in_process(instance=instance)
        assert result.success
        metadata = {
            event.materialization.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()
        }
        dogs = metadata[AssetKey(["kafka", cdc.topic(database, "dogs")])]
        assert dogs["events"] == {"r": 1} and dogs["events_by_op"] == {"r": 1}
        assert dogs["snapshot_progress"].startswith("1 of ~") and dogs["started_with"] == "snapshot"
        assert dogs["position_after"]["gtids"] and dogs["lag_bytes_behind_head"] >= 0
        # The topic's columns are the table's, each from the table's column (what the UI draws as column lineage).
        names = [column.name for column in dogs["dagster/column_schema"].columns]
        assert names == ["id", "v"]
        assert {
            name: [(dep.asset_key, dep.column_name) for dep in deps]
            for name, deps in dogs["dagster/column_lineage"].deps_by_column.items()
        } == {name: [(AssetKey([database, "dogs"]), name)] for name in names}
        cats = metadata[AssetKey(["kafka", cdc.topic(database, "cats")])]  # snapshotted empty
        assert (cats["events"], cats["snapshot_rows"]) == ({"r": 0}, "0 of ~0")

        caught_up = tick(instance, first.cursor)
        assert caught_up.run_requests == [] and "at the stored position" in caught_up.skip_message

        sandbox.execute(database, "INSERT INTO cats VALUES (1, '나비')", "UPDATE dogs SET v = '보리'")
        later = tick(instance, caught_up.cursor)
        (second,) = later.run_requests
        assert second.run_key != request.run_key
        result = job.execute_in_process(instance=instance)
        streamed = {
            event.materialization.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()
        }
        assert streamed[AssetKey(["kafka", cdc.topic(database, "dogs")])]["events"] == {"u": 1}
        assert streamed[AssetKey(["kafka", cdc.topic(database, "cats")])]["events"] == {"c": 1}
        assert streamed[AssetKey(["kafka", cdc.topic(database, "cats")])]["transactions"] == 1
        assert streamed[AssetKey(["kafka", cdc.topic(database, "cats")])]["lag_seconds_behind_newest_event"] >= 0


def test_a_run_keeps_streaming_while_changes_come_up_to_its_duration(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE.format("t"))
    cdc = Cdc(sandbox, [database], {"mungmo.streaming.duration.ms": "60000", "mungmo.streaming.idle.ms": "1500"})
    cdc.run()
    stop = threading.Event()

    def writer() -> None:
        connection = connect(database)
        with connection.cursor() as cursor:
            for key in range(1, 40):
                if stop.is_set():
                    break
                cursor.execute("INSERT INTO t VALUES (%s, 'x')", (key,))
                time.sleep(0.1)
        connection.close()

    thread = threading.Thread(target=writer)
    started = time.monotonic()
    thread.start()
    try:
        run = cdc.run()
    finally:
        stop.set()
        thread.join()
    # It caught changes written after it started, and ended 1.5 s after the last one, not at 60 s.
    assert run.stats.events["c"] == 39
    assert run.stats.stopped_because == "no change for mungmo.streaming.idle.ms (1500)"
    assert 1.5 < time.monotonic() - started < 30
    bounded = cdc.run(**{"mungmo.streaming.duration.ms": "1000"})
    assert bounded.stats.stopped_because in (
        "mungmo.streaming.duration.ms (1000) reached",
        "no change for mungmo.streaming.idle.ms (1500)",
    )


def test_a_following_run_hears_from_an_idle_server_within_half_a_transaction_interval(sandbox: Sandbox) -> None:
    """A run that keeps streaming commits its open Kafka transaction at the first event or server heartbeat
    after the transaction is due; the heartbeat comes every half interval, so a change written just before
    the binlog goes quiet is not held back for a long heartbeat (bench/cdc.py measures the latency)."""
    database = sandbox.database("src")
    cdc = Cdc(sandbox, [database], {"mungmo.streaming.duration.ms": "600000", "mungmo.streaming.idle.ms": "60000"})
    config = cdc.config()
    read = CdcRead(config, config.connection, sandbox.kafka, None)
    assert read._replica().heartbeat_seconds == 0.5  # transaction.boundary.interval.ms 1000
    config = cdc.config(**{"transaction.boundary.interval.ms": "100"})
    assert CdcRead(config, config.connection, sandbox.kafka, None)._replica().heartbeat_seconds == 0.1
    config = cdc.config(**{"mungmo.streaming.duration.ms": "0"})  # a run that stops at the head
    assert CdcRead(config, config.connection, sandbox.kafka, None)._replica().heartbeat_seconds == 1.0
