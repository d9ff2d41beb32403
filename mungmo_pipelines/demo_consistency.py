"""``make demo``'s consistency part (정합): the checks of the seed pair after its last run, then a check
failing on hand edits of a target, the repair job fixing them through Kafka, and the check passing.

The seed sink writes with ``insert.mode=insert`` into a table without a primary key, which a
repair cannot go through (a re-sent row would be one more row), and its checks can only count.
So the repair is shown on a pair of its own, with the settings a repair needs: ``mungMo.walks``
(timestamp+incrementing) to topic ``demo_walks`` to ``mungmoMember.demo_walks`` (upsert by record
key, deletes on). Its connector bodies are written under ``$DAGSTER_HOME/demo/connectors``; its
runs go to the project's instance, so they show in the UI's run list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult
from sqlalchemy import Engine, text

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.checks.consistency import ROWS_CHECK, ROWS_CHECK_JOB
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.definitions import build_definitions

Say = Callable[[str], None]

SOURCE_DB, TARGET_DB, TABLE, TOPIC = "mungMo", "mungmoMember", "walks", "demo_walks"
SOURCE, SINK = "demo-walks-source", "demo-walks-sink"
WALKS_DDL = """
CREATE TABLE IF NOT EXISTS `walks` (
  `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `member_name` VARCHAR(50) NOT NULL,
  `pet_name` VARCHAR(50) NOT NULL,
  `minutes` SMALLINT NOT NULL,
  `walk_note` TEXT NULL,
  `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
WALKS = [("김민지", "초코", 30, "아침 산책 🐾"), ("이서준", "나비", 15, None), ("박지우", "콩이", 45, "공원 한 바퀴")]


def connection(database: str) -> dict[str, str]:
    """The seed connectors' connection options (the resources point them at the stack's server)."""
    return {
        "connection.url": f"jdbc:mysql://localhost:3306/{database}",
        "connection.user": "mungmo",
        "connection.password": "${env:MUNGMO_DB_PASSWORD}",
    }


def connector_bodies() -> list[dict[str, Any]]:
    """The demo pair, as the team would POST it to Kafka Connect."""
    source = {
        "connector.class": JDBC_SOURCE_CLASS,
        **connection(SOURCE_DB),
        "mode": "timestamp+incrementing",
        "incrementing.column.name": "id",
        "timestamp.column.name": "updated_at",
        "table.whitelist": TABLE,
        "topic.prefix": "demo_",
    }
    sink = {
        "connector.class": JDBC_SINK_CLASS,
        **connection(TARGET_DB),
        "topics": TOPIC,
        "pk.mode": "record_key",
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "auto.create": "true",
        "auto.evolve": "true",
    }
    return [{"name": SOURCE, "config": source}, {"name": SINK, "config": sink}]


def evaluations(result: ExecuteInProcessResult) -> list[Any]:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def verdict(evaluation: Any) -> str:
    return f"{evaluation.check_name} {'passed' if evaluation.passed else 'FAILED'}: {evaluation.description}"


def seed_checks(result: ExecuteInProcessResult, say: Say) -> None:
    """The seed pair's checks, as the run that replicated it ran them."""
    found = sorted(evaluations(result), key=lambda e: (e.asset_key.to_user_string(), e.check_name))
    say("consistency (정합) checks after that run:")
    for asset in dict.fromkeys(e.asset_key.to_user_string() for e in found):
        verdicts = ", ".join(
            f"{e.check_name} {'passed' if e.passed else 'FAILED'}"
            for e in found
            if e.asset_key.to_user_string() == asset
        )
        say(f"  {asset}: {verdicts}")
    reasons = {e.metadata["reason"].value for e in found if "reason" in e.metadata and e.check_name == ROWS_CHECK}
    for reason in reasons:
        say(f"  counted only: {reason}")
    if not all(e.passed for e in found):
        raise SystemExit(f"the seed pair's consistency check failed: {'; '.join(verdict(e) for e in found)}")


def first_differences(evaluation: Any) -> str:
    differences = evaluation.metadata["first_differences"].value
    return "; ".join(
        f"{d['kind']} {d['key']}" + (f" ({', '.join(d['columns'])})" if d["columns"] else "") for d in differences
    )


def repair_demo(admin: Engine, instance: DagsterInstance, say: Say) -> None:
    """Replicate ``walks``, break the target by hand, check, repair through Kafka, check again."""
    directory = Path(os.environ["DAGSTER_HOME"]) / "demo" / "connectors"
    directory.mkdir(parents=True, exist_ok=True)
    for body in connector_bodies():
        (directory / f"{body['name']}.json").write_text(json.dumps(body, indent=2, ensure_ascii=False))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"USE `{SOURCE_DB}`")
        conn.exec_driver_sql(WALKS_DDL)
        conn.execute(
            text("INSERT INTO walks (member_name, pet_name, minutes, walk_note) VALUES (:m, :p, :n, :w)"),
            [{"m": m, "p": p, "n": n, "w": w} for m, p, n, w in WALKS],
        )
    defs = build_definitions(load_connectors(directory))

    def run(job: str, run_config: dict[str, Any] | None = None) -> ExecuteInProcessResult:
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=run_config)
        if not result.success:
            raise SystemExit(f"job {job} failed (run {result.run_id})")
        return result

    pair = f"{SOURCE_DB}.{TABLE} -> topic {TOPIC} -> {TARGET_DB}.{TOPIC}"
    say(f"repair through Kafka: {pair} (upsert by key, deletes on)")
    run(f"{job_name(SOURCE)}_pipeline")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"USE `{TARGET_DB}`")
        low, high = conn.exec_driver_sql(f"SELECT MIN(id), MAX(id) FROM `{TOPIC}`").one()
        conn.exec_driver_sql(f"DELETE FROM `{TOPIC}` WHERE id = {low}")
        conn.exec_driver_sql(f"UPDATE `{TOPIC}` SET walk_note = 'edited by hand' WHERE id = {high}")
        conn.exec_driver_sql(
            f"INSERT INTO `{TOPIC}` (id, member_name, pet_name, minutes, updated_at) "
            f"VALUES ({high + 1000}, 'nobody', 'none', 0, NOW(3))"
        )
    say(f"  hand edits on the target: row {low} deleted, row {high} edited, row {high + 1000} added")
    (broken,) = evaluations(run(ROWS_CHECK_JOB))
    say(f"  {verdict(broken)}: {first_differences(broken)}")
    repair_job = f"{job_name(SOURCE)}_repair"
    repaired = run(repair_job, {"ops": {f"repair_{job_name(SOURCE)}": {"config": {"last_check": True}}}})
    (observation,) = [
        event.asset_observation_data.asset_observation for event in repaired.all_events if event.is_asset_observation
    ]
    sent = {name: value.value for name, value in observation.metadata.items()}
    (after,) = evaluations(repaired)
    say(
        f"  {repair_job} (the last check's differences): {sent['repair_rows_sent']} rows and "
        f"{sent['repair_tombstones_sent']} tombstone(s) sent to {TOPIC}, then {verdict(after)}"
    )
    if broken.passed or not after.passed or after.check_name != ROWS_CHECK:
        raise SystemExit("the consistency demo did not fail and then pass")
