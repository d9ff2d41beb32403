"""The source's Dagster side: change sensor, one asset per table, run metadata, unreachable database at load."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, build_sensor_context, instance_for_test

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.settings import kafka_bootstrap
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from mungmo_pipelines.sensors.source_changes import (
    ChangeCursor,
    minimum_interval_seconds,
    poll_seconds,
    queue_runs_one_per_source,
)
from tests.support.sandbox import Sandbox
from tests.support.source import source_config, writer

PETS = "CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)"


class Project:
    """A connectors directory with one multi-table source, loaded as Dagster definitions."""

    def __init__(self, sandbox: Sandbox, directory: Path, **options: str) -> None:
        self.sandbox = sandbox
        self.database = sandbox.database("src")
        sandbox.execute(self.database, PETS.format(name="dogs"), PETS.format(name="cats"))
        self.topics = {"dogs": sandbox.topic("dogs"), "cats": sandbox.topic("cats")}
        self.body = sandbox.source_body(self.database, mode="incrementing", **options)
        (directory / "source.json").write_text(json.dumps(self.body))
        self.defs = build_definitions(load_connectors(directory))
        self.job = job_name(self.body["name"])
        self.sensor = self.defs.resolve_sensor_def(f"{self.job}_changes")
        self.resources = {"mariadb": MariaDBResource(), "kafka": KafkaResource(bootstrap_servers=kafka_bootstrap())}

    def tick(self, instance: DagsterInstance, cursor: str | None):
        with build_sensor_context(instance=instance, cursor=cursor, resources=self.resources) as context:
            return self.sensor.evaluate_tick(context)

    def run_job(self, instance: DagsterInstance, table: str, done: Callable[[dict], bool]) -> dict:
        """Run the connector's job until ``table``'s metadata satisfies ``done`` (see ``run_until``).

        Returns the last run's metadata per asset key.
        """
        deadline = time.monotonic() + 30
        while True:
            result = self.defs.resolve_job_def(self.job).execute_in_process(instance=instance)
            assert result.success
            metadata = {
                event.materialization.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
                for event in result.get_asset_materialization_events()
            }
            found = metadata[AssetKey(["kafka", self.topics[table]])]
            if done(found) or time.monotonic() > deadline:
                return metadata
            time.sleep(0.3)

    def insert(self, table: str, *names: str) -> None:
        values = ", ".join(f"('{n}')" for n in names)
        self.sandbox.execute(self.database, f"INSERT INTO {table} (name) VALUES {values}")


def test_one_change_requests_one_run_and_a_caught_up_connector_none(sandbox: Sandbox, tmp_path: Path) -> None:
    project = Project(sandbox, tmp_path)
    with DagsterInstance.ephemeral() as instance:
        idle = project.tick(instance, None)
        assert idle.run_requests == [] and "at its offset" in idle.skip_message

        project.insert("dogs", "초코", "보리")
        first = project.tick(instance, idle.cursor)
        (request,) = first.run_requests
        assert request.tags["mungmo/source"] == project.body["name"]
        repeat = project.tick(instance, first.cursor)
        assert repeat.run_requests == [], "the same change must not request a second run"

        metadata = project.run_job(instance, "dogs", lambda m: m["offset_after"].get("incrementing") == 2)
        assert set(metadata) == {AssetKey(["kafka", topic]) for topic in project.topics.values()}
        dogs = metadata[AssetKey(["kafka", project.topics["dogs"]])]
        assert (dogs["rows_read"], dogs["records_produced"], dogs["transactions"]) == (2, 2, 1)
        assert dogs["bytes_produced"] > 0 and dogs["duration_s"] >= 0 and dogs["held_back"] == "nothing"

        caught_up = project.tick(instance, repeat.cursor)
        assert caught_up.run_requests == []
        cursor = ChangeCursor.load(caught_up.cursor)
        assert cursor.positions and list(cursor.offsets.values()) == [{"incrementing": 2}]

        project.insert("cats", "나비")
        later = project.tick(instance, caught_up.cursor)
        (second,) = later.run_requests
        assert second.run_key != request.run_key


def test_held_back_rows_are_retried_once_per_poll_interval(sandbox: Sandbox, tmp_path: Path) -> None:
    project = Project(sandbox, tmp_path, **{"table.whitelist": "dogs"})
    project.insert("dogs", "a")
    slow = writer(project.database)
    try:
        slow.cursor().execute("INSERT INTO dogs (name) VALUES ('late')")
        project.insert("dogs", "early")
        with DagsterInstance.ephemeral() as instance:
            first = project.tick(instance, None)
            assert len(first.run_requests) == 1
            held = project.run_job(instance, "dogs", lambda m: True)
            assert "open write transaction" in held[AssetKey(["kafka", project.topics["dogs"]])]["held_back"]
            waiting = project.tick(instance, first.cursor)
            assert waiting.run_requests == []
            cursor = ChangeCursor.load(waiting.cursor)
            cursor.requested_at -= poll_seconds(source_config(sandbox, project.database, mode="incrementing"))
            retry = project.tick(instance, cursor.dump())
            (request,) = retry.run_requests
            assert request.run_key.endswith(":1")
    finally:
        slow.rollback()
        slow.close()


def project_queue_settings() -> dict:
    """The run-queue part of the project's own ``dagster.yaml`` (its storage would be the real one)."""
    settings = yaml.safe_load((Path(__file__).parents[1] / ".dagster_home" / "dagster.yaml").read_text())
    return {key: settings[key] for key in ("concurrency", "run_queue")}


