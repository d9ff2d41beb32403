"""The MariaDB lock across processes started with ``dagster job execute`` (no queue, no daemon).

Each test prints its run timeline (``pytest -rP`` shows it on success too).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from mungmo_pipelines.assets.verification import SKIPPED_TAG
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.settings import MEMBERS_JDBC_URL, VERIFICATION_EXPIRY_TOPIC
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.schedules import EXPIRY_SCHEDULE
from tests.support.expiry import (
    Members,
    dagster_home,
    intervals_overlap,
    job_execute,
    job_run_config,
    job_runs,
    materialization,
    members,
    naive_utc,
    tick_context,
    timeline,
    wait_for,
    wait_for_holder,
)
from tests.support.sandbox import Sandbox

STALE = naive_utc(datetime.now(UTC) - timedelta(days=45))


@pytest.fixture
def box(sandbox: Sandbox) -> Members:
    return members(sandbox)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(path))
    return path


def lock_windows(instance: DagsterInstance) -> list[tuple[float, float]]:
    """When each run that did the work held the lock."""
    windows = []
    for record in job_runs(instance):
        done = materialization(instance, record.dagster_run.run_id)
        if done:
            windows.append(
                (
                    datetime.fromisoformat(done["lock_acquired_at"]).timestamp(),
                    datetime.fromisoformat(done["lock_released_at"]).timestamp(),
                )
            )
    return windows


def test_two_job_execute_processes_started_together_never_overlap(box: Members, home: Path, tmp_path: Path) -> None:
    box.add(STALE, STALE, STALE)
    env = box.env(home)
    processes = [job_execute(env, job_run_config(hold_seconds=2), tmp_path) for _ in range(2)]
    outputs = [process.communicate(timeout=180)[0] for process in processes]

    with DagsterInstance.get() as instance:
        print(timeline(instance))
        runs = job_runs(instance)
        assert [process.returncode for process in processes] == [0, 0], outputs
        assert [run.dagster_run.status for run in runs] == [DagsterRunStatus.SUCCESS] * 2
        windows = lock_windows(instance)
        assert windows, "one of them did the work"
        assert intervals_overlap(windows) == []
        done = [materialization(instance, run.dagster_run.run_id) for run in runs]
        assert sum(metadata["expired"] for metadata in done if metadata) == 3
        if len(windows) == 1:  # the usual case: they really ran at once, and the loser says who won
            (skipped,) = [run.dagster_run.tags[SKIPPED_TAG] for run in runs if SKIPPED_TAG in run.dagster_run.tags]
            assert skipped.startswith(f"skipped: lock '{box.lock_name}' held by connection ")
    assert box.verified_ids() == set()


def test_holder_killed_with_kill_9_frees_the_lock_at_once(
    box: Members, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box.add(STALE)
    env = box.env(home)
    holder = job_execute(env, job_run_config(hold_seconds=120), tmp_path)
    wait_for_holder(box, holder)
    wait_for(lambda: not box.verified_ids(), 30, "the first run to finish its work and hold on")

    monkeypatch.setenv(MEMBERS_JDBC_URL.name, env[MEMBERS_JDBC_URL.name])
    monkeypatch.setenv(VERIFICATION_EXPIRY_TOPIC.name, box.topic)
    defs = build_definitions(load_connectors())
    schedule = defs.resolve_schedule_def(EXPIRY_SCHEDULE)
    with DagsterInstance.get() as instance:
        (running,) = job_runs(instance)
        tick = datetime.now(UTC).replace(second=0, microsecond=0)
        with tick_context(defs, instance, tick) as context:
            skipped = schedule.evaluate_tick(context)
        assert skipped.run_requests == []
        assert skipped.skip_message == (
            f"tick {tick.isoformat()} skipped: run {running.dagster_run.run_id} "
            "of neighbourhood_verification_expiry is STARTED"
        )

        killed_at = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        wait_for(lambda: box.holder() is None, 5, "the server to drop the killed holder's lock")
        freed_after = time.monotonic() - killed_at
        print(f"lock free {freed_after:.3f} s after kill -9 of the holder (pid {holder.pid})")

        (late,) = box.add(STALE)
        follower = job_execute(env, job_run_config(), tmp_path)
        output = follower.communicate(timeout=180)[0]
        print(timeline(instance))
        assert follower.returncode == 0, output
        assert late not in box.verified_ids()
        killed, follow = job_runs(instance)
        assert materialization(instance, follow.dagster_run.run_id)["expired"] == 1
        # Nothing marks a killed `job execute` run finished but run monitoring (the daemon), at its max runtime;
        # until then the schedule keeps skipping on it, while `job execute` itself only needs the free lock.
        assert instance.get_run_by_id(killed.dagster_run.run_id).status == DagsterRunStatus.STARTED
    assert freed_after < 2.0


def test_frozen_holder_loses_the_lock_after_its_lease_and_then_fails(box: Members, home: Path, tmp_path: Path) -> None:
    lease = 3
    box.add(STALE)
    env = box.env(home)
    frozen = job_execute(
        env, job_run_config(hold_seconds=60, verification=box.settings(lock_lease_seconds=lease)), tmp_path
    )
    wait_for_holder(box, frozen)
    wait_for(lambda: not box.verified_ids(), 30, "the first run to finish its work and hold on")
    os.kill(frozen.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_for(lambda: box.holder() is None, lease + 10, "the lease to run out")
        freed_after = time.monotonic() - stopped_at
        (late,) = box.add(STALE)
        follower = job_execute(env, job_run_config(), tmp_path)
        output = follower.communicate(timeout=180)[0]
        assert follower.returncode == 0, output
        assert late not in box.verified_ids()
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    frozen_output = frozen.communicate(timeout=120)[0]

    with DagsterInstance.get() as instance:
        print(timeline(instance))
        print(f"lock free {freed_after:.3f} s after SIGSTOP (lease {lease} s)")
        first, second = job_runs(instance)
        assert first.dagster_run.status == DagsterRunStatus.FAILURE
        assert second.dagster_run.status == DagsterRunStatus.SUCCESS
        (failure,) = instance.all_logs(first.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        error = failure.dagster_event.step_failure_data.error
        print(f"the frozen run, woken up: {error.cause.cls_name if error.cause else error.cls_name}")
    assert frozen.returncode != 0, frozen_output
    assert (error.cause or error).cls_name == "LockLost"
    assert lease - 1.5 <= freed_after <= lease + 5
