"""Every command the README and docs/ show runs as written: here, or in CI (``.ci/run``).

Commands are the lines of ``sh`` and ``sql`` blocks and the inline code that starts like one
(``make …``, ``scripts/stack …``, ``.venv/bin/…``). Each is listed in ``COVERAGE`` with what runs
it; a command added to the docs without an entry fails ``test_every_command_shown_is_run``. The
``dagster`` commands run in a scratch copy of the project root whose ``.env`` is written by the
demo's own writer and names a sandbox: that they work without DAGSTER_HOME or the password in
the environment is what they show.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from mungmo_pipelines.assets.verification import AS_OF_TAG, EXPIRY_JOB
from mungmo_pipelines.core.expiry.members import check_schema
from mungmo_pipelines.core.settings import CONNECTORS_DIR, DB_PASSWORD, MEMBERS_JDBC_URL, VERIFICATION_EXPIRY_TOPIC
from mungmo_pipelines.demo import write_env_file
from mungmo_pipelines.dev import PER_TICK_LINE
from tests.support.expiry import TABLE, dagster_home, members, wait_for
from tests.support.sandbox import Sandbox
from tests.support.tables import TEST001

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CI_SCRIPT = ROOT / ".ci" / "run"
COMMAND_PREFIXES = ("make ", "scripts/stack ", ".venv/bin/", "PYTHONPATH=", "MUNGMO_DB_PASSWORD=")
EXPIRY_AS_OF_FILE = """cat > /tmp/as_of.yaml <<'YAML'
ops: {expire_neighbourhood_verifications: {config: {as_of: "2025-06-01T09:00:00+09:00"}}}
YAML"""
ALTER_INDEX = (
    "ALTER TABLE mungMo.member ADD INDEX ix_member_verification_expiry "
    "(neighbourhood_verified, neighbourhood_verified_at);"
)
TEMPLATE = "template: names your own servers or secrets (…), to adapt"
# command -> what runs it: a test of this module, "ci" (.ci/run runs the line), or why it is no command
COVERAGE: dict[str, str] = {
    "make demo": "ci",
    "make test": "ci",
    "make test-fast": "ci",
    "make docs": "ci",
    "make check": "ci",
    (
        "INSERT INTO debezium_signal VALUES ('resend-1', 'execute-snapshot',\n"
        """  '{"data-collections": ["mungMo.test001"], "type": "incremental",\n"""
        """    "additional-conditions": [{"data-collection": "mungMo.test001", "filter": "seq > 100"}]}');"""
    ): "tests/test_cdc_snapshot.py::test_the_documented_signal_resends_the_rows_its_condition_names",
    "PYTHONPATH=. .venv/bin/python bench/consistency.py": "ci",
    (
        "SELECT r.checked_at, d.kind, d.difference FROM _mungmo_consistency_results r\n"
        "JOIN _mungmo_consistency_rows d ON d.result_id = r.id AND d.list = 'differences'\n"
        "WHERE r.id = (SELECT MAX(id) FROM _mungmo_consistency_results WHERE check_name = 'rows_match_source');"
    ): "tests/test_consistency_pipelines.py::test_repair_through_kafka_fixes_every_consumer_of_an_incrementing_source",
    "make connect-api": "tests/test_operations_api.py::test_seed_bodies_and_curl_sequence_through_make_connect_api",
    ".venv/bin/mungmo-connect": "tests/test_operations_cli_ui.py::test_every_operation_from_the_cli",
    "make down": "ci",
    "scripts/stack down": "ci",
    "PYTHONPATH=. python bench/expiry.py": "ci",
    "make dev": "test_make_dev_quiet_and_make_daemon_refusing_beside_it",
    "make daemon": "test_make_dev_quiet_and_make_daemon_refusing_beside_it",
    "make dev VERBOSE=1": "test_make_dev_quiet_and_make_daemon_refusing_beside_it",
    "scripts/stack up": "test_stack_commands",
    "scripts/stack status": "test_stack_commands",
    "scripts/stack logs": "test_stack_commands",
    "scripts/stack logs kafka": "test_stack_commands",
    ".venv/bin/dagster job execute -m mungmo_pipelines -j replicate_all": "test_dagster_commands_read_the_env_file",
    ".venv/bin/dagster definitions validate -m mungmo_pipelines": "test_dagster_commands_read_the_env_file",
    ".venv/bin/dagster sensor start -m mungmo_pipelines test_connect_mungmo_test001_changes": (
        "test_dagster_commands_read_the_env_file"
    ),
    EXPIRY_AS_OF_FILE: "test_dagster_commands_read_the_env_file",
    ".venv/bin/dagster job execute -m mungmo_pipelines -j neighbourhood_verification_expiry -c /tmp/as_of.yaml": (
        "test_dagster_commands_read_the_env_file"
    ),
    ".venv/bin/dagster job launch -w workspace.yaml -j neighbourhood_verification_expiry": (
        "test_dagster_commands_read_the_env_file"
    ),
    ".venv/bin/dagster schedule stop neighbourhood_verification_expiry_every_minute -w workspace.yaml": (
        "test_dagster_commands_read_the_env_file"
    ),
    ALTER_INDEX: "test_sql_of_the_expiry_page",
    "scripts/stack up|down|status|logs|reset": "synopsis of the commands above",
    "export MUNGMO_MARIADB_URL='mysql+pymysql://mungmo:…@db.example:3306'": TEMPLATE,
    "export MUNGMO_KAFKA_BOOTSTRAP='kafka-1.example:9092,kafka-2.example:9092'": TEMPLATE,
    "export MUNGMO_DB_PASSWORD='…'": TEMPLATE,
    "export MUNGMO_MARIADB_ADMIN_URL='mysql+pymysql://root:…@db.example:3306/'": TEMPLATE,
    "MUNGMO_DB_PASSWORD=… docker compose up -d": TEMPLATE + "; needs Docker",
}


