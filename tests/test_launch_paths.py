"""Every way to launch a connector holds its guards, and no asset selection runs the expiry.

A source's step is in the pool ``mungmo/source/<connector>`` (limit 1 in ``dagster.yaml``). While
a run holds that slot (a ``dagster asset materialize`` process frozen with SIGSTOP after its step
claimed the slot), each other launch path must wait: ``dagster job launch`` and the UI's
"Materialize" and "Materialize all" (the GraphQL mutation the UI sends) stay queued, a second
``dagster asset materialize`` waits in its step. A run killed while holding the slot frees it
once run monitoring has failed it. The expiry's assets are external: the UI offers no
"Materialize" for them, "Materialize all" leaves them out, and the CLI refuses them.

One ``dagster-daemon`` (queue, run monitoring) serves the module, with one-second polls.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql, materialize_assets

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.assets.verification import EXPIRY_JOB
from mungmo_pipelines.core.settings import CONNECTORS_DIR
from tests.support.expiry import WORKSPACE, dagster_home, members, naive_utc, wait_for
from tests.support.sandbox import Sandbox
from tests.support.tables import TEST001

POLL_SECONDS = 1
MAX_RUNTIME_SECONDS = 40  # the instance default for runs without a dagster/max_runtime tag
FREE_SLOTS_AFTER_S = 2
INSERT = "INSERT INTO test001 (member_name, pet_name, neutered, created_at) VALUES ('멍멍', '보리', 1, NOW(3))"
ASSET_NODES = "query { assetNodes { assetKey { path } isExecutable isObservable isMaterializable } }"


@dataclass
class Site:
    sandbox: Sandbox
    env: dict[str, str]
    instance: DagsterInstance
    source_name: str
    topic_key: AssetKey
    members_key: AssetKey
    events_key: AssetKey

    @property
    def pool(self) -> str:
        return f"mungmo/source/{self.source_name}"

    def cli(self, *args: str) -> subprocess.Popen[str]:
        """A ``dagster`` command in the test's DAGSTER_HOME, in its own process group (to freeze it whole)."""
        return subprocess.Popen(
            [sys.executable, "-m", "dagster", *args],
            cwd=self.env["DAGSTER_HOME"],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def materialize_topic(self) -> subprocess.Popen[str]:
        return self.cli("asset", "materialize", "-m", "mungmo_pipelines", "--select", self.topic_key.to_user_string())

    def holders(self) -> set[str]:
        return {slot.run_id for slot in self.instance.event_log_storage.get_concurrency_info(self.pool).claimed_slots}

    def new_run(self, known: set[str]) -> str:
        def fresh() -> str | None:
            ids = {run.run_id for run in self.instance.get_runs()} - known
            return next(iter(ids)) if ids else None

        return wait_for(fresh, 120, "a new run")

    def status(self, run_id: str) -> DagsterRunStatus:
        return self.instance.get_run_by_id(run_id).status

    def step_windows(self) -> list[tuple[str, float, float]]:
        """(run id, start, end) of every source step that ran, from the event log."""
        windows = []
        for run in self.instance.get_runs():
            starts = self.instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
            ends = self.instance.all_logs(
                run.run_id, of_type={DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
            )
            for start in starts:
                if start.step_key and start.step_key.endswith("_publish"):
                    end = next((e.timestamp for e in ends if e.step_key == start.step_key), time.time())
                    windows.append((run.run_id, start.timestamp, end))
        return sorted(windows, key=lambda window: window[1])


@pytest.fixture(scope="module")
def site(admin_engine, kafka_settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    sandbox = Sandbox(admin_engine, kafka_settings, uuid.uuid4().hex[:10])
    tmp = tmp_path_factory.mktemp("launch_paths")
    daemon = None
    try:
        source_db, target_db = sandbox.database("src"), sandbox.database("dst")
        sandbox.execute(source_db, TEST001, *[INSERT] * 3)
        topic = sandbox.topic("test001")
        source = sandbox.source_body(
            source_db, mode="incrementing", **{"incrementing.column.name": "seq", "table.whitelist": "test001"}
        )
        sink = sandbox.sink_body(target_db, topics=topic, **{"auto.create": "true"})
        connectors = tmp / "connectors"
        connectors.mkdir()
        for body in (source, sink):
            (connectors / f"{body['name']}.json").write_text(json.dumps(body))
        box = members(sandbox)
        box.add(naive_utc(datetime.now(UTC) - timedelta(days=3)))  # nothing due: the schedule never runs it
        home = dagster_home(
            tmp / "dagster_home",
            run_queue={"dequeue_interval_seconds": POLL_SECONDS},
            run_monitoring={
                "poll_interval_seconds": POLL_SECONDS,
                "max_runtime_seconds": MAX_RUNTIME_SECONDS,
                "free_slots_after_run_end_seconds": FREE_SLOTS_AFTER_S,
            },
        )
        env = {**box.env(home), CONNECTORS_DIR.name: str(connectors)}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-w", WORKSPACE],
            cwd=home,
            env=env,
            stdout=(tmp / "daemon.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        with pytest.MonkeyPatch.context() as patch, DagsterInstance.from_config(str(home)) as instance:
            for name, value in env.items():
                patch.setenv(name, value)
            wait_for(
                lambda: {"QUEUED_RUN_COORDINATOR", "MONITORING"} <= set(instance.get_daemon_heartbeats()),
                120,
                "the daemon's heartbeats",
                0.5,
            )
            yield Site(
                sandbox,
                env,
                instance,
                source["name"],
                AssetKey(["kafka", topic]),
                AssetKey([box.database, "member"]),
                AssetKey(["kafka", box.topic]),
            )
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGINT)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        sandbox.cleanup()


def hold_slot(site: Site) -> tuple[subprocess.Popen[str], str]:
    """A ``dagster asset materialize`` of the source, frozen once its step holds the pool's slot."""
    known = {run.run_id for run in site.instance.get_runs()}
    holder = site.materialize_topic()
    run_id = site.new_run(known)
    wait_for(lambda: run_id in site.holders(), 120, "the holder to claim the source's slot", 0.01)
    os.killpg(holder.pid, signal.SIGSTOP)
    return holder, run_id


def ui_context(site: Site):
    """The webserver's GraphQL, in process: what the UI's buttons send."""
    return define_out_of_process_context(WORKSPACE, None, site.instance)


def materializable(context) -> list[AssetKey]:
    """What the UI's "Materialize all" takes: executable assets that are not observable."""
    nodes = execute_dagster_graphql(context, ASSET_NODES).data["assetNodes"]
    return [AssetKey(n["assetKey"]["path"]) for n in nodes if n["isExecutable"] and not n["isObservable"]]


def launched_run_id(result) -> str:
    launched = result.data["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def test_while_a_run_holds_a_sources_slot_every_other_launch_path_waits(site: Site) -> None:
    holder, holder_run = hold_slot(site)
    try:
        known = {run.run_id for run in site.instance.get_runs()}
        launch = site.cli("job", "launch", "-w", WORKSPACE, "-j", job_name(site.source_name))
        assert launch.wait(timeout=180) == 0, launch.stdout.read() if launch.stdout else ""
        job_launch = site.new_run(known)
        with ui_context(site) as context:
            ui_one = launched_run_id(materialize_assets(context, [site.topic_key]))
            ui_all = launched_run_id(materialize_assets(context, materializable(context)))
        known = {run.run_id for run in site.instance.get_runs()}
        second_cli = site.materialize_topic()
        cli_run = site.new_run(known)

        time.sleep(8 * POLL_SECONDS)  # several dequeue loops and claim attempts
        waiting = {run_id: site.status(run_id) for run_id in (job_launch, ui_one, ui_all, cli_run)}
        print(
            f"holder {holder_run[:8]} holds {site.pool}; the others: "
            + ", ".join(f"{run_id[:8]} {status.value}" for run_id, status in waiting.items())
        )
        for run_id in (job_launch, ui_one, ui_all):
            assert waiting[run_id] == DagsterRunStatus.QUEUED, "the queue holds runs whose source slot is taken"
        assert site.holders() == {holder_run}
        assert not site.instance.all_logs(cli_run, of_type=DagsterEventType.STEP_START), "its step waits for the slot"
        assert second_cli.poll() is None
    finally:
        os.killpg(holder.pid, signal.SIGCONT)

    assert holder.wait(timeout=180) == 0
    assert second_cli.wait(timeout=300) == 0, second_cli.stdout.read() if second_cli.stdout else ""
    wait_for(
        lambda: all(site.status(r) == DagsterRunStatus.SUCCESS for r in (job_launch, ui_one, ui_all)),
        300,
        "the queued runs to succeed",
        0.5,
    )
    windows = site.step_windows()
    print("\n".join(f"  {run_id[:8]} {start:.2f} -> {end:.2f}" for run_id, start, end in windows))
    assert len(windows) >= 5
    overlapping = [(a[0], b[0]) for a, b in itertools.pairwise(windows) if b[1] < a[2]]
    assert overlapping == [], "two steps of one source ran at once"


def test_a_run_killed_while_holding_the_slot_frees_it_after_run_monitoring_fails_it(site: Site) -> None:
    holder, holder_run = hold_slot(site)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    killed_at = time.time()
    known = {run.run_id for run in site.instance.get_runs()}
    launch = site.cli("job", "launch", "-w", WORKSPACE, "-j", job_name(site.source_name))
    assert launch.wait(timeout=180) == 0
    follower = site.new_run(known)

    wait_for(lambda: site.status(follower) == DagsterRunStatus.SUCCESS, MAX_RUNTIME_SECONDS + 240, "the follower", 0.5)
    killed = site.instance.get_run_record_by_id(holder_run)
    started = site.instance.all_logs(follower, of_type=DagsterEventType.STEP_START)[0].timestamp
    print(
        f"killed {holder_run[:8]} at +0 s, failed by run monitoring at +{killed.end_time - killed_at:.1f} s; "
        f"the follower's step started at +{started - killed_at:.1f} s"
    )
    assert killed.dagster_run.status == DagsterRunStatus.FAILURE
    assert "exceeding maximum runtime" in " ".join(e.message for e in site.instance.all_logs(holder_run))
    assert started >= killed.end_time + FREE_SLOTS_AFTER_S - 1


def test_the_expiry_runs_only_as_its_job(site: Site) -> None:
    with ui_context(site) as context:
        nodes = {
            tuple(n["assetKey"]["path"]): n for n in execute_dagster_graphql(context, ASSET_NODES).data["assetNodes"]
        }
        expiry_keys = [site.members_key, site.events_key]
        for key in expiry_keys:
            node = nodes[tuple(key.path)]
            # The UI greys out "Materialize" on them: "External assets cannot be materialized".
            assert (node["isExecutable"], node["isMaterializable"]) == (False, False), key
        everything = materializable(context)
        assert site.topic_key in everything
        assert not set(expiry_keys) & set(everything), "Materialize all leaves the expiry out"

    cli = site.cli("asset", "materialize", "-m", "mungmo_pipelines", "--select", site.members_key.to_user_string())
    output = cli.communicate(timeout=180)[0]
    assert cli.returncode != 0
    assert "Selected keys must be a subset of existing executable asset keys" in output
    assert site.instance.get_runs(RunsFilter(job_name=EXPIRY_JOB)) == [], "no run of the expiry, by any path"
    assert site.instance.get_latest_materialization_event(site.members_key) is None
