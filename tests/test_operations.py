"""Connector operations over HTTP (the Kafka Connect-compatible endpoint) against the real stack and a
Dagster instance: state switches, offsets read/reset/set for sources and sinks, skipped runs, restart,
add/update/delete, error shapes, concurrent creates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, build_sensor_context
from kafka import TopicPartition

from mungmo_pipelines.assets.keys import change_sensor_name, job_name, lag_sensor_name, pipeline_job_name
from mungmo_pipelines.assets.verification import SKIPPED_TAG
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.operations.state import TargetState
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_server_url
from mungmo_pipelines.definitions import REPLICATE_ALL_JOB
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from tests.support.operations import materialized, pipeline, project, serving
from tests.support.sandbox import Sandbox
from tests.support.source import end_offset

STOP_FIRST = "Connectors must be in the STOPPED state before their offsets can be modified"


def group_offsets(sandbox: Sandbox, group: str) -> dict[TopicPartition, int]:
    admin = sandbox.kafka.admin()
    try:
        return {tp: meta.offset for tp, meta in admin.list_group_offsets(group).get(group, {}).items()}
    finally:
        admin.close()


def sink_rows(sandbox: Sandbox, database: str, connector: str) -> list[tuple]:
    return sandbox.rows(
        database,
        f"SELECT topic, kafka_partition, next_offset FROM _connect_sink_offsets WHERE connector = '{connector}'",
    )


def test_stop_reset_and_set_offsets_replicate_again_from_the_start(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = pipeline(sandbox, rows=5)
    with project(sandbox, tmp_path, monkeypatch) as box:
        box.write(case.source), box.write(case.sink)
        defs = box.definitions()
        source, sink = case.source["name"], case.sink["name"]
        first = box.run(defs, source, REPLICATE_ALL_JOB)
        assert first.success
        with serving(box.connect()) as api:
            got = api.get(f"/connectors/{source}/offsets")
            table = {"protocol": "1", "table": f"{case.source_db}.test001"}
            assert got.status_code == 200 and got.json() == {
                "offsets": [{"partition": table, "offset": {"incrementing": 5}}]
            }
            partition = {"kafka_topic": case.topic, "kafka_partition": 0}
            first_end = end_offset(sandbox, case.topic)  # 5 records and a transaction marker
            assert api.get(f"/connectors/{sink}/offsets").json() == {
                "offsets": [{"partition": partition, "offset": {"kafka_offset": first_end}}]
            }
            # Refused while running, exactly as Kafka Connect refuses (400, its message).
            for method in ("DELETE", "PATCH"):
                refused = api.request(
                    method, f"/connectors/{sink}/offsets", json={"offsets": [{"partition": partition, "offset": None}]}
                )
                assert refused.status_code == 400 and refused.json()["message"].startswith(STOP_FIRST), refused.text
            for name in (source, sink):
                assert api.put(f"/connectors/{name}/stop").status_code == 204
            status = api.get(f"/connectors/{sink}/status").json()
            assert status["connector"]["state"] == "STOPPED" and status["tasks"] == []
            assert status["mungmo"]["last_run"]["status"] == "SUCCESS"
            assert status["mungmo"]["lag"]["records"] == 0

            reset = api.delete(f"/connectors/{source}/offsets")
            assert reset.status_code == 200
            assert reset.json() == {"message": "The offsets for this connector have been reset successfully"}
            assert api.delete(f"/connectors/{sink}/offsets").status_code == 200
            assert api.get(f"/connectors/{source}/offsets").json() == {"offsets": []}
            assert api.get(f"/connectors/{sink}/offsets").json() == {"offsets": []}
            assert sink_rows(sandbox, case.target_db, sink) == []
            assert group_offsets(sandbox, f"connect-{sink}") == {}, "a reset must not leave the group to fall back to"

            # A stopped connector's runs move nothing.
            skipped = box.run(defs, source, REPLICATE_ALL_JOB)
            assert skipped.success and materialized(skipped) == {}
            run = box.instance.get_run_by_id(skipped.run_id)
            assert f"connector '{source}' is STOPPED" in run.tags[SKIPPED_TAG]
            own = box.run(defs, sink)  # in replicate_all, Dagster skipped the sink's step after its source's
            assert (
                materialized(own) == {}
                and f"connector '{sink}' is STOPPED" in box.instance.get_run_by_id(own.run_id).tags[SKIPPED_TAG]
            )

            for name in (source, sink):
                assert api.put(f"/connectors/{name}/resume").status_code == 202
            again = materialized(box.run(defs, source, REPLICATE_ALL_JOB))
            assert again[AssetKey(["kafka", case.topic])]["rows_read"] == 5, "the source starts from the first row"
            written = again[AssetKey([case.target_db, case.topic])]
            assert written["lag_before"] == end_offset(sandbox, case.topic) > first_end, "the sink starts from offset 0"

            # Set: the source resumes after id 3, the sink at offset 10 (the end) in the table and the group alike.
            for name in (source, sink):
                api.put(f"/connectors/{name}/stop")
            patched = api.patch(
                f"/connectors/{source}/offsets", json={"offsets": [{"partition": table, "offset": {"incrementing": 3}}]}
            )
            assert patched.json() == {"message": "The offsets for this connector have been altered successfully"}
            end = end_offset(sandbox, case.topic)
            patched = api.patch(
                f"/connectors/{sink}/offsets",
                json={"offsets": [{"partition": partition, "offset": {"kafka_offset": end}}]},
            )
            assert patched.status_code == 200, patched.text
            assert sink_rows(sandbox, case.target_db, sink) == [(case.topic, 0, end)]
            assert group_offsets(sandbox, f"connect-{sink}") == {TopicPartition(case.topic, 0): end}
            for name in (source, sink):
                api.put(f"/connectors/{name}/resume")
            after = materialized(box.run(defs, source, REPLICATE_ALL_JOB))
            assert after[AssetKey(["kafka", case.topic])]["rows_read"] == 2
            assert after[AssetKey([case.target_db, case.topic])]["lag_before"] == end_offset(sandbox, case.topic) - end


def test_offsets_bodies_are_checked_before_anything_is_written(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = pipeline(sandbox, rows=2)
    with project(sandbox, tmp_path, monkeypatch) as box:
        box.write(case.source), box.write(case.sink)
        assert box.run(box.definitions(), case.source["name"], REPLICATE_ALL_JOB).success
        source, sink = case.source["name"], case.sink["name"]
        with serving(box.connect()) as api:
            api.put(f"/connectors/{source}/stop"), api.put(f"/connectors/{sink}/stop")
            topic, table = case.topic, f"{case.source_db}.test001"

            def sink_entry(partition: dict, offset: dict | None) -> tuple[str, str]:
                return sink, json.dumps({"offsets": [{"partition": partition, "offset": offset}]})

            def source_entry(partition: dict, offset: dict | None) -> tuple[str, str]:
                return source, json.dumps({"offsets": [{"partition": partition, "offset": offset}]})

            bad = {
                sink_entry({"kafka_topic": topic}, None): "must contain the keys 'kafka_topic' and 'kafka_partition'",
                sink_entry({"kafka_topic": topic, "kafka_partition": "x"}, None): (
                    "Partition values for sink connectors need to be integers"
                ),
                sink_entry({"kafka_topic": topic, "kafka_partition": 0}, {"kafka_offset": 99}): (
                    "is outside the topic's log (0..3)"
                ),
                sink_entry({"kafka_topic": "other", "kafka_partition": 0}, None): "does not read topic 'other'",
                source_entry({"protocol": "1", "table": "elsewhere.test001"}, {"incrementing": 1}): (
                    f"reads tables of database {case.source_db!r}"
                ),
                source_entry(
                    {"protocol": "1", "table": table}, {"timestamp": 1}
                ): "expected an offset with incrementing",
                (source, json.dumps({"offsets": []})): "Partitions / offsets need to be provided",
                (source, "{not json"): "request body is not valid JSON",
            }
            for (name, body), expected in bad.items():
                answer = api.patch(
                    f"/connectors/{name}/offsets", content=body, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 400 and expected in answer.json()["message"], (body, answer.text)
                assert answer.json()["error_code"] == 400
            assert api.get(f"/connectors/{source}/offsets").json()["offsets"][0]["offset"] == {"incrementing": 2}
            assert sink_rows(sandbox, case.target_db, sink) == [(case.topic, 0, 3)]


def test_paused_connector_sensors_skip_and_its_runs_end_skipped_on_every_launch_path(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = pipeline(sandbox, rows=3)
    with project(sandbox, tmp_path, monkeypatch) as box:
        box.write(case.source), box.write(case.sink)
        defs = box.definitions()
        source, sink = case.source["name"], case.sink["name"]
        connect = box.connect(by="cli")
        with serving(connect) as api:
            assert api.put(f"/connectors/{source}/pause").status_code == 202
            assert api.put(f"/connectors/{sink}/pause").status_code == 202
            status = api.get(f"/connectors/{source}/status").json()
            assert (status["connector"]["state"], status["tasks"][0]["state"]) == ("PAUSED", "PAUSED")
            assert status["mungmo"]["lag"]["tables_behind"] == 1, "three rows wait"
        resources = {
            "mariadb": MariaDBResource(server_url=mariadb_server_url()),
            "kafka": KafkaResource(bootstrap_servers=kafka_bootstrap()),
        }
        loaded = load_connectors(box.connectors)
        source_config, sink_config = loaded.sources[0], loaded.sinks[0]
        for sensor in (change_sensor_name(source_config), lag_sensor_name(sink_config)):
            with build_sensor_context(instance=box.instance, resources=resources) as context:
                result = defs.resolve_sensor_def(sensor).evaluate_tick(context)
            assert result.run_requests == [] and "is PAUSED" in result.skip_message, sensor
            assert "set through cli" in result.skip_message
        jobs = [job_name(source), pipeline_job_name(source_config), REPLICATE_ALL_JOB, job_name(sink)]
        for job in jobs:
            result = box.run(defs, source, job)
            assert result.success and materialized(result) == {}, job
            assert "is PAUSED" in box.instance.get_run_by_id(result.run_id).tags[SKIPPED_TAG]
        assert connect.offsets(source) == {"offsets": []}, "no offset stored: nothing was produced"
        assert sandbox.rows(case.target_db, "SHOW TABLES") == [], "no data moved"
        connect.set_state(source, TargetState.RUNNING)
        resumed = box.run(defs, source)
        assert materialized(resumed)[AssetKey(["kafka", case.topic])]["rows_read"] == 3
