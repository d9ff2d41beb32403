"""End-to-end latency: a row inserted in the source table, until it is in the target table.

    python bench/latency.py                      # 100 inserts, about one a second, every sensor on
    python bench/latency.py --count 10           # a quick check
    python bench/latency.py --sensor NAME ...    # only these sensors
    python bench/latency.py --publish-inline     # the bench runs the source itself after each insert

Starts its own ``dagster-daemon`` against a temporary DAGSTER_HOME (the project's
``dagster.yaml``: run queue dequeued every second) and a temporary connectors directory holding
one source/sink pair on fresh databases and topics, turns the chosen sensors on, inserts rows
spread over time and polls the target table every 20 ms. Prints p50/p95/max latency and the
runs the daemon launched. ``--publish-inline`` is for measuring the sink half alone: the bench
publishes each row to the topic itself (the source connector in-process) and the sink's lag
sensor and job do the rest; the latency still counts from the insert. Uses the admin account
(``MUNGMO_MARIADB_ADMIN_URL``); drops its databases and topics afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions
from sqlalchemy import Engine, create_engine, make_url

from bench.report import Report, add_markdown_flag
from mungmo_pipelines.assets.keys import topic_key
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS, JdbcSourceConfig
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url
from mungmo_pipelines.core.source.jdbc import run_jdbc_source

ROOT = Path(__file__).resolve().parents[1]
DAEMONS_NEEDED = {"SENSOR", "QUEUED_RUN_COORDINATOR"}
TABLE = """
CREATE TABLE test001 (
  seq INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  member_name VARCHAR(50) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) DEFAULT CHARSET=utf8mb4
