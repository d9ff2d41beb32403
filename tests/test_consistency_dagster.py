"""The consistency checks in Dagster: after every run that writes a target table, alone from their jobs,
blocking when the sink asks, and the repair job fixing what the last check found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, Definitions, ExecuteInProcessResult

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.checks.consistency import COUNT_CHECK, COUNT_CHECK_JOB, ROWS_CHECK, ROWS_CHECK_JOB
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.consistency.store import latest_result
from mungmo_pipelines.core.source.cdc.incremental import signal_table_ddl
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.schedules.consistency import COUNT_SCHEDULE, ROWS_SCHEDULE
from mungmo_pipelines.sensors.source_changes import CONNECTOR_TAG
from tests.support.cdc import Cdc
from tests.support.consistency import (
    DEBEZIUM_SINK,
    FILL_MEMBERS,
    MEMBERS_DDL,
    REPAIRABLE_SINK,
    CdcReplication,
)
from tests.support.sandbox import Sandbox


class Project:
    """Connector bodies in a directory, their definitions and an instance, on a sandbox."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path, **sink_options: str) -> None:
        self.sandbox = sandbox
        self.source_db, self.target_db = sandbox.database("src"), sandbox.database("tgt")
        sandbox.execute(self.source_db, MEMBERS_DDL, FILL_MEMBERS.format(rows=300))
        self.topic = sandbox.topic("members")
        source = sandbox.source_body(
            self.source_db,
            mode="timestamp+incrementing",
            **{"incrementing.column.name": "id", "timestamp.column.name": "updated_at", "table.whitelist": "members"},
        )
        sink = sandbox.sink_body(self.target_db, topics=self.topic, **{**REPAIRABLE_SINK, **sink_options})
        for body in (source, sink):
            (tmp_path / f"{body['name']}.json").write_text(json.dumps(body))
        self.source_name, self.sink_name = source["name"], sink["name"]
        self.connectors = load_connectors(tmp_path)
        self.defs: Definitions = build_definitions(self.connectors)
        self.instance = DagsterInstance.ephemeral()
        self.target = AssetKey([self.target_db, self.topic])

    def run(self, job: str, run_config: dict[str, Any] | None = None) -> ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, run_config=run_config, raise_on_error=False
        )

    def evaluations(self, result: ExecuteInProcessResult) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for event in result.all_events:
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                evaluation = event.event_specific_data
                assert evaluation.asset_key == self.target
                found.setdefault(evaluation.check_name, []).append(evaluation)
        return found

    def break_target(self) -> None:
        table = f"`{self.topic}`"
        self.sandbox.execute(
            self.target_db,
            f"DELETE FROM {table} WHERE id = 10",
            f"UPDATE {table} SET name = 'edited by hand' WHERE id = 20",
            f"INSERT INTO {table} (id, name, updated_at) VALUES (999, 'extra', NOW())",
        )


@pytest.fixture
def project(sandbox: Sandbox, tmp_path: Path) -> Iterator[Project]:
    made = Project(sandbox, tmp_path)
    yield made
    made.instance.dispose()


def values(evaluation: Any) -> dict[str, Any]:
    return {name: value.value for name, value in evaluation.metadata.items()}


def test_the_checks_run_after_the_pipeline_run_and_report_numbers(project: Project) -> None:
    checks = project.defs.resolve_asset_graph().asset_check_keys
    assert {AssetCheckKey(project.target, ROWS_CHECK), AssetCheckKey(project.target, COUNT_CHECK)} <= checks
    result = project.run(pipeline_job_name(project.connectors.sources[0]))
    assert result.success
    evaluations = project.evaluations(result)
    (rows,), (count,) = evaluations[ROWS_CHECK], evaluations[COUNT_CHECK]
    assert rows.passed and count.passed
    metadata = values(rows)
    assert (metadata["source_rows"], metadata["target_rows"], metadata["rows_compared"]) == (300, 300, 600)
    assert metadata["missing"] == metadata["extra"] == metadata["different"] == metadata["in_flight"] == 0
    assert metadata["chunks"] >= 1 and metadata["duration_s"] > 0 and metadata["caught_up"] is True
    assert metadata["first_differences"] == []
    assert set(metadata["compared_position"]) == {"source_offset", "end_offsets"}
    assert isinstance(metadata["stored_result_id"], int)
    assert values(count)["source_unsent"] == 0 and rows.description == ("300 source rows and 300 target rows match")
    # Every job that writes the table runs its checks after it: the sink's own and replicate_all too.
    sink_job = project.run(job_name(project.sink_name))
    assert sink_job.success and set(project.evaluations(sink_job)) == {ROWS_CHECK, COUNT_CHECK}


