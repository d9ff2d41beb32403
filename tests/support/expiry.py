"""Shared by the neighbourhood verification expiry tests: a members table, events, Dagster instances, timelines."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunRecord,
    RunsFilter,
    ScheduleEvaluationContext,
    build_schedule_context,
)
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy import Engine, create_engine, make_url, text

from mungmo_pipelines.assets.verification import EXPIRY_JOB, SKIPPED_TAG, expiry_run_config
from mungmo_pipelines.core.expiry.members import MembersTable, members_table_ddl
from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end, topic_partitions
from mungmo_pipelines.core.mariadb.lock import lock_holder
from mungmo_pipelines.core.settings import MEMBERS_JDBC_URL, VERIFICATION_EXPIRY_TOPIC, mariadb_admin_url
from tests.support.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
TABLE = MembersTable()
# The project's workspace, by absolute path: dagster commands run outside the project root, where
# a developer's .env (written by `make demo`) would replace the test's DAGSTER_HOME and settings.
WORKSPACE = str(ROOT / "workspace.yaml")


@dataclass
class Members:
    """A sandbox database with the reference members table, reached as the ``mungmo`` user like the job."""

    sandbox: Sandbox
    database: str
    topic: str

    @property
    def engine(self) -> Engine:
        url = make_url(mariadb_admin_url())
        return create_engine(
            url.set(username="mungmo", password=os.environ["MUNGMO_DB_PASSWORD"], database=self.database)
        )

    @property
    def lock_name(self) -> str:
        return f"mungmo-verification-expiry:{self.database}.{TABLE.name}"

    def add(self, *verified_at: datetime | None, verified: bool = True) -> list[int]:
        """One member per time (naive UTC DATETIME values), in order; returns their ids."""
        ids = []
        with self.sandbox.admin.begin() as conn:
            for moment in verified_at:
                result = conn.execute(
                    text(
                        f"INSERT INTO `{self.database}`.member "
                        "(nickname, neighbourhood, neighbourhood_verified, neighbourhood_verified_at) "
                        "VALUES (:n, '서울 마포구 망원동', :v, :at)"
                    ),
                    {"n": f"멍뭉이{len(ids)}", "v": int(verified), "at": moment},
                )
                ids.append(result.lastrowid)
        return ids

    def state(self) -> dict[int, tuple[int, datetime | None, datetime]]:
        """id -> (verified, verified_at, updated_at)."""
        rows = self.sandbox.rows(
            self.database, "SELECT id, neighbourhood_verified, neighbourhood_verified_at, updated_at FROM member"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def verified_ids(self) -> set[int]:
        return {member for member, (verified, _, _) in self.state().items() if verified}

    def outbox(self) -> list[str]:
        return [row[0] for row in self.sandbox.rows(self.database, f"SELECT event_id FROM {TABLE.outbox_table}")]

    def events(self, kafka: KafkaSettings) -> list[ConsumerRecord]:
        """Every committed event on the topic (``read_committed``), in offset order."""
        consumer = kafka.consumer(isolation_level="read_committed", enable_auto_commit=False)
        try:
            return list(read_to_end(consumer, topic_partitions(consumer, self.topic)))
        finally:
            consumer.close()

    def holder(self) -> int | None:
        holder = lock_holder(self.engine, self.lock_name)
        return holder.connection_id if holder else None

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The ``verification`` resource's run config for this sandbox.

        Run config replaces the resource's settings as a whole (unset fields fall back to the class
        defaults, not to the deployment's values), so it names the sandbox's database and topic again.
        """
        return {
            "jdbc_url": self.sandbox.jdbc_url(self.database),
            "topic": self.topic,
            "password": {"env": "MUNGMO_DB_PASSWORD"},
            **overrides,
        }

    def env(self, dagster_home: Path) -> dict[str, str]:
        """Environment for a ``dagster`` subprocess aimed at this sandbox."""
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DAGSTER_HOME": str(dagster_home),
            MEMBERS_JDBC_URL.name: self.sandbox.jdbc_url(self.database),
            VERIFICATION_EXPIRY_TOPIC.name: self.topic,
        }


