"""Shared helpers for the consistency tests: run a check on sandbox databases, load a time zone, a real
source-to-sink replication to check and repair (JDBC, and CDC with Debezium's source and sink)."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from pymysql.constants import CLIENT
from sqlalchemy import Engine

from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.consistency import CheckResult, CheckSettings, TableSpec, check_table
from mungmo_pipelines.core.consistency.pipelines import ReplicatedTable, check_replicated
from mungmo_pipelines.core.consistency.repair import CdcRepair, JdbcRepair, RepairResult, RepairScope, RepairTarget
from mungmo_pipelines.core.mariadb.session import admin_connection
from mungmo_pipelines.core.sink.runtime import JdbcSink, SinkRun
from mungmo_pipelines.core.source.cdc.incremental import signal_table_ddl
from mungmo_pipelines.core.source.cdc.reader import CdcRun, SnapshotRequest
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from mungmo_pipelines.core.source.runtime import SourceRun
from tests.support.cdc import Cdc
from tests.support.sandbox import Sandbox
from tests.support.source import writer
from tests.support.threads import Background

SEOUL = "Asia/Seoul"


def run_check(sandbox: Sandbox, spec: TableSpec, **options: Any) -> CheckResult:
    """``check_table`` on the sandbox's server, with an engine per side as a caller would have."""
    source, target = sandbox.engine(spec.source_database), sandbox.engine(spec.target_database)
    try:
        return check_table(source, target, spec, **options)
    finally:
        source.dispose()
        target.dispose()


def differing_columns(result: CheckResult) -> dict[Any, set[str]]:
    """{first key value: names of the differing source columns} of the "different" rows."""
    return {d.key[0]: {c.column for c in d.columns} for d in result.differences if d.kind == "different"}


def keys_of(result: CheckResult, kind: str) -> set[Any]:
    return {d.key[0] if len(d.key) == 1 else tuple(d.key) for d in result.differences if d.kind == kind}


