"""One bad connector file never takes the code location down: the rest loads, the bad one shows where
an operator looks (UI: asset spec and a failing sensor; CLI: FAILED), and strict mode still fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from mungmo_pipelines.assets.verification import EXPIRY_JOB
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.operations import cli
from mungmo_pipelines.schedules import EXPIRY_SCHEDULE

ROOT = Path(__file__).resolve().parents[1]
SOMETIMES = {
    "name": "sometimes-source",
    "config": {
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "connection.url": "jdbc:mysql://localhost:3306/mungMo",
        "mode": "sometimes",
        "topic.prefix": "sometimes_",
    },
}


@pytest.fixture
def connectors(tmp_path: Path) -> Path:
    """The seed pair, and a file with ``"mode": "sometimes"`` beside it."""
    directory = tmp_path / "connectors"
    directory.mkdir()
    for seed in (ROOT / "connectors").glob("*.json"):
        shutil.copy(seed, directory)
    (directory / "sometimes.json").write_text(json.dumps(SOMETIMES))
    return directory


def test_the_others_load_and_the_bad_one_shows_as_spec_and_failing_sensor(connectors: Path) -> None:
    defs = build_definitions(load_connectors(connectors))
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"test_connect_mungmo_test001", "my_sink_connect_member_test001", EXPIRY_JOB} <= jobs
    assert defs.resolve_schedule_def(EXPIRY_SCHEDULE) is not None
    spec = defs.resolve_assets_def(AssetKey(["connector_errors", "sometimes_source"])).specs_by_key[
        AssetKey(["connector_errors", "sometimes_source"])
    ]
    assert spec.description.startswith("FAILED") and "field 'mode'" in spec.description
    assert spec.metadata["files"] == str(connectors / "sometimes.json")
    sensor = defs.resolve_sensor_def("sometimes_source_config_error")
    assert sensor.default_status.value == "RUNNING"
    failing = pytest.raises(Exception, match="expected one of bulk, incrementing, timestamp")
    with DagsterInstance.ephemeral() as instance, build_sensor_context(instance=instance) as ctx, failing as raised:
        sensor.evaluate_tick(ctx)
    assert str(connectors / "sometimes.json") in str(raised.value)


def test_dagster_validate_passes_and_strict_mode_fails_naming_connector_file_and_field(connectors: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MUNGMO_CONNECTORS_DIR": str(connectors),
    }
    command = ["dagster", "definitions", "validate", "-m", "mungmo_pipelines"]
    lenient = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "left out: connector 'sometimes-source'" in lenient.stdout + lenient.stderr
    strict = subprocess.run(
        command, cwd=ROOT, env={**env, "MUNGMO_STRICT_CONNECTORS": "1"}, capture_output=True, text=True, timeout=180
    )
    assert strict.returncode != 0
    output = strict.stdout + strict.stderr
    assert f"connector 'sometimes-source' ({connectors / 'sometimes.json'}): field 'mode'" in output


@pytest.mark.stack  # reads the target states from Kafka
def test_cli_lists_the_bad_connector_as_failed_with_its_message(
    connectors: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUNGMO_CONNECTORS_DIR", str(connectors))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    cli.main(["status", "sometimes-source"])
    status = json.loads(capsys.readouterr().out)
    assert status["connector"]["state"] == "FAILED" and status["tasks"] == []
    assert "got 'sometimes'" in status["connector"]["trace"]
    assert status["mungmo"]["error"]["field"] == "mode"
    assert status["mungmo"]["error"]["file"] == str(connectors / "sometimes.json")