def members(sandbox: Sandbox) -> Members:
    database = sandbox.database("members")
    sandbox.execute(database, members_table_ddl(TABLE))
    return Members(sandbox, database, sandbox.topic("expired"))


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def dagster_home(path: Path, **overrides: dict[str, Any]) -> Path:
    """A DAGSTER_HOME with the project's own ``dagster.yaml``, top-level sections overridden (faster polls).

    Its storage is created here, once: processes started together would race to create it.
    """
    config = yaml.safe_load((ROOT / ".dagster_home" / "dagster.yaml").read_text())
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    config["storage"] = {"sqlite": {"base_dir": str(path)}}
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(yaml.safe_dump(config))
    DagsterInstance.from_config(str(path)).dispose()
    return path


def tick_context(defs: Definitions, instance: DagsterInstance, tick: datetime) -> ScheduleEvaluationContext:
    """The schedule's context at ``tick`` with the definitions' resources (its probe needs them); use in ``with``."""
    return build_schedule_context(instance=instance, scheduled_execution_time=tick, resources=dict(defs.resources))


def job_run_config(
    as_of: datetime | None = None, hold_seconds: float = 0.0, verification: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The expiry job's run config; ``verification`` replaces the resource's settings (see Members.settings)."""
    run_config = expiry_run_config(as_of, hold_seconds)
    if verification:
        run_config["resources"] = {"verification": {"config": verification}}
    return run_config


def dagster_cli(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen[str]:
    """A ``dagster`` command run in the test's DAGSTER_HOME (not the project root: see ``WORKSPACE``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", *args],
        cwd=env["DAGSTER_HOME"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **popen,
    )


def job_execute(env: dict[str, str], run_config: dict[str, Any], config_dir: Path, tags: dict[str, str] | None = None):
    """``dagster job execute`` of the expiry job, as a started process."""
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / f"run-{time.monotonic_ns()}.yaml"
    config_file.write_text(yaml.safe_dump(run_config))
    args = ["job", "execute", "-m", "mungmo_pipelines.definitions", "-j", EXPIRY_JOB, "-c", str(config_file)]
    if tags:
        args += ["--tags", json.dumps(tags)]
    return dagster_cli(*args, env=env)


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_for_holder(members: Members, process: subprocess.Popen[str], timeout_s: float = 90) -> int:
    """The connection id holding the members' lock, once ``process`` has taken it."""

    def taken() -> int | None:
        if process.poll() is not None:
            raise AssertionError(
                f"the run ended (exit {process.returncode}) before it held the lock:\n"
                + (process.stdout.read() if process.stdout else "")
            )
        return members.holder()

    return wait_for(taken, timeout_s, "the run to take the lock")


def job_runs(instance: DagsterInstance) -> list[RunRecord]:
    return sorted(
        instance.get_run_records(RunsFilter(job_name=EXPIRY_JOB)),
        key=lambda record: record.create_timestamp,
    )


def materialization(instance: DagsterInstance, run_id: str) -> dict[str, Any] | None:
    """The members table's materialization metadata of one run, if it materialized it."""
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.is_step_materialization:
            metadata = event.step_materialization_data.materialization.metadata
            if "expired" in metadata:
                return {key: value.value for key, value in metadata.items()}
    return None


def timeline(instance: DagsterInstance, records: Iterable[RunRecord] | None = None) -> str:
    """Each run's start/end and, when it did the work, when it held the lock; or why it skipped."""
    rows = []
    chosen = records if records is not None else job_runs(instance)
    for record in sorted(chosen, key=lambda r: r.start_time or float("inf")):
        run = record.dagster_run
        done = materialization(instance, run.run_id)
        held = f"lock {done['lock_acquired_at'][11:]} -> {done['lock_released_at'][11:]}" if done else ""
        rows.append(
            f"{run.run_id[:8]} {run.status.value:<9} "
            f"start {_clock(record.start_time)} end {_clock(record.end_time)} "
            f"{held}{run.tags.get(SKIPPED_TAG, '')}" + (f" expired={done['expired']}" if done else "")
        )
    return "\n".join(rows)


def _clock(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S.%f")[:-3] if timestamp else "-" * 12


def intervals_overlap(intervals: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """Pairs of indexes whose [start, end] intervals overlap."""
    ordered = sorted(range(len(intervals)), key=lambda i: intervals[i][0])
    return [(a, b) for a, b in itertools.pairwise(ordered) if intervals[b][0] < intervals[a][1]]


def finished(instance: DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.status in (
        DagsterRunStatus.SUCCESS,
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
    )