def ensure_time_zone(admin: Engine, zone: str) -> str:
    """Load ``zone`` into the server's time zone tables unless it knows it already (the stack starts
    without them; MariaDB needs them to convert named zones)."""
    with admin.connect() as conn:
        known = conn.exec_driver_sql("SELECT COUNT(*) FROM mysql.time_zone_name WHERE Name = %s", (zone,)).scalar()
    if known:
        return zone
    tool = shutil.which("mariadb-tzinfo-to-sql") or shutil.which("mysql_tzinfo_to_sql")
    assert tool, "mariadb-tzinfo-to-sql (package mariadb-server) is needed to load time zone tables"
    script = subprocess.run(
        [tool, f"/usr/share/zoneinfo/{zone}", zone], check=True, capture_output=True, text=True
    ).stdout
    conn = admin_connection("mysql", client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cursor:
            cursor.execute(script)
            while cursor.nextset():
                pass
    finally:
        conn.close()
    return zone


MEMBERS_DDL = """CREATE TABLE members (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(40) NOT NULL,
  score DECIMAL(7,2) NULL,
  note TEXT NULL,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET=utf8mb4"""
FILL_MEMBERS = (
    "INSERT INTO members (name, score, note) SELECT CONCAT('member-', seq), MOD(seq, 10000) / 100, "
    "IF(MOD(seq, 3) = 0, NULL, REPEAT('n', MOD(seq, 7))) FROM seq_1_to_{rows}"
)
# The sink settings a repair needs: rows upserted by key, tombstones applied.
REPAIRABLE_SINK = {"pk.mode": "record_key", "insert.mode": "upsert", "delete.enabled": "true", "auto.create": "true"}


class Pipeline:
    """What a replication of either kind shares: its sink's runs and the check of its replicated table."""

    sandbox: Sandbox
    sink: SinkConfig
    replicated: ReplicatedTable
    source_engine: Engine
    target_engine: Engine

    def run_source(self) -> object:
        raise NotImplementedError

    def run_sink(self) -> SinkRun:
        return JdbcSink(self.sink, self.target_engine, self.sandbox.kafka).run()

    def replicate(self) -> None:
        self.run_source()
        self.run_sink()

    def check(self, **options: Any) -> CheckResult:
        """The check of the replicated table, running the sink to apply the source's point."""
        options.setdefault("apply", self.run_sink)
        return check_replicated(self.replicated, self.source_engine, self.target_engine, self.sandbox.kafka, **options)

    def close(self) -> None:
        self.source_engine.dispose()
        self.target_engine.dispose()


P = TypeVar("P", bound=Pipeline)


def pipeline_fixture(kind: type[P]) -> Any:
    """A fixture making pipelines of ``kind`` on the test's sandbox (options as its constructor's), closed after."""

    @pytest.fixture
    def pipeline(sandbox: Sandbox) -> Iterator[Callable[..., P]]:
        made: list[P] = []

        def make(**options: Any) -> P:
            replication = kind(sandbox, **options)  # type: ignore[call-arg]
            made.append(replication)
            return replication

        yield make
        for replication in made:
            replication.close()

    return pipeline


class Replication(Pipeline):
    """A source table, the real JDBC source copying it to a topic and the real sink writing that topic's
    table, on a sandbox: the pipeline a check compares, and a repair repairs."""

    def __init__(
        self,
        sandbox: Sandbox,
        mode: str = "timestamp+incrementing",
        ddl: str = MEMBERS_DDL,
        table: str = "members",
        source_options: dict[str, str] | None = None,
        sink_options: dict[str, str] | None = None,
        label: str = "",
    ) -> None:
        """``label`` tells apart several replications of one test (databases, topic, connector names)."""
        self.sandbox = sandbox
        self.table = table
        self.source_db, self.target_db = sandbox.database(f"src{label}"), sandbox.database(f"tgt{label}")
        sandbox.execute(self.source_db, ddl)
        options = {"mode": mode, "table.whitelist": table}
        if "incrementing" in mode:
            options["incrementing.column.name"] = "id"
        if "timestamp" in mode:
            options["timestamp.column.name"] = "updated_at"
        self.topic = sandbox.topic(f"{label}{table}")
        options["topic.prefix"] = self.topic.removesuffix(table)
        source_body = sandbox.source_body(self.source_db, **options, **(source_options or {}))
        source = parse_connector({**source_body, "name": source_body["name"] + label})
        assert isinstance(source, JdbcSourceConfig)
        self.source = source
        sink_body = sandbox.sink_body(self.target_db, topics=self.topic, **(sink_options or REPAIRABLE_SINK))
        sink = parse_connector({**sink_body, "name": sink_body["name"] + label})
        assert isinstance(sink, JdbcSinkConfig)
        self.sink = sink
        self.replicated = ReplicatedTable(source, sink, table)
        self.source_engine, self.target_engine = sandbox.engine(self.source_db), sandbox.engine(self.target_db)

    def run_source(self) -> SourceRun:
        return run_jdbc_source(self.source, self.source_engine, self.sandbox.kafka)

    def repair(self, scope: RepairScope, sinks: list[JdbcSinkConfig] | None = None) -> RepairResult:
        targets = [RepairTarget(sink, self.target_engine) for sink in sinks or [self.sink]]
        return JdbcRepair(self.source, self.source_engine, self.sandbox.kafka).repair(self.table, scope, targets)

    def source_rows(self, where: str = "TRUE") -> list[tuple[Any, ...]]:
        return self.sandbox.rows(
            self.source_db, f"SELECT id, name, score, note FROM {self.table} WHERE {where} ORDER BY id"
        )

    def target_rows(self, where: str = "TRUE") -> list[tuple[Any, ...]]:
        return self.sandbox.rows(
            self.target_db, f"SELECT id, name, score, note FROM `{self.topic}` WHERE {where} ORDER BY id"
        )


# Debezium's JDBC sink as a repair needs it: upserts by the record key, deletes applied, tables created.
DEBEZIUM_SINK = {
    "insert.mode": "upsert",
    "primary.key.mode": "record_key",
    "delete.enabled": "true",
    "schema.evolution": "basic",
}


class CdcReplication(Pipeline):
    """A source table, the real Debezium CDC source capturing its database (a signal table in a database
    of its own) and a real sink writing the table's topic: Debezium's JDBC sink by default, or the JDBC
    sink behind ``ExtractNewRecordState`` (``sink_class="jdbc"``)."""

    def __init__(
        self,
        sandbox: Sandbox,
        ddl: str = MEMBERS_DDL,
        table: str = "members",
        source_options: dict[str, str] | None = None,
        sink_options: dict[str, str] | None = None,
        sink_class: str = "debezium",
        label: str = "",
    ) -> None:
        self.sandbox = sandbox
        self.table = table
        self.source_db, self.target_db = sandbox.database(f"src{label}"), sandbox.database(f"tgt{label}")
        self.signal_db = sandbox.database(f"sig{label}")
        sandbox.execute(self.source_db, ddl)
        sandbox.execute(self.signal_db, signal_table_ddl(self.signal_db, "debezium_signal"))
        options = {"signal.data.collection": f"{self.signal_db}.debezium_signal", **(source_options or {})}
        self.cdc = Cdc(sandbox, [self.source_db], options)
        self.source = self.cdc.config()
        self.topic = self.cdc.topic(self.source_db, table)
        sandbox.topics.add(self.topic)
        self.sink = self.sink_config(sink_options, sink_class, label)
        self.replicated = ReplicatedTable(self.source, self.sink, f"{self.source_db}.{table}")
        self.target_table = self.sink.table_for(self.topic)
        self.source_engine, self.target_engine = sandbox.engine(self.source_db), sandbox.engine(self.target_db)

    def sink_config(self, options: dict[str, str] | None, sink_class: str, label: str) -> SinkConfig:
        """A sink of ``sink_class`` on the table's topic, writing the target database."""
        if sink_class == "debezium":
            body = self.debezium_sink_body(self.sandbox, self.target_db, self.topic, options or DEBEZIUM_SINK)
            body["name"] += label
        else:
            unwrap = {
                "transforms": "unwrap",
                "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
                "table.name.format": self.table,  # a Debezium topic's dots are no table name
            }
            body = self.sandbox.sink_body(self.target_db, topics=self.topic, **{**REPAIRABLE_SINK, **unwrap,
                                                                                  **(options or {})})  # fmt: skip
            body["name"] += label
        config = parse_connector(body)
        assert isinstance(config, SinkConfig)
        return config

    @staticmethod
    def debezium_sink_body(sandbox: Sandbox, database: str, topic: str, options: dict[str, str]) -> dict[str, Any]:
        """A Debezium JDBC sink body on ``topic``, writing ``database`` as the ``mungmo`` user."""
        return {
            "name": f"test-dbz-sink-{sandbox.suffix}",
            "config": {
                "connector.class": DEBEZIUM_SINK_CLASS,
                "connection.url": sandbox.jdbc_url(database),
                "connection.username": "mungmo",
                "connection.password": "${env:MUNGMO_DB_PASSWORD}",
                "topics": topic,
                **options,
            },
        }

    def run_source(self, requests: tuple[SnapshotRequest, ...] = ()) -> CdcRun:
        return self.cdc.run(requests)

    def repair(self, scope: RepairScope) -> RepairResult:
        target = RepairTarget(self.sink, self.target_engine)
        repair = CdcRepair(self.source, self.source_engine, self.sandbox.kafka)
        try:
            return repair.repair(self.replicated.table, scope, [target])
        finally:
            self.cdc._register_topics()

    def target(self, *statements: str) -> None:
        """Statements on the target table, written ``{t}``."""
        self.sandbox.execute(self.target_db, *(s.replace("{t}", f"`{self.target_table}`") for s in statements))

    def source_rows(self, columns: str = "*", where: str = "TRUE") -> list[tuple[Any, ...]]:
        return self.sandbox.rows(self.source_db, f"SELECT {columns} FROM {self.table} WHERE {where} ORDER BY 1")

    def target_rows(self, columns: str = "*", where: str = "TRUE") -> list[tuple[Any, ...]]:
        return self.sandbox.rows(
            self.target_db, f"SELECT {columns} FROM `{self.target_table}` WHERE {where} ORDER BY 1"
        )


UNTOUCHED = 100  # ids 1..100: the writer never writes them
HOT = 150  # updated every fifth write: always ahead of the target


class Traffic(Background):
    """A writer inserting, updating and deleting rows of a members table of ``rows`` rows at a steady rate
    (ids up to ``UNTOUCHED`` never, ``HOT`` every fifth write), and the real pipeline (source run, then
    sink run) looping behind it, both in threads."""

    def __init__(self, replication: Pipeline, writes_per_s: float = 40, rows: int = 5000) -> None:
        self.replication = replication
        self.writes_per_s = writes_per_s
        self.rows = rows
        self.writes = 0
        self.pipeline_runs = 0
        self.replicating = False
        super().__init__(self._write, self._replicate)

    def _write(self) -> None:
        rng = random.Random(11)
        live = [key for key in range(UNTOUCHED + 1, self.rows + 1) if key != HOT]
        conn = writer(self.replication.source_db)
        conn.autocommit(True)
        try:
            with conn.cursor() as cursor:
                while not self.stopping:
                    action = rng.random()
                    if self.writes % 5 == 0:
                        cursor.execute("UPDATE members SET name = %s WHERE id = %s", (f"hot-{self.writes}", HOT))
                    elif action < 0.4:
                        cursor.execute("INSERT INTO members (name, score) VALUES (%s, %s)", ("new", rng.randint(0, 99)))
                        live.append(cursor.lastrowid)
                    elif action < 0.8:
                        cursor.execute(
                            "UPDATE members SET name = %s, score = %s WHERE id = %s",
                            (f"upd-{rng.random():.6f}", rng.randint(0, 9999) / 100, rng.choice(live)),
                        )
                    else:
                        cursor.execute("DELETE FROM members WHERE id = %s", (live.pop(rng.randrange(len(live))),))
                    self.writes += 1
                    time.sleep(1 / self.writes_per_s)
        except BaseException as err:
            self.errors.append(err)
        finally:
            conn.close()

    def _replicate(self) -> None:
        try:
            while not self.stopping:
                self.replicating = True
                self.replication.replicate()
                self.replicating = False
                self.pipeline_runs += 1
                time.sleep(0.3)
        except BaseException as err:
            self.errors.append(err)


@dataclass
class UnderTraffic:
    """A check made while :class:`Traffic` wrote and replicated: the check, the same tables compared with no
    point and no rule for rows not sent yet, and the writes and pipeline runs during the check."""

    result: CheckResult
    unsynced: CheckResult
    writes: int
    pipeline_runs: int

    def without_false_differences(self) -> CheckResult:
        """The check, once asserted to have found no difference while the writer and the pipeline ran,
        where the unsynchronised comparison saw rows in flight as differences."""
        assert self.unsynced.differences, "the writer should make a check without the protocol see rows in flight"
        result = self.result
        assert result.differences == [], result.summary()
        assert result.passed and result.caught_up and result.method == "chunks"
        assert self.writes >= 10 and self.pipeline_runs >= 1, "the writer and the pipeline must run during the check"
        assert result.stats.candidates > 0
        return result


def check_under_traffic(pipeline: Pipeline, settings: CheckSettings) -> UnderTraffic:
    with Traffic(pipeline) as traffic:
        time.sleep(2)
        unsynced = run_check(pipeline.sandbox, pipeline.replicated.spec, settings=settings)
        written_before, runs_before, running_before = traffic.writes, traffic.pipeline_runs, traffic.replicating
        result = pipeline.check(settings=settings)
        writes, runs = traffic.writes - written_before, traffic.pipeline_runs - runs_before
        # A run that was going when the check started or still goes at its end overlapped it too (a CDC
        # run with its sink can outlast a small check).
        runs += int(running_before or traffic.replicating)
    return UnderTraffic(result, unsynced, writes, runs)