def commands_in(text: str) -> Iterator[str]:
    """The commands of one page: block lines (a heredoc whole, comments cut) and command-like inline code."""
    for match in re.finditer(r"^```(sh|sql)\n(.*?)^```", text, re.S | re.M):
        language, body = match.groups()
        if language == "sql":
            yield from (statement.strip() + ";" for statement in body.split(";") if statement.strip())
            continue
        lines = iter(body.splitlines())
        for line in lines:
            heredoc = re.search(r"<<'(\w+)'", line)
            if heredoc:
                document = [line]
                for following in lines:
                    document.append(following)
                    if following == heredoc.group(1):
                        break
                yield "\n".join(document)
            elif line.strip():
                yield re.sub(r"\s+#.*$", "", line)
    for span in re.findall(r"`([^`\n]+)`", text):
        if span.startswith(COMMAND_PREFIXES):
            yield span


def shown_commands() -> dict[str, list[str]]:
    """Each command and the pages that show it; the generated CREATE TABLE is the code's own (run by every
    expiry test through ``members_table_ddl``)."""
    shown: dict[str, list[str]] = {}
    for page in PAGES:
        # What a bench's --markdown appended records how that run was made; it is no instruction.
        text = page.read_text(encoding="utf-8").partition("\n## Published runs\n")[0]
        for command in commands_in(text):
            if not command.startswith("CREATE TABLE IF NOT EXISTS `member`"):
                shown.setdefault(command, []).append(str(page.relative_to(ROOT)))
    return shown


def test_every_command_shown_is_run() -> None:
    shown = shown_commands()
    assert sorted(set(shown) - set(COVERAGE)) == [], "commands in the docs that nothing runs: add them to COVERAGE"
    assert sorted(set(COVERAGE) - set(shown)) == [], "COVERAGE lists commands the docs no longer show"
    ci_script = CI_SCRIPT.read_text()
    in_ci = [command for command, how in COVERAGE.items() if how == "ci"]
    assert [c for c in in_ci if not re.search(rf"(?<![\w./=-]){re.escape(c)}(?![\w./=-])", ci_script)] == []
    tests = [how for how in COVERAGE.values() if how.startswith("test_")]
    assert [t for t in tests if t not in globals()] == []
    elsewhere = [how.split("::") for how in COVERAGE.values() if "::" in how]
    assert [m for m, t in elsewhere if f"\ndef {t}(" not in (ROOT / m).read_text(encoding="utf-8")] == []


