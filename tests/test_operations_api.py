"""The REST endpoint as the team used Kafka Connect's: the seed's bodies and curl sequence through
`make connect-api`, Kafka Connect's error shapes, validation, concurrent creates, basic auth,
secrets kept out of the connectors directory, delete leaving nothing behind, status and restart."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from dagster import DagsterRunStatus, RunsFilter

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS
from mungmo_pipelines.core.operations.state import TargetStateStore
from mungmo_pipelines.definitions import REPLICATE_ALL_JOB
from mungmo_pipelines.operations.orchestrator import RESTART_TAG
from tests.support.expiry import ROOT, wait_for
from tests.support.operations import free_port, pipeline, project, serving
from tests.support.sandbox import Sandbox
from tests.support.seed import SEED_SINK, SEED_SOURCE

# The team's bodies from ../shared/seed.md, unchanged (the password in clear included).


def start_connect_api(tmp_path: Path, status_topic: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    """``make connect-api`` on a free port, with the test's connectors directory, secrets and instance."""
    port = free_port()
    home = tmp_path / "dagster_home"
    environment = {
        **os.environ,
        "MUNGMO_CONNECTORS_DIR": str(tmp_path / "connectors"),
        "MUNGMO_SECRETS_FILE": str(tmp_path / "secrets" / "connectors.properties"),
        "MUNGMO_STATUS_TOPIC": status_topic,
        "MUNGMO_CONNECT_API_PORT": str(port),
        **env,
    }
    process = subprocess.Popen(
        ["make", "-s", "connect-api", f"DAGSTER_HOME={home}"],
        cwd=ROOT,
        env=environment,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"make connect-api exited {process.returncode}:\n{process.stdout.read()}")
        try:
            return httpx.get(url + "/", timeout=1).status_code in (200, 401)
        except httpx.TransportError:
            return False

    wait_for(answers, 60, "make connect-api to answer", 0.2)
    return process, url


def stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def test_seed_bodies_and_curl_sequence_through_make_connect_api(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with project(sandbox, tmp_path, monkeypatch) as box:
        process, url = start_connect_api(tmp_path, box.status_topic)
        try:
            with httpx.Client(base_url=url, timeout=60) as api:
                assert api.get("/connectors").json() == []
                created = api.post("/connectors", json=SEED_SOURCE)
                assert created.status_code == 201, created.text
                assert created.headers["Location"] == "/connectors/test-connect-mungmo-test001"
                assert created.json() == {
                    "name": SEED_SOURCE["name"],
                    "config": {
                        **SEED_SOURCE["config"],
                        "name": SEED_SOURCE["name"],
                        "connection.password": _reference(box, SEED_SOURCE, created),
                    },
                    "tasks": [{"connector": SEED_SOURCE["name"], "task": 0}],
                    "type": "source",
                }
                assert api.post("/connectors", json=SEED_SINK).status_code == 201
                assert api.get("/connectors").json() == [SEED_SINK["name"], SEED_SOURCE["name"]]
                # The password never reaches the directory (or any answer) in clear.
                for body in (SEED_SOURCE, SEED_SINK):
                    written = (box.connectors / f"{body['name']}.json").read_text()
                    assert "1234" not in written and "${file:" in written
                    assert "1234" not in api.get(f"/connectors/{body['name']}/config").text
                assert stat.S_IMODE(box.secrets.stat().st_mode) == 0o600
                assert stat.S_IMODE(box.secrets.parent.stat().st_mode) == 0o700
                status = api.get(f"/connectors/{SEED_SINK['name']}/status").json()
                assert status["connector"]["state"] == "RUNNING" and status["type"] == "sink"
                assert api.get(f"/connectors/{SEED_SINK['name']}/topics").json() == {
                    SEED_SINK["name"]: {"topics": ["my_topic_test001"]}
                }
                # The seed's own DELETE names a connector that does not exist: Kafka Connect's 404.
                missing = api.delete("/connectors/my-sink-connect-member")
                assert missing.status_code == 404
                assert missing.json() == {"error_code": 404, "message": "Connector my-sink-connect-member not found"}
                assert api.delete(f"/connectors/{SEED_SINK['name']}").status_code == 204
                assert api.get("/connectors").json() == [SEED_SOURCE["name"]]
                again = api.post("/connectors", json=SEED_SOURCE)
                assert again.status_code == 409
                assert again.json() == {"error_code": 409, "message": f"Connector {SEED_SOURCE['name']} already exists"}
        finally:
            stop(process)


def _reference(box, body: dict, created: httpx.Response) -> str:
    reference = created.json()["config"]["connection.password"]
    assert reference == f"${{file:{box.secrets}:{body['name']}.connection.password}}"
    return reference


def test_bad_requests_answer_kafka_connects_codes_and_shapes(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with project(sandbox, tmp_path, monkeypatch) as box, serving(box.connect()) as api:
        bad_mode = {"name": "bad", "config": {**SEED_SOURCE["config"], "mode": "sometimes", "batch.max.rows": "0"}}
        refused = api.post("/connectors", json=bad_mode)
        assert refused.status_code == 400
        message = refused.json()["message"]
        assert message.startswith("Connector configuration is invalid and contains the following 2 error(s):")
        assert "got 'sometimes'" in message and "Invalid value 0 for configuration batch.max.rows" in message
        assert list(box.connectors.iterdir()) == [], "nothing written for a refused body"
        cases = [
            ("POST", "/connectors", {"name": "x"}, 400, "Connector config is missing or not a JSON object"),
            (
                "POST",
                "/connectors",
                {"name": "", "config": SEED_SOURCE["config"]},
                400,
                "Connector name cannot be empty",
            ),
            ("POST", "/connectors", {"name": "x", "config": {"mode": "bulk"}}, 400, "contains no connector type"),
            (
                "PUT",
                "/connectors/a/config",
                {"name": "b", **SEED_SOURCE["config"]},
                400,
                "Connector name configuration (b) doesn't match connector name in the URL (a)",
            ),
            ("GET", "/connectors/nope/status", None, 404, "No status found for connector nope"),
            ("GET", "/connectors/nope", None, 404, "Connector nope not found"),
            ("PUT", "/connectors/nope/pause", None, 404, "Unknown connector nope"),
            ("GET", "/connectors/nope/offsets", None, 404, "Connector nope not found"),
            ("POST", "/connectors/nope/restart", None, 404, "Unknown connector: nope"),
            ("GET", "/no/such/path", None, 404, "HTTP 404 Not Found"),
            ("DELETE", "/connector-plugins", None, 405, "HTTP 405 Method Not Allowed"),
            ("PUT", "/connector-plugins/NoSuchConnector/config/validate", {}, 404, "Unknown plugin NoSuchConnector."),
        ]
        for method, path, body, code, text in cases:
            answer = api.request(method, path, json=body)
            assert answer.status_code == code, (method, path, answer.text)
            assert answer.json()["error_code"] == code and text in answer.json()["message"], (method, path, answer.text)


def test_validate_answers_config_infos_with_every_fields_errors(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with project(sandbox, tmp_path, monkeypatch) as box, serving(box.connect()) as api:
        assert api.get("/connector-plugins").json() == [
            {"class": JDBC_SOURCE_CLASS, "type": "source", "version": "10.6.4-mungmo"},
            {"class": JDBC_SINK_CLASS, "type": "sink", "version": "10.6.4-mungmo"},
            {"class": "io.debezium.connector.jdbc.JdbcSinkConnector", "type": "sink", "version": "3.5.0.Final-mungmo"},
            {
                "class": "io.debezium.connector.mariadb.MariaDbConnector",
                "type": "source",
                "version": "3.5.0.Final-mungmo",
            },
        ]
        config = {**SEED_SINK["config"], "name": "v", "batch.size": "0", "insert.mode": "merge", "colour": "red"}
        infos = api.put(f"/connector-plugins/{JDBC_SINK_CLASS}/config/validate", json=config).json()
        assert infos["name"] == JDBC_SINK_CLASS and infos["error_count"] == 3
        by_name = {c["definition"]["name"]: c for c in infos["configs"]}
        assert by_name["batch.size"]["value"]["errors"] == [
            "Invalid value 0 for configuration batch.size: expected an integer from 1 to 2147483647, got 0"
        ]
        assert "expected one of insert, upsert, update" in by_name["insert.mode"]["value"]["errors"][0]
        assert by_name["colour"]["value"]["errors"] == [f"colour is not an option of {JDBC_SINK_CLASS}"]
        password = by_name["connection.password"]
        assert password["value"]["value"] == "[hidden]" and password["definition"]["type"] == "PASSWORD"
        assert by_name["batch.size"]["definition"] | {"documentation": ""} == {
            "name": "batch.size",
            "type": "INT",
            "required": False,
            "default_value": "3000",
            "importance": "MEDIUM",
            "documentation": "",
            "group": "Sink",
            "width": "NONE",
            "display_name": "batch.size",
            "dependents": [],
            "order": by_name["batch.size"]["definition"]["order"],
        }
        # Cross-option rules land on the field they name, once every option parses.
        crossed = {**SEED_SINK["config"], "name": "v", "delete.enabled": "true"}
        infos = api.put(f"/connector-plugins/{JDBC_SINK_CLASS}/config/validate", json=crossed).json()
        errors = {c["definition"]["name"]: c["value"]["errors"] for c in infos["configs"] if c["value"]["errors"]}
        assert errors == {"delete.enabled": ["requires pk.mode=record_key (tombstones carry only the key)"]}
        clean = {**SEED_SINK["config"], "name": "v"}
        assert api.put("/connector-plugins/JdbcSinkConnector/config/validate", json=clean).json()["error_count"] == 0


def test_two_concurrent_creates_of_one_name_one_wins(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with project(sandbox, tmp_path, monkeypatch) as box, serving(box.connect()) as api:
        bodies = [SEED_SOURCE, {**SEED_SOURCE, "config": {**SEED_SOURCE["config"], "topic.prefix": "other_"}}]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda body: api.post("/connectors", json=body), bodies))
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        assert [p.name for p in box.connectors.glob("*.json")] == [f"{SEED_SOURCE['name']}.json"]
        # A name that makes the same job name as an existing connector's is refused too, naming it.
        clash = api.post("/connectors", json={**SEED_SOURCE, "name": "test_connect_mungmo_test001"})
        assert clash.status_code == 409 and "would share its job name with connector test-connect" in clash.text


def test_basic_auth_when_credentials_are_set(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with project(sandbox, tmp_path, monkeypatch) as box, serving(box.connect(), ("ops", "s3cret")) as api:
        refused = api.get("/connectors")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        assert api.get("/connectors", auth=("ops", "wrong")).status_code == 401
        assert api.get("/connectors", auth=("ops", "s3cret")).json() == []


def test_update_keeps_references_and_delete_leaves_nothing_unless_kept(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = pipeline(sandbox, rows=3)
    with project(sandbox, tmp_path, monkeypatch) as box, serving(box.connect()) as api:
        clear = os.environ["MUNGMO_DB_PASSWORD"]
        sink_body = {**case.sink, "config": {**case.sink["config"], "connection.password": clear}}
        source, sink = case.source["name"], case.sink["name"]
        assert api.post("/connectors", json=case.source).status_code == 201
        assert api.post("/connectors", json={**sink_body, "initial_state": "PAUSED"}).status_code == 201
        assert api.get(f"/connectors/{sink}/status").json()["connector"]["state"] == "PAUSED"
        # ${env:…} stays as it is; the clear password became a ${file:…} reference.
        assert json.loads((box.connectors / f"{source}.json").read_text()) == case.source
        sink_config = api.get(f"/connectors/{sink}/config").json()
        assert sink_config["connection.password"].startswith("${file:")
        # PUT back what GET gave, plus a change: 200, the reference still resolves.
        updated = api.put(f"/connectors/{sink}/config", json={**sink_config, "batch.size": "10"})
        assert updated.status_code == 200 and updated.json()["config"]["batch.size"] == "10"
        assert clear in box.secrets.read_text() and clear not in (box.connectors / f"{sink}.json").read_text()
        created = api.put("/connectors/another/config", json={**case.source["config"], "topic.prefix": "x_"})
        assert created.status_code == 201 and created.headers["Location"] == "/connectors/another"
        assert api.delete("/connectors/another").status_code == 204

        assert api.put(f"/connectors/{sink}/resume").status_code == 202
        defs = box.definitions()
        assert box.run(defs, source, REPLICATE_ALL_JOB).success
        assert (
            api.get(f"/connectors/{sink}/offsets").json()["offsets"]
            and api.get(f"/connectors/{source}/offsets").json()["offsets"]
        )

        # Kept by default, as Kafka Connect keeps them: created again, the connector resumes from them.
        assert api.delete(f"/connectors/{source}").status_code == 204
        assert api.post("/connectors", json=case.source).status_code == 201
        assert api.get(f"/connectors/{source}/offsets").json()["offsets"][0]["offset"] == {"incrementing": 3}

        for name in (source, sink):
            gone = api.delete(f"/connectors/{name}", params={"keepOffsets": "false"})
            assert gone.status_code == 204 and "offsets" in gone.headers["X-Mungmo-Removed"]
        assert list(box.connectors.glob("*.json")) == []
        assert sink not in box.secrets.read_text()
        assert sandbox.rows(case.target_db, f"SELECT * FROM _connect_sink_offsets WHERE connector = '{sink}'") == []
        admin = sandbox.kafka.admin()
        try:
            assert f"connect-{sink}" not in {group["group_id"] for group in admin.list_groups()}
        finally:
            admin.close()
        assert TargetStateStore(sandbox.kafka, box.status_topic).read() == {}
        box.write(case.source)
        assert box.connect().offsets(source) == {"offsets": []}, "the offsets topic holds tombstones for it"


def test_status_shows_a_failed_run_and_restart_launches_a_run(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = pipeline(sandbox, rows=1)
    broken = {**case.source, "config": {**case.source["config"], "table.whitelist": "no_such_table"}}
    with project(sandbox, tmp_path, monkeypatch) as box:
        monkeypatch.setenv("MUNGMO_CONNECTORS_DIR", str(box.connectors))
        monkeypatch.setenv("DAGSTER_HOME", str(box.instance.root_directory))
        box.write(broken)
        name = broken["name"]
        failed = box.run(box.definitions(), name, raise_on_error=False)
        assert not failed.success
        with serving(box.connect()) as api:
            status = api.get(f"/connectors/{name}/status").json()
            assert status["connector"]["state"] == "RUNNING"
            task = status["tasks"][0]
            assert task["state"] == "FAILED" and "no_such_table" in task["trace"], task
            assert status["mungmo"]["last_run"]["run_id"] == failed.run_id
            restarted = api.post(f"/connectors/{name}/restart", params={"onlyFailed": "true", "includeTasks": "true"})
            assert restarted.status_code == 202, restarted.text
            assert restarted.json()["connector"]["state"] == "RESTARTING"
            assert restarted.json()["tasks"][0]["state"] == "RESTARTING"
            launched = box.instance.get_run_records(RunsFilter(job_name=job_name(name), tags={RESTART_TAG: name}))
            assert len(launched) == 1 and launched[0].dagster_run.status == DagsterRunStatus.QUEUED
            assert launched[0].dagster_run.run_id in restarted.headers["X-Mungmo-Launched"]
            api.put(f"/connectors/{name}/pause")
            paused = api.post(f"/connectors/{name}/restart")
            assert paused.status_code == 204 and paused.headers["X-Mungmo-Launched"] == "nothing"
            assert (
                api.get("/connectors", params={"expand": ["status", "info"]}).json()[name]["status"]["connector"][
                    "state"
                ]
                == "PAUSED"
            )