"""


class Stack:
    """Fresh databases, topics, connector bodies and Dagster home for one measurement."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.prefix = f"mungmo_bench_{suffix}_"
        self.source_db, self.target_db = f"mungmo_bench_{suffix}_src", f"mungmo_bench_{suffix}_dst"
        self.topic = f"{self.prefix}test001"
        self.offsets_topic = f"{self.prefix}offsets"
        self.admin_url = make_url(mariadb_admin_url())
        self.admin = create_engine(self.admin_url)
        self.kafka = KafkaSettings(kafka_bootstrap(), client_id="mungmo-latency-bench")
        self.home = Path(tempfile.mkdtemp(prefix="mungmo-latency-"))
        self.connectors = self.home / "connectors"

    def create(self) -> None:
        with self.admin.begin() as conn:
            for database in (self.source_db, self.target_db):
                conn.exec_driver_sql(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
            conn.exec_driver_sql(f"USE `{self.source_db}`")
            conn.exec_driver_sql(TABLE)
        shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", self.home / "dagster.yaml")
        self.connectors.mkdir()
        url = f"jdbc:mysql://{self.admin_url.host}:{self.admin_url.port or 3306}"
        account = {"connection.user": self.admin_url.username or "root"}
        if self.admin_url.password:
            account["connection.password"] = "${env:MUNGMO_BENCH_DB_PASSWORD}"
        bodies = [
            {
                "name": f"{self.prefix}source",
                "config": {
                    "connector.class": JDBC_SOURCE_CLASS,
                    "connection.url": f"{url}/{self.source_db}",
                    **account,
                    "mode": "incrementing",
                    "incrementing.column.name": "seq",
                    "table.whitelist": "test001",
                    "topic.prefix": self.prefix,
                    "offsets.storage.topic": self.offsets_topic,
                },
            },
            {
                "name": f"{self.prefix}sink",
                "config": {
                    "connector.class": JDBC_SINK_CLASS,
                    "connection.url": f"{url}/{self.target_db}",
                    **account,
                    "topics": self.topic,
                    "auto.create": "true",
                    "insert.mode": "upsert",
                    "pk.mode": "record_value",
                    "pk.fields": "seq",
                },
            },
        ]
        for body in bodies:
            (self.connectors / f"{body['name']}.json").write_text(json.dumps(body))

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "MUNGMO_CONNECTORS_DIR": str(self.connectors),
            "MUNGMO_KAFKA_BOOTSTRAP": self.kafka.bootstrap_servers,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        if self.admin_url.password:
            env["MUNGMO_BENCH_DB_PASSWORD"] = self.admin_url.password
        return env

    def source_config(self) -> JdbcSourceConfig:
        return load_connectors(self.connectors, self.environment()).sources[0]

    def drop(self) -> None:
        with self.admin.begin() as conn:
            for database in (self.source_db, self.target_db):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin = self.kafka.admin()
        try:
            existing = set(admin.list_topics()) & {self.topic, self.offsets_topic}
            if existing:
                admin.delete_topics(sorted(existing))
        finally:
            admin.close()
        self.admin.dispose()
        shutil.rmtree(self.home, ignore_errors=True)


def dagster(stack: Stack, *args: str) -> None:
    # In the bench's DAGSTER_HOME, not the project root, whose .env (from `make demo`) would replace its settings.
    subprocess.run(
        ["dagster", *args, "-m", "mungmo_pipelines.definitions"],
        cwd=stack.home,
        env=stack.environment(),
        check=True,
        capture_output=True,
    )


def wait_for_daemons(daemon: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    with DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError("dagster-daemon exited before it was ready")
            if set(instance.get_daemon_heartbeats()) >= DAEMONS_NEEDED:
                return
            time.sleep(0.5)
    raise TimeoutError(f"dagster-daemon did not report {sorted(DAEMONS_NEEDED)} within {timeout_s:.0f}s")


class Watcher(threading.Thread):
    """Polls the target table and notes when each key (an increasing integer) first appears."""

    def __init__(self, engine: Engine, table: str, key: str = "seq") -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.table = table
        self.key = key
        self.arrived: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        last = 0
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                exists = conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                    f"AND TABLE_NAME = '{self.table}'"
                ).scalar_one()
                if exists:
                    rows = conn.exec_driver_sql(f"SELECT `{self.key}` FROM `{self.table}` WHERE `{self.key}` > {last}")
                    for (seq,) in rows:
                        self.arrived.setdefault(seq, time.time())
                        last = max(last, seq)
                conn.commit()
                time.sleep(0.02)


def measure(stack: Stack, count: int, interval_s: float, publish_inline: bool) -> list[float]:
    source_engine = create_engine(stack.admin_url.set(database=stack.source_db))
    target_engine = create_engine(stack.admin_url.set(database=stack.target_db))
    source = run_jdbc_source(stack.source_config(), source_engine, stack.kafka) if publish_inline else None
    watcher = Watcher(target_engine, stack.topic)
    watcher.start()
    inserted: dict[int, float] = {}
    try:
        for index in range(count + 1):  # the first row warms up (table creation, code server) and is not counted
            with source_engine.begin() as conn:
                seq = conn.exec_driver_sql("INSERT INTO test001 (member_name) VALUES ('latency')").lastrowid
            inserted[seq] = time.time()
            if source is not None:
                source.run()
            if index == 0:
                wait_until(lambda s=seq: s in watcher.arrived, 180, "the warm-up row")
                continue
            print(f"  {index}/{count}", end="\r", file=sys.stderr)
            time.sleep(random.uniform(0.5, 1.5) * interval_s)
        last = max(inserted)
        wait_until(lambda: last in watcher.arrived, 120, "the last row")
    finally:
        watcher.stop.set()
        watcher.join()
        source_engine.dispose()
        target_engine.dispose()
    warm_up = min(inserted)
    latencies = [watcher.arrived[s] - t for s, t in inserted.items() if s != warm_up and s in watcher.arrived]
    missing = [s for s in inserted if s not in watcher.arrived]
    if missing:
        raise AssertionError(f"rows never arrived: {missing}")
    return latencies


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not reach the target table within {timeout_s:.0f}s")
        time.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def runs_by_job() -> dict[str, tuple[int, float, float]]:
    """Per job and status: runs, median seconds from request to start, median seconds running."""
    with DagsterInstance.get() as instance:
        grouped: dict[str, list[Any]] = {}
        for record in instance.get_run_records():
            grouped.setdefault(f"{record.dagster_run.job_name} ({record.dagster_run.status.value.lower()})", []).append(
                record
            )
    return {
        label: (
            len(records),
            statistics.median((r.start_time or 0) - r.create_timestamp.timestamp() for r in records),
            statistics.median((r.end_time or r.start_time or 0) - (r.start_time or 0) for r in records),
        )
        for label, records in grouped.items()
    }


def sensors_publishing(defs: Definitions, source: JdbcSourceConfig, sensors: list[str]) -> list[str]:
    """The chosen sensors whose job runs the source connector (so inserted rows reach the topic)."""
    topic = topic_key(source.topic_for(source.table_whitelist[0]))
    return [
        sensor.name
        for sensor in defs.sensors
        if sensor.name in sensors
        and any(
            topic in defs.resolve_job_def(target.job_name).asset_layer.executable_asset_keys
            for target in sensor.targets
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_markdown_flag(parser)
    parser.add_argument("--count", type=int, default=100, help="rows inserted and timed (default 100)")
    parser.add_argument("--interval", type=float, default=1.0, help="mean seconds between inserts (default 1)")
    parser.add_argument("--sensor", action="append", default=[], help="a sensor to turn on (default: all)")
    parser.add_argument("--publish-inline", action="store_true", help="publish each row from the bench itself")
    args = parser.parse_args()

    stack = Stack()
    stack.create()
    os.environ["DAGSTER_HOME"] = str(stack.home)
    os.environ["MUNGMO_CONNECTORS_DIR"] = str(stack.connectors)
    # Imported only now: the module loads the connectors directory set just above.
    from mungmo_pipelines.definitions import build_definitions

    daemon = None
    try:
        defs = build_definitions(load_connectors(stack.connectors, stack.environment()))
        sensors = args.sensor or [s.name for s in defs.sensors]
        if not args.publish_inline and not sensors_publishing(defs, stack.source_config(), sensors):
            raise SystemExit(
                f"none of the sensors {sensors} runs the source connector, so no row would reach the topic: "
                "name one that does with --sensor, or pass --publish-inline"
            )
        with open(stack.home / "daemon.log", "w") as log:
            daemon = subprocess.Popen(
                ["dagster-daemon", "run", "-m", "mungmo_pipelines.definitions"],
                cwd=stack.home,
                env=stack.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_daemons(daemon)
        for name in sensors:
            dagster(stack, "sensor", "start", name)
        print(f"daemon up, sensors on: {', '.join(sensors)}", file=sys.stderr)
        latencies = measure(stack, args.count, args.interval, args.publish_inline)
        runs = runs_by_job()
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        stack.drop()

    report = Report("End-to-end latency")
    report.line(f"{len(latencies)} inserts, ~{args.interval:g}s apart; sensors: {', '.join(sensors)}"
          f"{'; source published by the bench' if args.publish_inline else ''}")  # fmt: skip
    report.line()
    report.line("| latency | seconds |")
    report.line("| --- | ---: |")
    for label, value in (
        ("p50", statistics.median(latencies)),
        ("p95", percentile(latencies, 0.95)),
        ("max", max(latencies)),
    ):
        report.line(f"| {label} | {value:.2f} |")
    report.line()
    report.line("| runs launched | count | median s requested -> started | median s started -> ended |")
    report.line("| --- | ---: | ---: | ---: |")
    for job, (count, launch, duration) in sorted(runs.items()):
        report.line(f"| {job} | {count} | {launch:.2f} | {duration:.2f} |")
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
