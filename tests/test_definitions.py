"""The Dagster layer: definitions load, lineage and job names, and a job run on real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.definitions import REPLICATE_ALL_JOB, build_definitions
from mungmo_pipelines.sensors.source_changes import CONNECTOR_TAG
from tests.support.sandbox import Sandbox
from tests.support.tables import TEST001

ROOT = Path(__file__).resolve().parents[1]


def test_project_definitions_load_with_seed_lineage() -> None:
    from mungmo_pipelines import defs

    graph = defs.resolve_asset_graph()
    source_table = AssetKey(["mungMo", "test001"])
    topic = AssetKey(["kafka", "my_topic_test001"])
    target_table = AssetKey(["mungmoMember", "my_topic_test001"])
    assert graph.get(topic).parent_keys == {source_table}
    assert graph.get(target_table).parent_keys == {topic}
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"test_connect_mungmo_test001", "my_sink_connect_member_test001", REPLICATE_ALL_JOB} <= jobs


def test_job_names_replace_every_character_outside_identifier_set() -> None:
    assert job_name("my-sink.connect member/001") == "my_sink_connect_member_001"


def test_replicate_all_job_runs_sources_before_sinks(sandbox: Sandbox, tmp_path: Path) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("dst")
    sandbox.execute(source_db, TEST001)
    sandbox.execute(
        source_db,
        *[
            "INSERT INTO test001 (member_name, pet_name, neutered, created_at) VALUES ('멍멍', '보리', 1, NOW(3))"
            for _ in range(7)
        ],
    )
    topic = sandbox.topic("test001")
    source = sandbox.source_body(
        source_db, mode="incrementing", **{"incrementing.column.name": "seq", "table.whitelist": "test001"}
    )
    sink = sandbox.sink_body(target_db, topics=topic, **{"auto.create": "true"})
    (tmp_path / "source.json").write_text(json.dumps(source))
    (tmp_path / "sink.json").write_text(json.dumps(sink))
    connectors = load_connectors(tmp_path)
    defs = build_definitions(connectors)
    # Every run of a job that runs the source carries its name, which dagster.yaml's run queue serializes.
    for name in (job_name(source["name"]), pipeline_job_name(connectors.sources[0])):
        assert defs.resolve_job_def(name).tags[CONNECTOR_TAG] == source["name"], name
    assert CONNECTOR_TAG not in defs.resolve_job_def(job_name(sink["name"])).tags

    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(REPLICATE_ALL_JOB).execute_in_process(instance=instance)
        assert result.success
        by_key = {
            event.materialization.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()
        }
        assert by_key[AssetKey(["kafka", topic])]["rows_read"] == 7
        assert by_key[AssetKey([target_db, topic])]["rows_inserted"] == 7
        assert by_key[AssetKey([target_db, topic])]["lag_after"] == 0
        again = defs.resolve_job_def(job_name(source["name"])).execute_in_process(instance=instance)
        assert again.success
        (event,) = again.get_asset_materialization_events()
        assert event.materialization.metadata["rows_read"].value == 0
    assert len(sandbox.rows(target_db, f"SELECT * FROM `{topic}`")) == 7


def test_dagster_cli_loads_the_project() -> None:
    """What `dagster definitions validate` and `dg check defs` see, from the project root."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for command in (["dagster", "definitions", "validate", "-m", "mungmo_pipelines"], ["dg", "check", "defs"]):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
