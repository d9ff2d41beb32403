"""The sink in Dagster: table and topic metadata, the lag sensor, and the source-to-sink pipeline job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SensorResult,
    build_sensor_context,
)

from mungmo_pipelines.assets.keys import job_name, lag_sensor_name, pipeline_job_name
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_server_url
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from mungmo_pipelines.sensors import sink_lag as sink_sensors
from mungmo_pipelines.sensors.sink_lag import BACKLOG_TAG
from tests.support.sandbox import Sandbox
from tests.support.sink import member, produce
from tests.support.tables import TEST001


def write_connectors(tmp_path: Path, *bodies: dict) -> Path:
    for body in bodies:
        (tmp_path / f"{body['name']}.json").write_text(json.dumps(body))
    return tmp_path


def resources() -> dict:
    return {
        "mariadb": MariaDBResource(server_url=mariadb_server_url()),
        "kafka": KafkaResource(bootstrap_servers=kafka_bootstrap()),
    }


def observations(result, key: AssetKey) -> list[dict]:
    return [
        {k: v.value for k, v in event.asset_observation_data.asset_observation.metadata.items()}
        for event in result.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
        and event.asset_observation_data.asset_observation.asset_key == key
    ]


def test_sink_job_records_table_stats_and_observes_the_topic(sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.database("dst")
    topic = sandbox.topic("members")
    produce(sandbox.kafka, topic, [member(i, f"m{i}") for i in range(5)], partitions=2)
    sink = sandbox.sink_body(target, topics=topic, **{"auto.create": "true"})
    defs = build_definitions(load_connectors(write_connectors(tmp_path, sink)))
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(job_name(sink["name"])).execute_in_process(instance=instance)
    assert result.success
    (materialization,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in materialization.materialization.metadata.items()}
    assert materialization.materialization.asset_key == AssetKey([target, topic])
    assert metadata["rows_inserted"] == 5 and metadata["records_dead_lettered"] == 0
    assert (metadata["lag_before"], metadata["lag_after"]) == (5, 0)
    assert metadata["duration_s"] > 0
    (observed,) = observations(result, AssetKey(["kafka", topic]))
    assert observed["partitions"] == 2
    assert sum(observed["end_offsets"].values()) == 5
    assert observed["consumer_group"] == f"connect-{sink['name']}"
    assert (observed["lag_before"], observed["lag_after"]) == (5, 0)


def test_lag_sensor_requests_one_run_per_backlog(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = sandbox.database("dst")
    topic = sandbox.topic("members")
    sink = sandbox.sink_body(target, topics=topic, **{"auto.create": "true"})
    defs = build_definitions(load_connectors(write_connectors(tmp_path, sink)))
    sensor = next(s for s in defs.sensors if s.name == lag_sensor_name(load_connectors(tmp_path).sinks[0]))
    with DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None = None) -> SensorResult:
            with build_sensor_context(instance=instance, cursor=cursor, resources=resources()) as context:
                return sensor(context)

        quiet = tick()
        assert quiet.skip_reason is not None and "topics not created yet" in quiet.skip_reason.skip_message

        produce(sandbox.kafka, topic, [member(i, f"m{i}") for i in range(3)])
        first = tick()
        (request,) = first.run_requests
        assert json.loads(first.cursor)["lag"] == 3
        assert json.loads(first.cursor)["end_offsets"] == {topic: {"0": 3}}
        # The same backlog measured again gets the same run key, which Dagster starts only once.
        assert tick(first.cursor).run_requests[0].run_key == request.run_key

        # While the connector's job is about to start, the sensor waits for it.
        queued = DagsterRun(job_name=job_name(sink["name"]), run_id="0" * 36, status=DagsterRunStatus.NOT_STARTED)
        instance.add_run(queued)
        waiting = tick(first.cursor)
        assert waiting.skip_reason is not None and "is not_started" in waiting.skip_reason.skip_message
        instance.report_run_canceled(queued)
        # While it runs, the same backlog still maps to the same key: no second run for it.
        running = DagsterRun(job_name=job_name(sink["name"]), run_id="2" * 36, status=DagsterRunStatus.STARTED)
        instance.add_run(running)
        assert tick(first.cursor).run_requests[0].run_key == request.run_key
        instance.report_run_canceled(running)

        # A failed run of this backlog is requested again once its backoff has passed, under a numbered key.
        assert request.tags[BACKLOG_TAG] == request.run_key
        failed = DagsterRun(
            job_name=job_name(sink["name"]),
            run_id="3" * 36,
            status=DagsterRunStatus.FAILURE,
            tags={BACKLOG_TAG: request.run_key},
        )
        instance.add_run(failed)
        backing_off = tick(first.cursor)
        assert not backing_off.run_requests and backing_off.skip_reason is not None
        message = backing_off.skip_reason.skip_message
        waiting_s = re.fullmatch(r"run 3{36} for this backlog failed; next attempt in (\d+)s", message)
        assert waiting_s and 20 <= int(waiting_s[1]) <= 30, message  # of 30 s, less the ticks' own time
        monkeypatch.setattr(sink_sensors, "RETRY_BACKOFF_S", 0)
        (retry,) = tick(first.cursor).run_requests
        assert (retry.run_key, retry.tags[BACKLOG_TAG]) == (f"{request.run_key}:retry-1", request.run_key)

        result = defs.resolve_job_def(job_name(sink["name"])).execute_in_process(instance=instance)
        assert result.success
        done = tick(first.cursor)
        assert not done.run_requests and done.skip_reason.skip_message == "no lag"
        assert json.loads(done.cursor)["positions"] == {topic: {"0": 3}}

        produce(sandbox.kafka, topic, [member(9, "new")])
        (later,) = tick(done.cursor).run_requests
        assert later.run_key != request.run_key


def test_pipeline_job_publishes_then_sinks_in_one_in_process_run(sandbox: Sandbox, tmp_path: Path) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("dst")
    sandbox.execute(source_db, TEST001)
    sandbox.execute(
        source_db,
        "INSERT INTO test001 (member_name, pet_name, neutered, created_at) VALUES ('멍멍', '보리', 1, NOW(3))",
    )
    topic = sandbox.topic("test001")
    source = sandbox.source_body(
        source_db, mode="incrementing", **{"incrementing.column.name": "seq", "table.whitelist": "test001"}
    )
    sink = sandbox.sink_body(target_db, topics=topic, **{"auto.create": "true"})
    unrelated = sandbox.sink_body(target_db, topics=sandbox.topic("other"))
    unrelated["name"] += "-other"
    connectors = load_connectors(write_connectors(tmp_path, source, sink, unrelated))
    defs = build_definitions(connectors)
    job = defs.resolve_job_def(pipeline_job_name(connectors.sources[0]))
    assert job.name == f"{job_name(source['name'])}_pipeline"
    assert job.executor_def.name == "in_process"
    assert job.asset_layer.executable_asset_keys == {AssetKey(["kafka", topic]), AssetKey([target_db, topic])}
    sink_config = next(s for s in connectors.sinks if s.name == sink["name"])
    sensor = next(s for s in defs.sensors if s.name == lag_sensor_name(sink_config))
    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success
        assert len(sandbox.rows(target_db, f"SELECT * FROM `{topic}`")) == 1
        # The sink's lag sensor leaves the pipeline's sink step alone while the pipeline runs.
        instance.add_run(DagsterRun(job_name=job.name, run_id="1" * 36, status=DagsterRunStatus.STARTED))
        with build_sensor_context(instance=instance, resources=resources()) as context:
            waiting = sensor(context)
        assert waiting.skip_reason is not None and f"of {job.name} is started" in waiting.skip_reason.skip_message
