"""The expiry job under a running ``dagster-daemon``: the run queue's tag limit and run monitoring.

One daemon serves the module (it takes seconds to start), with the project's ``dagster.yaml``
and one-second polls. Runs are launched with ``dagster job launch``, which submits them to the
queue as the UI does. The minute schedule is on in this instance too, so a tick may add a run;
the assertions hold for every run of the job. Each test prints its run timeline.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from mungmo_pipelines.assets.verification import AS_OF_TAG, EXPIRY_JOB
from mungmo_pipelines.schedules import EXPIRY_SCHEDULE
from tests.support.expiry import (
    WORKSPACE,
    Members,
    dagster_cli,
    dagster_home,
    finished,
    intervals_overlap,
    job_execute,
    job_run_config,
    job_runs,
    members,
    naive_utc,
    timeline,
    wait_for,
    wait_for_holder,
)
from tests.support.sandbox import Sandbox

POLL_SECONDS = 1
DAEMONS = {"QUEUED_RUN_COORDINATOR", "MONITORING", "SCHEDULER"}


@dataclass
class Daemon:
    box: Members
    home: Path
    instance: DagsterInstance
    log: Path
    tmp: Path

    def launch(
        self, hold_seconds: float = 0.0, tags: dict[str, str] | None = None
    ) -> tuple[str, subprocess.Popen[str]]:
        """``dagster job launch`` of the expiry job; returns its run id and the (still running) CLI process."""
        run_id = str(uuid.uuid4())
        args = ["job", "launch", "-w", WORKSPACE, "-j", EXPIRY_JOB, "--run-id", run_id]
        args += ["--config-json", json.dumps(job_run_config(hold_seconds=hold_seconds))]
        if tags:
            args += ["--tags", json.dumps(tags)]
        return run_id, dagster_cli(*args, env=self.box.env(self.home))

    def wait_finished(self, run_ids: list[str], timeout_s: float) -> None:
        try:
            wait_for(
                lambda: all(finished(self.instance, run_id) for run_id in run_ids), timeout_s, "the runs to end", 0.5
            )
        except AssertionError:
            print(timeline(self.instance))
            print(self.log.read_text()[-5000:])
            raise

    def wait_holding(self, run_id: str) -> None:
        def holding() -> bool:
            if finished(self.instance, run_id):
                raise AssertionError(f"run {run_id} ended before it held the lock:\n{timeline(self.instance)}")
            return self.box.holder() is not None

        wait_for(holding, 120, f"run {run_id} to take the lock", 0.1)

    def stale(self, count: int = 1) -> list[int]:
        return self.box.add(*[naive_utc(datetime.now(UTC) - timedelta(days=40))] * count)


@pytest.fixture(scope="module")
def daemon(admin_engine, kafka_settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sandbox = Sandbox(admin_engine, kafka_settings, uuid.uuid4().hex[:10])
    tmp = tmp_path_factory.mktemp("daemon")
    process = None
    try:
        box = members(sandbox)
        home = dagster_home(
            tmp / "dagster_home",
            run_monitoring={"poll_interval_seconds": POLL_SECONDS},
            run_queue={"dequeue_interval_seconds": POLL_SECONDS},
        )
        log = tmp / "daemon.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "dagster._daemon", "run", "-w", WORKSPACE],
                cwd=home,
                env=box.env(home),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        with DagsterInstance.from_config(str(home)) as instance:
            wait_for(lambda: set(instance.get_daemon_heartbeats()) >= DAEMONS, 120, "the daemon's heartbeats", 0.5)
            yield Daemon(box, home, instance, log, tmp)
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        sandbox.cleanup()


def run_windows(instance: DagsterInstance) -> list[tuple[float, float]]:
    """Start and end of every run of the job that started."""
    return [
        (record.start_time, record.end_time or time.time())
        for record in job_runs(instance)
        if record.start_time is not None
    ]


def test_runs_launched_at_the_same_moment_wait_for_each_other(daemon: Daemon) -> None:
    daemon.stale(3)
    launched = [daemon.launch(hold_seconds=2) for _ in range(3)]
    for _, cli in launched:
        output = cli.communicate(timeout=180)[0]
        assert cli.returncode == 0, output
    run_ids = [run_id for run_id, _ in launched]
    daemon.wait_finished(run_ids, 240)

    print(timeline(daemon.instance))
    statuses = {run_id: daemon.instance.get_run_by_id(run_id).status for run_id in run_ids}
    assert set(statuses.values()) == {DagsterRunStatus.SUCCESS}, statuses
    assert intervals_overlap(run_windows(daemon.instance)) == []
    for run_id in run_ids:  # each one went through the queue rather than straight to a worker
        (enqueued,) = daemon.instance.all_logs(run_id, of_type=DagsterEventType.RUN_ENQUEUED)
        assert enqueued
    assert daemon.box.verified_ids() == set()


def test_hung_run_is_failed_by_max_runtime(daemon: Daemon) -> None:
    run_id, cli = daemon.launch(hold_seconds=120, tags={"dagster/max_runtime": "3"})
    assert cli.wait(timeout=180) == 0
    daemon.wait_finished([run_id], 90)

    record = daemon.instance.get_run_record_by_id(run_id)
    print(timeline(daemon.instance, [record]))
    assert record.dagster_run.status == DagsterRunStatus.FAILURE
    messages = [event.message for event in daemon.instance.all_logs(run_id)]
    assert "Canceling due to exceeding maximum runtime of 3 seconds." in messages
    assert record.end_time - record.start_time < 60
    wait_for(lambda: daemon.box.holder() is None, 30, "the lock to be released")
    print(f"lock seen free {time.time() - record.end_time:+.3f} s after the run ended; its last messages:")
    print("\n".join(f"  {message[:120]}" for message in messages[-6:] if message))


def test_worker_killed_with_kill_9_frees_the_lock_and_the_queue(daemon: Daemon) -> None:
    daemon.stale()
    holder_id, cli = daemon.launch(hold_seconds=120)
    assert cli.wait(timeout=180) == 0
    daemon.wait_holding(holder_id)
    wait_for(lambda: not daemon.box.verified_ids(), 30, "the first run to finish its work and hold on")
    (step_start,) = wait_for(
        lambda: daemon.instance.all_logs(holder_id, of_type=DagsterEventType.STEP_START), 30, "the holder's step start"
    )
    late = daemon.stale()
    follower_id, cli = daemon.launch()
    assert cli.wait(timeout=180) == 0
    assert daemon.instance.get_run_by_id(follower_id).status == DagsterRunStatus.QUEUED

    worker = step_start.dagster_event.pid
    killed_at = time.time()
    subprocess.run(["kill", "-9", str(worker)], check=True)
    wait_for(lambda: daemon.box.holder() is None, 5, "the server to drop the killed worker's lock")
    daemon.wait_finished([holder_id, follower_id], 120)

    holder = daemon.instance.get_run_record_by_id(holder_id)
    follower = daemon.instance.get_run_record_by_id(follower_id)
    print(timeline(daemon.instance, [holder, follower]))
    print(f"worker pid {worker} killed at {datetime.fromtimestamp(killed_at, UTC):%H:%M:%S.%f}")
    messages = [event.message for event in daemon.instance.all_logs(holder_id)]
    print("\n".join(f"  {message[:140]}" for message in messages[-2:]))
    assert holder.dagster_run.status == DagsterRunStatus.FAILURE
    # The code server that started the worker sees it die and fails the run straight away.
    assert any("was terminated by signal 9 (SIGKILL)" in message for message in messages)
    assert follower.dagster_run.status == DagsterRunStatus.SUCCESS
    assert follower.start_time >= holder.end_time, "the queue held the follower until the dead run was failed"
    assert set(late) & daemon.box.verified_ids() == set()


def test_killed_job_execute_run_is_failed_by_run_monitoring_at_max_runtime(daemon: Daemon) -> None:
    max_runtime = 4
    daemon.stale()
    holder = job_execute(
        daemon.box.env(daemon.home),
        job_run_config(hold_seconds=120),
        daemon.tmp,
        tags={"dagster/max_runtime": str(max_runtime)},
    )
    wait_for_holder(daemon.box, holder)
    (record,) = [r for r in job_runs(daemon.instance) if r.dagster_run.status == DagsterRunStatus.STARTED]
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    follower_id, cli = daemon.launch()
    assert cli.wait(timeout=180) == 0
    daemon.wait_finished([record.dagster_run.run_id, follower_id], 120)

    killed = daemon.instance.get_run_record_by_id(record.dagster_run.run_id)
    follower = daemon.instance.get_run_record_by_id(follower_id)
    print(timeline(daemon.instance, [killed, follower]))
    # No process watches a `job execute` run: it stayed STARTED, holding the queue's slot, until run monitoring
    # failed it at its max runtime; the follower waited in the queue until then.
    assert killed.dagster_run.status == DagsterRunStatus.FAILURE
    assert max_runtime <= killed.end_time - killed.start_time <= max_runtime + 2 * POLL_SECONDS + 5
    assert follower.dagster_run.status == DagsterRunStatus.SUCCESS
    assert follower.start_time >= killed.end_time


def schedule_ticks(instance: DagsterInstance) -> list:
    (state,) = [
        s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE) if s.name == EXPIRY_SCHEDULE
    ]
    return sorted(instance.get_ticks(state.instigator_origin_id, state.selector_id), key=lambda tick: tick.timestamp)


def test_idle_ticks_start_no_run_and_the_next_tick_expires_a_stale_member(daemon: Daemon) -> None:
    wait_for(lambda: not daemon.box.verified_ids(), 120, "earlier tests' members to be expired")
    idle_from = len(schedule_ticks(daemon.instance))

    def idle_ticks() -> list:
        ticks = schedule_ticks(daemon.instance)[idle_from:]
        return ticks if any("nothing to expire" in (t.skip_reason or "") for t in ticks) else []

    idle = wait_for(idle_ticks, 150, "a tick that finds nothing to expire", 0.5)
    print("\n".join(f"idle tick {t.timestamp:.0f} {t.status.value} {t.skip_reason}" for t in idle))
    assert [(t.status, t.run_ids) for t in idle] == [(TickStatus.SKIPPED, [])] * len(idle)

    (stale,) = daemon.stale()
    added_at = datetime.now(UTC)
    wait_for(lambda: stale not in daemon.box.verified_ids(), 180, "the stale member to be expired", 0.5)
    expired_at = datetime.now(UTC)
    (run,) = [
        r
        for r in job_runs(daemon.instance)
        if r.dagster_run.tags.get("dagster/schedule_name") == EXPIRY_SCHEDULE and r.create_timestamp >= added_at
    ]
    next_tick = (added_at + timedelta(minutes=1)).replace(second=0, microsecond=0)
    print(
        f"stale member added at {added_at:%H:%M:%S.%f}, expired by run {run.dagster_run.run_id[:8]} of the "
        f"{next_tick:%H:%M} tick, seen at {expired_at:%H:%M:%S.%f} ({(expired_at - added_at).total_seconds():.1f} s)"
    )
    assert datetime.fromisoformat(run.dagster_run.tags[AS_OF_TAG]) == next_tick, "the first tick after it went stale"
