"""Consistency check speed: an equal table pair and the same pair with scattered differences, beside
baselines measured in the same run on the same tables.

    python bench/consistency.py                # 1,000,000 rows (the issue's size)
    python bench/consistency.py --rows 100000  # a quick check

The source is a members table of ~200-byte rows (BIGINT key, VARCHAR/ENUM/CHAR/TEXT/JSON text,
DECIMAL, DOUBLE, FLOAT, TINYINT UNSIGNED, BOOLEAN, DATETIME(6), TIMESTAMP(6)); the target has the
types the JDBC sink's ``auto.create`` makes of it (LONGTEXT, SMALLINT, DATETIME(3), ...), filled
from the source by the server. Measured:

* ``full read``: one ``SELECT *`` of every row of both tables into Python (PyMySQL, streamed);
* ``CHECKSUM TABLE``: of each table (raw rows, so it cannot compare the two; a speed reference);
* ``equal check``: ``check_table`` on the equal pair;
* ``diff check``: ``check_table`` after ``--differences`` of each kind (target rows deleted, source
  rows deleted so the target has them extra, target values changed), scattered at random;
* ``repair``: those keys repaired end to end through Kafka: the JDBC source's repair (incrementing
  mode, its stored offset past every id, so it re-sends rows below its offset) sends the rows and
  tombstones to a topic, the real sink (upsert by record key, deletes on) applies them to the
  target, and the check of the replicated table at the source's point finds nothing, explained or
  not. The topic starts empty: the target was filled by the server, as if replicated.

Targets (issue 11): equal check <= 1.5x the full read; diff check <= 2x the equal check; rows
fetched into Python <= 20x the differences; repair until the check passes < 10 s. Uses the admin
account (``MUNGMO_MARIADB_ADMIN_URL``) and the stack's Kafka; drops its database and topics
afterwards. ``--markdown`` appends the table to docs/consistency.md.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from dataclasses import dataclass

import pymysql
import pymysql.cursors
from sqlalchemy import Engine, create_engine, make_url

from bench.report import ROOT, Report, add_markdown_flag
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS, JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS, JdbcSourceConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.consistency import CheckResult, CheckSettings, TableSpec, check_table
from mungmo_pipelines.core.consistency.pipelines import ReplicatedTable, check_replicated
from mungmo_pipelines.core.consistency.repair import JdbcRepair, RepairResult, RepairScope, RepairTarget
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.mariadb.session import admin_connection
from mungmo_pipelines.core.operations.offsets import ConnectorOffset, JdbcSourceOffsets
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url
from mungmo_pipelines.core.sink.runtime import JdbcSink
from mungmo_pipelines.core.source.offsets import table_partition

CONSISTENCY_PAGE = ROOT / "docs" / "consistency.md"

SOURCE_DDL = """CREATE TABLE members (
  id BIGINT NOT NULL PRIMARY KEY,
  member_name VARCHAR(64) NOT NULL,
  email VARCHAR(100) COLLATE utf8mb4_general_ci,
  status ENUM('new', 'active', 'gone') NOT NULL,
  weight_kg DECIMAL(7,2),
  walk_km DOUBLE,
  rating FLOAT,
  visits TINYINT UNSIGNED NOT NULL,
  neutered BOOLEAN NOT NULL,
  postcode CHAR(8),
  walk_note TEXT,
  prefs JSON,
  created_at DATETIME(6) NOT NULL,
  updated_at TIMESTAMP(6) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
TARGET_DDL = """CREATE TABLE members_copy (
  id BIGINT NOT NULL PRIMARY KEY,
  member_name LONGTEXT NOT NULL, email LONGTEXT, status LONGTEXT NOT NULL, weight_kg DECIMAL(7,2),
  walk_km DOUBLE, rating FLOAT, visits SMALLINT NOT NULL, neutered TINYINT NOT NULL, postcode LONGTEXT,
  walk_note LONGTEXT, prefs LONGTEXT, created_at DATETIME(3) NOT NULL, updated_at DATETIME(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""
FILL = """INSERT INTO members SELECT seq,
  CONCAT(ELT(1 + seq % 5, '김민지', '이서준', 'Bob Smith', '박지우', 'Alice Kim'), '-', seq),
  CONCAT('member', seq, '@example.com'), ELT(1 + seq % 3, 'new', 'active', 'gone'),
  IF(seq % 11 = 0, NULL, (seq % 9000) / 100 + 1), seq / 7e0, (seq % 1000) / 8e0, seq % 256, seq % 2,
  LPAD(seq % 99999, 5, '0'), IF(seq % 5 = 0, NULL, CONCAT('산책 ', REPEAT(SUBSTR(MD5(seq), 1, 12), 4))),
  IF(seq % 3 = 0, NULL, CONCAT('{{"walks": ', seq % 7, ', "treats": ["chew", "bone"]}}')),
  '2024-01-01' + INTERVAL seq SECOND + INTERVAL (seq * 7919 % 1000000) MICROSECOND,
  '2024-06-01' + INTERVAL seq MINUTE + INTERVAL (seq % 1000) MICROSECOND
FROM seq_1_to_{rows}"""

ROW_BYTES = """SELECT AVG(LENGTH(CONCAT_WS('', member_name, email, status, weight_kg, walk_km, rating, visits,
  neutered, postcode, walk_note, prefs, created_at, updated_at)) + 8) FROM members"""


def timed(action: callable) -> tuple[float, object]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def full_read(database: str) -> int:
    """Every row of both tables into Python, streamed (the cheapest way PyMySQL reads them)."""
    rows = 0
    with admin_connection(database) as conn:
        for table in ("members", "members_copy"):
            with conn.cursor(pymysql.cursors.SSCursor) as cursor:
                cursor.execute(f"SELECT * FROM {table}")
                for _ in cursor:
                    rows += 1
    return rows


def checksum_tables(database: str) -> None:
    with admin_connection(database) as conn, conn.cursor() as cursor:
        for table in ("members", "members_copy"):
            cursor.execute(f"CHECKSUM TABLE {table}")
            cursor.fetchall()


def add_differences(database: str, rows: int, each: int, seed: int) -> dict[str, set[int]]:
    ids = random.Random(seed).sample(range(1, rows + 1), 3 * each)
    made = {"missing": set(ids[:each]), "extra": set(ids[each : 2 * each]), "different": set(ids[2 * each :])}
    with admin_connection(database) as conn, conn.cursor() as cursor:
        cursor.execute(f"DELETE FROM members_copy WHERE id IN ({', '.join(map(str, made['missing']))})")
        cursor.execute(f"DELETE FROM members WHERE id IN ({', '.join(map(str, made['extra']))})")
        changes = ("member_name = CONCAT(member_name, '!')", "weight_kg = weight_kg + 0.01", "walk_note = NULL")
        for i, key in enumerate(sorted(made["different"])):
            cursor.execute(f"UPDATE members_copy SET {changes[i % len(changes)]}, visits = visits + 1 WHERE id = {key}")
    return made


def check(database: str, settings: CheckSettings) -> CheckResult:
    engine = create_engine(make_url(mariadb_admin_url()).set(database=database))
    try:
        return check_table(engine, engine, TableSpec(database, "members", database, "members_copy"), settings=settings)
    finally:
        engine.dispose()


def found_keys(result: CheckResult) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {"missing": set(), "extra": set(), "different": set()}
    for difference in result.differences:
        found[difference.kind].add(difference.key[0])
    return found


@dataclass
class Repair:
    """The end-to-end repair: seconds to send, to apply, to check, and what was sent and found."""

    send_s: float
    apply_s: float
    check_s: float
    sent: RepairResult
    after: CheckResult

    @property
    def total_s(self) -> float:
        return self.send_s + self.apply_s + self.check_s


def connector(database: str, **config: str) -> JdbcSourceConfig | JdbcSinkConfig:
    url = make_url(mariadb_admin_url())
    parsed = parse_connector(
        {
            "name": f"{database}-{'source' if config['connector.class'] == JDBC_SOURCE_CLASS else 'sink'}",
            "config": {
                "connection.url": f"jdbc:mysql://{url.host}:{url.port or 3306}/{database}",
                "connection.user": url.username or "root",
                "connection.password": url.password or "",
                **config,
            },
        }
    )
    assert isinstance(parsed, (JdbcSourceConfig, JdbcSinkConfig))
    return parsed


def repair(database: str, rows: int, diff: CheckResult, settings: CheckSettings, kafka: KafkaSettings) -> Repair:
    """Repair ``diff``'s keys through Kafka, apply them with the sink and check until nothing differs."""
    source = connector(
        database,
        **{"connector.class": JDBC_SOURCE_CLASS, "mode": "incrementing", "incrementing.column.name": "id"},
        **{"table.whitelist": "members", "topic.prefix": f"{database}_"},
        **{"offsets.storage.topic": f"{database}_offsets"},
    )
    assert isinstance(source, JdbcSourceConfig)
    topic = source.topic_for("members")
    sink = connector(
        database,
        **{"connector.class": JDBC_SINK_CLASS, "topics": topic, "table.name.format": "members_copy"},
        **{"pk.mode": "record_key", "insert.mode": "upsert", "delete.enabled": "true"},
    )
    assert isinstance(sink, JdbcSinkConfig)
    ensure_topic(kafka, topic)
    # The source has sent every id: the repaired rows are below its offset, which the repair must not move.
    offset = ConnectorOffset(table_partition(database, "members"), {"incrementing": rows})
    JdbcSourceOffsets(source, kafka).alter([offset])
    engine: Engine = create_engine(make_url(mariadb_admin_url()).set(database=database))
    try:
        started = time.perf_counter()
        sent = JdbcRepair(source, engine, kafka).repair(
            "members", RepairScope.of_differences(diff), [RepairTarget(sink, engine)]
        )
        send_s = time.perf_counter() - started
        apply_s, _ = timed(lambda: JdbcSink(sink, engine, kafka).run())
        check_s, after = timed(
            lambda: check_replicated(
                ReplicatedTable(source, sink, "members"),
                engine,
                engine,
                kafka,
                apply=lambda: JdbcSink(sink, engine, kafka).run(),
                settings=settings,
            )
        )
        return Repair(send_s, apply_s, check_s, sent, after)
    finally:
        engine.dispose()


def drop_topics(kafka: KafkaSettings, database: str) -> None:
    admin = kafka.admin()
    try:
        mine = [t for t in admin.list_topics() if t.startswith(f"{database}_")]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--differences", type=int, default=100, help="rows of each kind: missing, extra, changed")
    parser.add_argument("--chunk-seconds", type=float, default=CheckSettings.chunk_seconds)
    parser.add_argument("--piece-rows", type=int, default=CheckSettings.piece_rows)
    parser.add_argument("--seed", type=int, default=11)
    add_markdown_flag(parser, CONSISTENCY_PAGE)
    args = parser.parse_args()
    settings = CheckSettings(chunk_seconds=args.chunk_seconds, piece_rows=args.piece_rows)
    kafka = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
    database = f"mungmo_bench_{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()
    with admin_connection() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database} DEFAULT CHARACTER SET utf8mb4")
    try:
        with admin_connection(database) as conn, conn.cursor() as cursor:
            cursor.execute("SET SESSION time_zone = '+00:00'")
            cursor.execute(SOURCE_DDL)
            cursor.execute(TARGET_DDL)
            fill_s, _ = timed(lambda: cursor.execute(FILL.format(rows=args.rows)))
            cursor.execute("INSERT INTO members_copy SELECT * FROM members")
            cursor.execute("ANALYZE TABLE members, members_copy")
            cursor.fetchall()
            cursor.execute(ROW_BYTES)
            row_bytes = float(cursor.fetchone()[0])
        print(f"{args.rows:,} rows of ~{row_bytes:.0f} bytes (text form) filled in {fill_s:.1f}s; database {database}")

        read_s, read_rows = timed(lambda: full_read(database))
        checksum_s, _ = timed(lambda: checksum_tables(database))
        equal_s, equal = timed(lambda: check(database, settings))
        assert equal.passed and equal.stats.source_rows == args.rows, equal.summary()
        made = add_differences(database, args.rows, args.differences, args.seed)
        diff_s, diff = timed(lambda: check(database, settings))
        assert found_keys(diff) == made, "the check did not find exactly the differences made"
        differences = sum(len(keys) for keys in made.values())
        repaired = repair(database, args.rows, diff, settings, kafka)
        after = repaired.after
        assert after.passed and not after.explained and not after.in_flight, after.summary()
        assert (repaired.sent.rows_sent, repaired.sent.tombstones_sent) == (2 * args.differences, args.differences)
    finally:
        with admin_connection() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        drop_topics(kafka, database)
    load_after = os.getloadavg()

    report = Report("Consistency check and repair", CONSISTENCY_PAGE)
    each = args.differences
    report.line(f"{args.rows:,} rows of ~{row_bytes:.0f} bytes (text form), {each} differences of each kind")
    report.line()
    report.line("| measure | seconds | vs full read | vs equal check | target | rows into Python |")
    report.line("| --- | ---: | ---: | ---: | --- | ---: |")
    report.line(f"| full read of both tables | {read_s:.2f} | 1.00 | | | {read_rows:,} |")
    report.line(f"| CHECKSUM TABLE of both | {checksum_s:.2f} | {checksum_s / read_s:.2f} | | | 0 |")
    report.line(
        f"| equal check | {equal_s:.2f} | {equal_s / read_s:.2f} | 1.00 | <= 1.5x full read: "
        f"{'met' if equal_s <= 1.5 * read_s else 'MISSED'} | {equal.stats.rows_fetched} |"
    )
    fetched = diff.stats.rows_fetched
    fetched_ok = fetched <= 20 * differences
    report.line(
        f"| diff check ({differences} differences) | {diff_s:.2f} | {diff_s / read_s:.2f} | {diff_s / equal_s:.2f} | "
        f"<= 2x equal check: {'met' if diff_s <= 2 * equal_s else 'MISSED'}; rows <= 20x differences: "
        f"{'met' if fetched_ok else 'MISSED'} ({fetched / differences:.1f}x) | {fetched} |"
    )
    sent = repaired.sent
    report.line(
        f"| repair of the {differences} keys until the check passes | {repaired.total_s:.2f} | "
        f"{repaired.total_s / read_s:.2f} | {repaired.total_s / equal_s:.2f} | < 10 s: "
        f"{'met' if repaired.total_s < 10 else 'MISSED'} | {sent.rows_sent} (+ {after.stats.rows_fetched} checking) |"
    )
    report.line()
    report.line(
        f"repair: {sent.rows_sent} rows and {sent.tombstones_sent} tombstones sent in {sent.transactions} "
        f"transaction(s) {repaired.send_s:.2f}s, applied by the sink {repaired.apply_s:.2f}s, checked "
        f"{repaired.check_s:.2f}s"
    )
    for label, result in (("equal", equal), ("diff", diff), ("after repair", after)):
        s = result.stats
        phases = ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in s.phases_s.items())
        report.line(
            f"{label}: {s.chunks} chunks, {s.pieces} pieces, {s.ranges_bisected} ranges bisected in "
            f"{s.bisection_levels} levels, {s.boundary_keys} boundary keys, {s.queries} queries; {phases}"
        )
    report.line(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs")
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
