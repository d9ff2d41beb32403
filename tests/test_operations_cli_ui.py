"""The same operations from the ``mungmo-connect`` CLI, from the UI's ``connector_operations`` job, and
with a running webserver: add/update/delete reload its code location, restart launches through it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dagster import DagsterRunStatus, RunsFilter

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.core.operations.state import TargetState, TargetStateStore
from mungmo_pipelines.definitions import REPLICATE_ALL_JOB
from mungmo_pipelines.operations import cli
from mungmo_pipelines.operations.job import OPERATIONS_JOB
from mungmo_pipelines.operations.orchestrator import RESTART_TAG
from tests.support.expiry import ROOT, WORKSPACE, wait_for
from tests.support.operations import Project, free_port, pipeline, project, serving
from tests.support.sandbox import Sandbox


def mungmo_connect(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> str:
    """One CLI command in this process; returns what it printed (stdout)."""
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        cli.main(list(argv))
    finally:
        sys.stdin = sys.__stdin__
    return capsys.readouterr().out


def use_project(box: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUNGMO_CONNECTORS_DIR", str(box.connectors))
    monkeypatch.setenv("MUNGMO_SECRETS_FILE", str(box.secrets))
    monkeypatch.setenv("DAGSTER_HOME", str(box.instance.root_directory))


def test_every_operation_from_the_cli(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = pipeline(sandbox, rows=4)
    with project(sandbox, tmp_path, monkeypatch) as box:
        use_project(box, monkeypatch)
        source, sink = case.source["name"], case.sink["name"]
        for body in (case.source, case.sink):
            path = tmp_path / f"{body['name']}.body.json"
            path.write_text(json.dumps(body))
            assert json.loads(mungmo_connect(capsys, "add", str(path)))["name"] == body["name"]
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**case.sink, "config": {**case.sink["config"], "batch.size": "-1"}}))
        with pytest.raises(SystemExit) as invalid:
            mungmo_connect(capsys, "validate", str(bad))
        assert invalid.value.code == 1
        assert "Invalid value -1 for configuration batch.size" in capsys.readouterr().out
        assert "is PAUSED" in mungmo_connect(capsys, "pause", sink)
        assert json.loads(mungmo_connect(capsys, "status", sink))["connector"]["state"] == "PAUSED"
        rows = {line.split()[0]: line.split()[1:4] for line in mungmo_connect(capsys, "list").splitlines()[1:]}
        assert rows == {sink: ["sink", "PAUSED", "PAUSED"], source: ["source", "RUNNING", "RUNNING"]}
        assert "is RUNNING" in mungmo_connect(capsys, "resume", sink)
        assert box.run(box.definitions(), source, REPLICATE_ALL_JOB).success
        assert json.loads(mungmo_connect(capsys, "list", "--json"))[source]["status"]["mungmo"]["last_run"]
        assert json.loads(mungmo_connect(capsys, "topics", sink)) == {sink: {"topics": [case.topic]}}
        assert "STOPPED" in mungmo_connect(capsys, "stop", source)
        got = json.loads(mungmo_connect(capsys, "offsets", "get", source))
        (entry,) = got["offsets"]
        assert entry["offset"] == {"incrementing": 4}
        entry["offset"] = {"incrementing": 1}
        altered = mungmo_connect(capsys, "offsets", "set", source, stdin=json.dumps({"offsets": [entry]}))
        assert "altered successfully" in altered
        assert json.loads(mungmo_connect(capsys, "offsets", "get", source))["offsets"][0]["offset"] == {
            "incrementing": 1
        }
        assert "reset successfully" in mungmo_connect(capsys, "offsets", "reset", source)
        assert json.loads(mungmo_connect(capsys, "offsets", "get", source)) == {"offsets": []}
        assert "nothing launched" in mungmo_connect(capsys, "restart", source)
        config = json.loads(mungmo_connect(capsys, "config", sink))
        update = tmp_path / "update.json"
        update.write_text(json.dumps({**config, "batch.size": "7"}))
        assert json.loads(mungmo_connect(capsys, "update", sink, str(update)))["config"]["batch.size"] == "7"
        with pytest.raises(SystemExit):
            mungmo_connect(capsys, "delete", sink, stdin="")  # no terminal to ask on: say which
        assert "--keep-offsets or --delete-offsets" in capsys.readouterr().err
        assert "removed" in mungmo_connect(capsys, "delete", sink, "--delete-offsets")
        assert sandbox.rows(case.target_db, f"SELECT * FROM _connect_sink_offsets WHERE connector = '{sink}'") == []
        with pytest.raises(SystemExit):
            mungmo_connect(capsys, "status", sink)
        assert f"error 404: No status found for connector {sink}" in capsys.readouterr().err
        # The installed console script is the same program.
        plugins = subprocess.run(
            [str(Path(sys.executable).parent / "mungmo-connect"), "plugins"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert plugins.returncode == 0 and "JdbcSinkConnector" in plugins.stdout, plugins.stderr


def test_operations_from_the_ui_job(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = pipeline(sandbox, rows=2)
    with project(sandbox, tmp_path, monkeypatch) as box:
        use_project(box, monkeypatch)
        box.write(case.source)
        job = box.definitions().resolve_job_def(OPERATIONS_JOB)

        def launch(**config: object):
            run_config = {"ops": {"connector_operation": {"config": config}}}
            return job.execute_in_process(run_config=run_config, instance=box.instance, raise_on_error=False)

        name = case.source["name"]
        paused = launch(operation="PAUSE", connector=name)
        assert paused.success
        record = TargetStateStore(sandbox.kafka, box.status_topic).get(name)
        assert (record.state, record.by) == (TargetState.PAUSED, "dagster")
        listed = launch(operation="LIST")
        (materialized,) = [e for e in listed.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = materialized.step_output_data.metadata
        assert f"| {name} | source | PAUSED | PAUSED |" in metadata["connectors"].value
        refused = launch(operation="OFFSETS_RESET", connector=name)
        assert not refused.success
        failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
        assert "400: Connectors must be in the STOPPED state" in failure.step_failure_data.user_failure_data.description
        body = json.dumps({**case.source, "name": "added-from-ui"})
        assert launch(operation="ADD", body=body).success
        assert (box.connectors / "added-from-ui.json").exists()
        assert launch(operation="DELETE", connector="added-from-ui", keep_offsets=False).success
        assert not (box.connectors / "added-from-ui.json").exists()


def test_a_running_webserver_reloads_after_add_and_launches_restarts(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = pipeline(sandbox, rows=1)
    with project(sandbox, tmp_path, monkeypatch) as box:
        use_project(box, monkeypatch)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        webserver = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-webserver"), "-p", str(port), "-w", WORKSPACE],
            cwd=tmp_path,  # not the project root, whose .env would replace the test's DAGSTER_HOME
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:

            def jobs() -> set[str] | None:
                query = (
                    '{ repositoryOrError(repositorySelector: {repositoryLocationName: "mungmo_pipelines", '
                    'repositoryName: "__repository__"}) { ... on Repository { jobs { name } } } }'
                )
                try:
                    answer = httpx.post(f"{url}/graphql", json={"query": query}, timeout=5).json()
                except httpx.TransportError:
                    return None
                found = (answer.get("data") or {}).get("repositoryOrError") or {}
                return {job["name"] for job in found.get("jobs", [])} or None

            before = wait_for(jobs, 120, "the webserver to load the location", 0.5)
            assert job_name(case.source["name"]) not in before
            with serving(box.connect(webserver_url=url)) as api:
                created = api.post("/connectors", json=case.source)
                assert created.status_code == 201
                assert created.headers["X-Mungmo-Reload"] == f"reloaded code location mungmo_pipelines at {url}"
                assert job_name(case.source["name"]) in jobs()
                restarted = api.post(f"/connectors/{case.source['name']}/restart")
                assert restarted.status_code == 204 and url in restarted.headers["X-Mungmo-Launched"]
            runs = box.instance.get_run_records(RunsFilter(tags={RESTART_TAG: case.source["name"]}))
            assert len(runs) == 1 and runs[0].dagster_run.job_name == job_name(case.source["name"])
            assert runs[0].dagster_run.status in (
                DagsterRunStatus.QUEUED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
                DagsterRunStatus.SUCCESS,
            )
        finally:
            os.killpg(webserver.pid, signal.SIGTERM)
            webserver.wait(30)