def test_a_check_job_alone_names_the_broken_rows_and_the_repair_job_fixes_them(project: Project) -> None:
    assert project.run(pipeline_job_name(project.connectors.sources[0])).success
    project.break_target()
    checked = project.run(ROWS_CHECK_JOB)
    assert checked.success, "a failing check that is not blocking does not fail its run"
    (rows,) = project.evaluations(checked)[ROWS_CHECK]
    assert not rows.passed
    assert rows.description == "1 missing, 1 different; the timestamp+incrementing mode explains 1 extra"
    metadata = values(rows)
    assert (metadata["missing"], metadata["different"], metadata["explained"]) == (1, 1, 1)
    assert {(d["kind"], d["key"][0]) for d in metadata["first_differences"]} == {("missing", 10), ("different", 20)}
    assert [d["columns"] for d in metadata["first_differences"] if d["kind"] == "different"] == [["name"]]
    stored = latest_result(
        project.sandbox.engine(project.target_db),
        f"{project.source_db}.members",
        f"{project.target_db}.{project.topic}",
        ROWS_CHECK,
    )
    assert stored is not None and stored.counts() == {
        "missing": 1,
        "extra": 0,
        "different": 1,
        "explained": 1,
        "in_flight": 0,
    }
    counted = project.run(COUNT_CHECK_JOB)
    (count,) = project.evaluations(counted)[COUNT_CHECK]
    assert count.passed, "300 rows sent, 300 in the target: the count cannot see a swap of one row for another"

    repair = project.defs.resolve_job_def(f"{job_name(project.source_name)}_repair")
    assert repair.tags[CONNECTOR_TAG] == project.source_name
    repaired = project.run(repair.name, {"ops": {repair.nodes[0].name: {"config": {"last_check": True}}}})
    assert repaired.success
    (after,) = project.evaluations(repaired)[ROWS_CHECK]
    assert after.passed and values(after)["explained"] == 0
    observed = [
        e.event_specific_data.asset_observation
        for e in repaired.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    (observation,) = [o for o in observed if o.asset_key == AssetKey(["kafka", project.topic])]
    assert (observation.metadata["repair_rows_sent"].value, observation.metadata["repair_tombstones_sent"].value) == (
        2,
        1,
    )
    history = project.instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(project.target, ROWS_CHECK), limit=5
    )
    assert [record.event.dagster_event.event_specific_data.passed for record in history[:2]] == [True, False]


def test_a_blocking_check_fails_the_run_that_wrote_the_table(sandbox: Sandbox, tmp_path: Path) -> None:
    project = Project(sandbox, tmp_path, **{"mungmo.consistency.blocking": "true"})
    try:
        assert project.run(pipeline_job_name(project.connectors.sources[0])).success
        project.break_target()
        result = project.run(job_name(project.sink_name))
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "blocking asset check failed" in failure.event_specific_data.error.message
        assert project.evaluations(result)[ROWS_CHECK][0].blocking is True
    finally:
        project.instance.dispose()