def run(command: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``command`` exactly as the docs show it, through bash."""
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{command!r} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


@pytest.mark.stack
def test_stack_commands() -> None:
    up = run("scripts/stack up", ROOT, dict(os.environ))
    assert "already running" in up.stdout
    status = run("scripts/stack status", ROOT, dict(os.environ))
    assert status.stdout.count("running") >= 2, status.stdout
    assert "kafka" in run("scripts/stack logs kafka", ROOT, dict(os.environ)).stdout.lower()
    assert run("scripts/stack logs", ROOT, dict(os.environ)).stdout


def scratch_project(path: Path, settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A copy of the project root (its .venv linked) with a .env the demo's writer wrote from ``settings``;
    returns an environment without any of them, so only .env can supply them."""
    path.mkdir(parents=True)
    (path / ".venv").symlink_to(ROOT / ".venv")
    (path / "workspace.yaml").write_text((ROOT / "workspace.yaml").read_text())
    with monkeypatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        written = write_env_file(path / ".env")
    assert set(settings) <= set(written)
    return {name: value for name, value in os.environ.items() if name not in written}


def test_dagster_commands_read_the_env_file(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("dst")
    sandbox.execute(
        source_db,
        TEST001,
        *["INSERT INTO test001 (member_name, pet_name, neutered, created_at) VALUES ('멍멍', '보리', 1, NOW(3))"] * 3,
    )
    topic = sandbox.topic("test001")
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    source = sandbox.source_body(
        source_db, mode="incrementing", **{"incrementing.column.name": "seq", "table.whitelist": "test001"}
    )
    for body in (source, sandbox.sink_body(target_db, topics=topic, **{"auto.create": "true"})):
        (connectors / f"{body['name']}.json").write_text(json.dumps(body))
    box = members(sandbox)
    (due,) = box.add(datetime(2025, 5, 2, 0, 0))  # 30 days before the doc's as_of (2025-06-01 09:00 +09:00)
    home = dagster_home(tmp_path / "home")
    sandbox_project = tmp_path / "sandbox_project"
    env = scratch_project(
        sandbox_project,
        {
            "DAGSTER_HOME": str(home),
            DB_PASSWORD.name: os.environ[DB_PASSWORD.name],
            CONNECTORS_DIR.name: str(connectors),
            MEMBERS_JDBC_URL.name: sandbox.jdbc_url(box.database),
            VERIFICATION_EXPIRY_TOPIC.name: box.topic,
        },
        monkeypatch,
    )
    assert "DAGSTER_HOME" not in env and DB_PASSWORD.name not in env

    run(".venv/bin/dagster job execute -m mungmo_pipelines -j replicate_all", sandbox_project, env)
    assert sandbox.rows(target_db, f"SELECT COUNT(*) FROM `{topic}`") == [(3,)]

    run(EXPIRY_AS_OF_FILE, sandbox_project, env)
    run(
        ".venv/bin/dagster job execute -m mungmo_pipelines -j neighbourhood_verification_expiry -c /tmp/as_of.yaml",
        sandbox_project,
        env,
    )
    run(".venv/bin/dagster job launch -w workspace.yaml -j neighbourhood_verification_expiry", sandbox_project, env)
    run(
        ".venv/bin/dagster schedule stop neighbourhood_verification_expiry_every_minute -w workspace.yaml",
        sandbox_project,
        env,
    )
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(RunsFilter(job_name=EXPIRY_JOB))
        (executed,) = [r for r in runs if r.status != DagsterRunStatus.QUEUED]
        (launched,) = [r for r in runs if r.status == DagsterRunStatus.QUEUED]
        assert executed.status == DagsterRunStatus.SUCCESS
        assert executed.tags[AS_OF_TAG] == "2025-06-01T09:00:00.000+09:00"
        assert launched.tags["mungmo/run_lock"] == EXPIRY_JOB, "no daemon here: it waits in the queue, tagged"
        (schedule,) = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        assert schedule.status == InstigatorStatus.STOPPED
    assert due not in box.verified_ids(), "due at the as_of of the doc's run"

    # The seed connectors (no database is touched to load them): validate, and a sensor turned on.
    seed_home = dagster_home(tmp_path / "seed_home")
    seed_project = tmp_path / "seed_project"
    env = scratch_project(
        seed_project, {"DAGSTER_HOME": str(seed_home), DB_PASSWORD.name: os.environ[DB_PASSWORD.name]}, monkeypatch
    )
    run(".venv/bin/dagster definitions validate -m mungmo_pipelines", seed_project, env)
    run(".venv/bin/dagster sensor start -m mungmo_pipelines test_connect_mungmo_test001_changes", seed_project, env)
    with DagsterInstance.from_config(str(seed_home)) as instance:
        states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        assert [(s.name, s.status) for s in states] == [
            ("test_connect_mungmo_test001_changes", InstigatorStatus.RUNNING)
        ]


def test_sql_of_the_expiry_page(sandbox: Sandbox) -> None:
    database = sandbox.database("members")
    without_index = re.sub(r",\s*KEY `ix_member_verification_expiry`[^\n]*", "", _members_ddl())
    sandbox.execute(database, without_index)
    with sandbox.engine(database).connect() as conn:
        assert check_schema(conn, TABLE) is None
    sandbox.execute(database, ALTER_INDEX.replace("mungMo.", f"`{database}`."))
    with sandbox.engine(database).connect() as conn:
        assert check_schema(conn, TABLE) == TABLE.index_name


def _members_ddl() -> str:
    text = (ROOT / "docs" / "expiry.md").read_text(encoding="utf-8")
    (ddl,) = [c for c in re.findall(r"^```sql\n(.*?)^```", text, re.S | re.M) if c.startswith("CREATE TABLE")]
    return ddl.strip().rstrip(";")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_make(target: str, home: Path, *variables: str) -> tuple[subprocess.Popen[str], Path]:
    """``make <target>`` in the project root, on a private DAGSTER_HOME (and port), output to a file."""
    log = home.parent / f"make-{target}-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        ["make", target, f"DAGSTER_HOME={home}", *variables],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return process, log


def stop(process: subprocess.Popen[str]) -> float:
    """Ctrl-C to the whole group, as a terminal sends it; how long it took to exit."""
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError("make did not exit within 90 s of Ctrl-C") from None
    return time.monotonic() - started


def schedule_ticks(home: Path) -> int:
    with DagsterInstance.from_config(str(home)) as instance:
        return sum(
            len(instance.get_ticks(s.instigator_origin_id, s.selector_id))
            for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        )


@pytest.mark.stack
def test_make_dev_quiet_and_make_daemon_refusing_beside_it(tmp_path: Path) -> None:
    home = dagster_home(tmp_path / "home")
    dev, dev_log = start_make("dev", home, f"DAGSTER_PORT={free_port()}")
    try:
        wait_for(lambda: "Serving dagster-webserver" in dev_log.read_text(), 180, "the webserver", 0.5)
        with DagsterInstance.from_config(str(home)) as instance:
            wait_for(lambda: instance.get_daemon_heartbeats(), 120, "the daemon's first heartbeat", 0.5)
        refused = subprocess.run(
            ["make", "daemon", f"DAGSTER_HOME={home}"], cwd=ROOT, capture_output=True, text=True, timeout=180
        )
        assert refused.returncode != 0
        assert "not starting daemon: a Dagster daemon is already running on the instance in" in refused.stderr
        assert "`make dev` runs a daemon itself" in refused.stderr
        wait_for(lambda: schedule_ticks(home) >= 1, 120, "a tick of the minute schedule", 1)
    finally:
        took = stop(dev)
    output = dev_log.read_text()
    print(output[-2000:], f"\nexited {took:.1f} s after Ctrl-C")
    assert "Serving dagster-webserver on http://127.0.0.1:" in output
    assert [line for line in output.splitlines() if PER_TICK_LINE.search(line)] == []

    verbose_home = dagster_home(tmp_path / "verbose_home")
    daemon, daemon_log = start_make("daemon", verbose_home, "VERBOSE=1")
    try:
        wait_for(lambda: "Evaluating schedule `" in daemon_log.read_text(), 150, "a tick's own log line", 1)
    finally:
        stop(daemon)
    assert [line for line in daemon_log.read_text().splitlines() if PER_TICK_LINE.search(line)] != []


def test_the_terminal_filter_drops_per_tick_lines_and_keeps_what_happened() -> None:
    """Lines as `make daemon` printed them (colours included): per-tick chatter out, launches and the run's own in."""
    dropped = [
        "\x1b[32m2026-12-01 19:27:33 +0000\x1b[0m - dagster.code_server - \x1b[34mWARNING\x1b[0m - No heartbeat "
        "received in 20 seconds, shutting down",
        "\x1b[32m2026-12-01 19:27:00 +0000\x1b[0m - dagster.daemon.SchedulerDaemon - \x1b[34mINFO\x1b[0m - "
        "Evaluating schedule `neighbourhood_verification_expiry_every_minute` at 2026-12-02 04:27:00 +0900",
        "\x1b[32m2026-12-01 19:27:05 +0000\x1b[0m - dagster.daemon.SensorDaemon - \x1b[34mINFO\x1b[0m - "
        "Checking for new runs for sensor: test_connect_mungmo_test001_changes",
    ]
    kept = [
        "\x1b[32m2026-12-01 19:26:00 +0000\x1b[0m - dagster.daemon.SchedulerDaemon - \x1b[34mINFO\x1b[0m - "
        "Completed scheduled launch of run c553b7fa-6f92-41fe-8a3b-f34e8bcd7ddb for "
        "neighbourhood_verification_expiry_every_minute",
        "\x1b[32m2026-12-01 19:26:01 +0000\x1b[0m - dagster.daemon.QueuedRunCoordinatorDaemon - \x1b[34mINFO\x1b[0m"
        " - Launched 1 runs.",
    ]
    assert [line for line in dropped if not PER_TICK_LINE.search(line)] == []
    assert [line for line in kept if PER_TICK_LINE.search(line)] == []
