"""Exactly once across a crash, several tables per connector, and bad options named in errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.errors import ConnectorConfigError, SourceError
from mungmo_pipelines.core.faults import FAULT_INJECTION_ENV
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from tests.support.sandbox import Sandbox
from tests.support.source import payloads, run_source, run_until, source_config, stored_offsets

ROOT = Path(__file__).resolve().parents[1]

# Runs the source in its own process; MUNGMO_FAULT_INJECTION=source.before_commit:N makes it
# SIGKILL itself after transaction N's records reached the brokers, before N commits (core/faults.py).
SOURCE_RUN = """
import json, sys
from sqlalchemy import create_engine
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.source.jdbc import run_jdbc_source

body, url, bootstrap = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
run_jdbc_source(parse_connector(body), create_engine(url), KafkaSettings(bootstrap))
"""


def test_kill_between_produce_and_commit_then_rerun_delivers_each_row_once(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(
        database,
        "CREATE TABLE pets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "INSERT INTO pets (name) VALUES ('pet-1')",
    )
    topic = sandbox.topic("pets")
    options = {
        "mode": "incrementing",
        "table.whitelist": "pets",
        "transaction.boundary": "poll",
        "batch.max.rows": "10",
    }
    config = source_config(sandbox, database, **options)
    # A first run stores an offset, so the crashing run continues a gap-free run of ids and
    # no other client's open transaction on a shared server can hold it back.
    run_until(sandbox, config, database, lambda: stored_offsets(sandbox, config) == [{"incrementing": 1}])
    sandbox.execute(database, "INSERT INTO pets (name) SELECT CONCAT('pet-', seq) FROM seq_2_to_95")
    body = sandbox.source_body(database, **options)
    url = sandbox.engine(database).url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DAGSTER_HOME": str(ROOT / ".no-dagster-home"),
        FAULT_INJECTION_ENV: "source.before_commit:4",
    }
    crashed = subprocess.run(
        [sys.executable, "-c", SOURCE_RUN, json.dumps(body), url, sandbox.kafka.bootstrap_servers],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr.decode()

    committed = [p["id"] for p in payloads(sandbox, topic)]
    assert committed == list(range(1, 32)), "three 10-row transactions committed before the kill"
    uncommitted = [p["id"] for p in payloads(sandbox, topic, isolation="read_uncommitted")]
    assert uncommitted[31:] == list(range(32, 42)), "the fourth transaction's records reached the log"

    rerun = run_source(sandbox, config, database)
    assert rerun.tables[0].offset_before == {"incrementing": 31}
    assert rerun.rows == 64
    assert [p["id"] for p in payloads(sandbox, topic)] == list(range(1, 96))
    assert stored_offsets(sandbox, config) == [{"incrementing": 95}]


def test_two_tables_in_one_connector_each_with_its_own_topic_and_offset(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    elsewhere = sandbox.database("other")
    sandbox.execute(
        database,
        "CREATE TABLE dogs (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "CREATE TABLE cats (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "CREATE TABLE vets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "INSERT INTO dogs (name) VALUES ('초코'), ('보리')",
        "INSERT INTO cats (name) VALUES ('나비')",
    )
    # A same-named table in another database must not be picked up (the JDBC source did).
    sandbox.execute(elsewhere, "CREATE TABLE dogs (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    sandbox.execute(elsewhere, "INSERT INTO dogs (name) VALUES ('stranger')")
    dogs, cats, vets = sandbox.topic("dogs"), sandbox.topic("cats"), sandbox.topic("vets")
    config = source_config(sandbox, database, mode="incrementing", **{"table.blacklist": "vets"})
    run = run_source(sandbox, config, database)
    assert [t.table for t in run.tables] == ["cats", "dogs"]
    run_until(
        sandbox, config, database, lambda: len(payloads(sandbox, dogs)) == 2 and len(payloads(sandbox, cats)) == 1
    )
    assert [p["name"] for p in payloads(sandbox, dogs)] == ["초코", "보리"]
    assert [p["name"] for p in payloads(sandbox, cats)] == ["나비"]
    admin = sandbox.kafka.admin()
    assert vets not in set(admin.list_topics())
    admin.close()
    keys = {json.dumps(o, sort_keys=True) for o in stored_offsets(sandbox, config)}
    assert keys == {'{"incrementing": 1}', '{"incrementing": 2}'}


def test_query_mode_reads_a_join_into_one_topic(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(
        database,
        "CREATE TABLE members (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "CREATE TABLE pets (id INT AUTO_INCREMENT PRIMARY KEY, member_id INT NOT NULL, name VARCHAR(20) NOT NULL)",
        "INSERT INTO members (name) VALUES ('김민지'), ('이서준')",
        "INSERT INTO pets (member_id, name) VALUES (1, '초코'), (2, '나비'), (1, '콩이')",
    )
    topic = sandbox.topic("pets_with_owner")
    config = source_config(
        sandbox,
        database,
        mode="incrementing",
        query="SELECT p.id, p.name, m.name AS owner FROM pets p JOIN members m ON m.id = p.member_id WHERE m.id = 1",
        **{"incrementing.column.name": "id", "topic.prefix": topic},
    )
    run_until(sandbox, config, database, lambda: len(payloads(sandbox, topic)) == 2)
    assert payloads(sandbox, topic) == [
        {"id": 1, "name": "초코", "owner": "김민지"},
        {"id": 3, "name": "콩이", "owner": "김민지"},
    ]
    assert stored_offsets(sandbox, config) == [{"incrementing": 3}]


@pytest.mark.parametrize(
    ("options", "field", "expected"),
    [
        ({"mode": "incrementing", "query": "DELETE FROM x"}, "query", "expected a SELECT statement"),
        (
            {"mode": "incrementing", "query": "SELECT 1 AS id"},
            "incrementing.column.name",
            "required when mode is incrementing with a query",
        ),
        ({"mode": "bulk", "transaction.boundary": "connector"}, "transaction.boundary", "expected one of poll"),
        ({"mode": "bulk", "table.whitelist": "a", "table.blacklist": "b"}, "table.blacklist", "not both"),
        ({"mode": "bulk", "numeric.mapping": "fancy"}, "numeric.mapping", "expected one of none"),
        ({"mode": "bulk", "query.suffix": "FOR UPDATE"}, "query.suffix", "not an option this connector supports"),
        ({"mode": "timestamp"}, "timestamp.column.name", "required when mode is timestamp"),
    ],
)
def test_bad_source_options_are_named(sandbox: Sandbox, options: dict[str, str], field: str, expected: str) -> None:
    body = sandbox.source_body("anydb", **options)
    with pytest.raises(ConnectorConfigError) as raised:
        parse_connector(body, origin="connectors/x.json")
    assert raised.value.field_name == field
    assert expected in str(raised.value)


def test_accepted_options_without_effect_still_parse(sandbox: Sandbox) -> None:
    config = source_config(sandbox, "anydb", mode="bulk", **{"tasks.max": "4", "numeric.mapping": "best_fit"})
    assert config.numeric_mapping == "best_fit"


@pytest.mark.parametrize(
    ("ddl", "options", "expected"),
    [
        (
            "CREATE TABLE t (id INT NULL, v INT)",
            {"mode": "incrementing", "incrementing.column.name": "id", "table.whitelist": "t"},
            "incrementing column 'id' is nullable",
        ),
        (
            "CREATE TABLE t (id INT NOT NULL, v INT)",
            {"mode": "incrementing", "table.whitelist": "t"},
            "no AUTO_INCREMENT column",
        ),
        (
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME NULL, bt DATETIME NULL)",
            {"mode": "timestamp", "timestamp.column.name": "at,bt", "table.whitelist": "t"},
            "are all nullable",
        ),
        (
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10) NOT NULL)",
            {"mode": "incrementing", "incrementing.column.name": "code", "table.whitelist": "t"},
            "must be an integer column",
        ),
        (
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)",
            {"mode": "timestamp", "timestamp.column.name": "missing", "table.whitelist": "t"},
            "'missing' is not a column of t",
        ),
        (
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, a DATETIME NOT NULL, b TIMESTAMP NULL)",
            {
                "mode": "timestamp",
                "timestamp.column.name": "a,b",
                "table.whitelist": "t",
                "db.timezone": "Asia/Seoul",
            },
            "mixes DATETIME and TIMESTAMP",
        ),
        (
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)",
            {"mode": "bulk", "table.whitelist": "otherdb.t"},
            "only in the connection's own database",
        ),
    ],
)
def test_tables_that_cannot_be_read_are_named(sandbox: Sandbox, ddl: str, options: dict, expected: str) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, ddl)
    sandbox.topic("t")
    config = source_config(sandbox, database, **options)
    with pytest.raises(SourceError, match=expected) as raised:
        run_source(sandbox, config, database)
    assert config.name in str(raised.value)


def test_a_user_without_process_privilege_is_told_which_grant_is_missing(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, "CREATE TABLE pets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    sandbox.topic("pets")
    user = f"mungmo_test_{sandbox.suffix}"
    with sandbox.admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'no-process'")
        conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'127.0.0.1'")
    try:
        body = sandbox.source_body(database, mode="incrementing", **{"table.whitelist": "pets"})
        body["config"].update({"connection.user": user, "connection.password": "no-process"})
        config = parse_connector(body)
        url = sandbox.engine(database).url.set(username=user, password="no-process")
        with pytest.raises(SourceError, match=r"needs the PROCESS privilege .*GRANT PROCESS"):
            run_jdbc_source(config, create_engine(url), sandbox.kafka)
    finally:
        with sandbox.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'127.0.0.1'")