def test_rows_arriving_during_a_run_queue_one_more_only_where_the_queue_holds_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = Project(sandbox, tmp_path)
    target = project.sensor.job_name
    project.insert("dogs", "a")
    with instance_for_test(overrides=project_queue_settings()) as instance:
        assert queue_runs_one_per_source(instance)
        first = project.tick(instance, None)
        (request,) = first.run_requests
        instance.add_run(DagsterRun(job_name=target, run_id="1" * 36, status=DagsterRunStatus.STARTED))
        same = project.tick(instance, first.cursor)
        assert same.run_requests == [] and "is reading these rows" in same.skip_message
        project.insert("dogs", "b")
        during = project.tick(instance, same.cursor)
        (behind,) = during.run_requests
        assert behind.run_key != request.run_key and behind.tags["mungmo/source"] == project.body["name"]
        instance.add_run(DagsterRun(job_name=target, run_id="2" * 36, status=DagsterRunStatus.STARTING))
        project.insert("dogs", "c")
        waiting = project.tick(instance, during.cursor)
        assert waiting.run_requests == [] and "is starting" in waiting.skip_message
    with DagsterInstance.ephemeral() as instance:  # runs launch at once: a second would overlap the first
        assert not queue_runs_one_per_source(instance)
        instance.add_run(DagsterRun(job_name=target, run_id="3" * 36, status=DagsterRunStatus.STARTED))
        alone = project.tick(instance, None)
        assert alone.run_requests == [] and "is started" in alone.skip_message


@pytest.mark.parametrize(
    ("poll_ms", "seconds", "asked"), [("100", 5, 1), ("5000", 5, 1), ("60000", 60, 56), ("90500", 91, 87)]
)
def test_sensor_interval_follows_poll_interval_within_the_daemon_loop(
    sandbox: Sandbox, poll_ms: str, seconds: int, asked: int
) -> None:
    """The daemon checks every 5 s: asking for ``seconds - 4`` lands each tick on the check ``seconds`` later."""
    config = source_config(sandbox, "anydb", mode="bulk", **{"poll.interval.ms": poll_ms})
    assert (poll_seconds(config), minimum_interval_seconds(config)) == (seconds, asked)


def test_unreachable_database_at_load_gives_one_placeholder_asset(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MUNGMO_MARIADB_URL", raising=False)
    monkeypatch.delenv("MUNGMO_MARIADB_PORT", raising=False)
    body = sandbox.source_body("mungMo", mode="incrementing")
    body["config"]["connection.url"] = "jdbc:mysql://127.0.0.1:1/mungMo"
    (tmp_path / "source.json").write_text(json.dumps(body))
    defs = build_definitions(load_connectors(tmp_path))
    source_job = defs.resolve_job_def(job_name(body["name"]))
    assert set(source_job.asset_layer.selected_asset_keys) == {AssetKey(["kafka", f"{job_name(body['name'])}__topics"])}