def test_bad_repair_config_is_named(project: Project) -> None:
    repair = project.defs.resolve_job_def(f"{job_name(project.source_name)}_repair")
    op = repair.nodes[0].name
    nothing = project.run(repair.name, {"ops": {op: {"config": {}}}})
    assert not nothing.success
    message = next(e for e in nothing.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data
    assert "give keys, ranges or last_check: true" in message.error.message
    bad = project.run(repair.name, {"ops": {op: {"config": {"ranges": [[1, 2, 3]]}}}})
    message = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data
    assert "ranges[0]: expected [from, to], got [1, 2, 3]" in message.error.message


def test_the_schedules_and_their_default_status(project: Project) -> None:
    rows = project.defs.resolve_schedule_def(ROWS_SCHEDULE)
    count = project.defs.resolve_schedule_def(COUNT_SCHEDULE)
    assert (rows.cron_schedule, rows.job_name, rows.default_status.value) == ("0 3 * * *", ROWS_CHECK_JOB, "RUNNING")
    assert (count.cron_schedule, count.job_name, count.default_status.value) == (
        "30 * * * *",
        COUNT_CHECK_JOB,
        "STOPPED",
    )
    assert rows.execution_timezone == count.execution_timezone == "Asia/Seoul"


class CdcProject(Project):
    """A Debezium CDC source (a signal table of its own) and Debezium's JDBC sink on its members topic
    (its own bodies: Project.__init__ writes a JDBC pair)."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.source_db, self.target_db = sandbox.database("src"), sandbox.database("tgt")
        signal_db = sandbox.database("sig")
        sandbox.execute(self.source_db, MEMBERS_DDL, FILL_MEMBERS.format(rows=300))
        sandbox.execute(signal_db, signal_table_ddl(signal_db, "debezium_signal"))
        cdc = Cdc(sandbox, [self.source_db], {"signal.data.collection": f"{signal_db}.debezium_signal"})
        self.topic = cdc.topic(self.source_db, "members")
        sandbox.topics.update({self.topic, cdc.topic(signal_db, "debezium_signal")})
        source = cdc.body()
        sink = CdcReplication.debezium_sink_body(sandbox, self.target_db, self.topic, DEBEZIUM_SINK)
        for body in (source, sink):
            (tmp_path / f"{body['name']}.json").write_text(json.dumps(body))
        self.source_name, self.sink_name = source["name"], sink["name"]
        self.connectors = load_connectors(tmp_path)
        self.defs = build_definitions(self.connectors)
        self.instance = DagsterInstance.ephemeral()
        self.table = self.topic.replace(".", "_")
        self.target = AssetKey([self.target_db, self.table])


def test_cdc_targets_are_checked_after_their_runs_and_repaired_by_the_cdc_repair_job(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = CdcProject(sandbox, tmp_path)
    try:
        checks = project.defs.resolve_asset_graph().asset_check_keys
        assert {AssetCheckKey(project.target, ROWS_CHECK), AssetCheckKey(project.target, COUNT_CHECK)} <= checks
        source = project.connectors.sources[0]
        result = project.run(pipeline_job_name(source))
        assert result.success
        (rows,), (count,) = project.evaluations(result)[ROWS_CHECK], project.evaluations(result)[COUNT_CHECK]
        assert rows.passed and count.passed, rows.description
        metadata = values(rows)
        assert (metadata["source_rows"], metadata["target_rows"], metadata["in_flight"]) == (300, 300, 0)
        assert set(metadata["compared_position"]) == {"source_offset", "end_offsets"}
        assert metadata["compared_position"]["source_offset"]["gtids"]

        table = f"`{project.table}`"
        sandbox.execute(
            project.target_db,
            f"DELETE FROM {table} WHERE id = 10",
            f"UPDATE {table} SET name = 'edited by hand' WHERE id = 20",
            f"INSERT INTO {table} (id, name, updated_at) VALUES (999, 'extra', NOW())",
        )
        checked = project.run(ROWS_CHECK_JOB)
        (failed,) = project.evaluations(checked)[ROWS_CHECK]
        assert not failed.passed and failed.description == "1 missing, 1 extra, 1 different"

        repair = project.defs.resolve_job_def(f"{job_name(project.source_name)}_repair")
        assert repair.tags[CONNECTOR_TAG] == project.source_name
        repaired = project.run(repair.name, {"ops": {repair.nodes[0].name: {"config": {"last_check": True}}}})
        assert repaired.success
        (after,) = project.evaluations(repaired)[ROWS_CHECK]
        assert after.passed, after.description
        observation = next(
            e.event_specific_data.asset_observation
            for e in repaired.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
            and e.event_specific_data.asset_observation.asset_key == AssetKey(["kafka", project.topic])
        )
        sent = {name: observation.metadata[f"repair_{name}"].value for name in ("rows_sent", "delete_events_sent")}
        assert sent == {"rows_sent": 2, "delete_events_sent": 1}
    finally:
        project.instance.dispose()
