"""CDC source throughput (Debezium MariaDB bodies): snapshot and streaming, beside raw baselines.

    PYTHONPATH=. python bench/cdc.py                                  # 1,000,000 + 1,000,000 + 100,000 rows
    PYTHONPATH=. python bench/cdc.py --rows 200000 --single-rows 20000

Uses bench/source.py's ``walks`` rows (about 200 bytes; Korean text, an emoji, a DECIMAL, a
DATETIME(3)) in ``mungmo_test_bench_<hex>``, and measures, each stage in its own process (so its
peak RSS is its own):

- ``snapshot``:   ``walks`` (``--rows`` rows) copied by a connector with ``snapshot.mode=initial_only``,
  beside a raw ``SELECT`` of the same rows (PyMySQL SSCursor, no encoding, no Kafka);
- ``stream``:     ``--rows`` rows written in 1,000-row transactions, then ``--single-rows`` rows one
  transaction each, each part streamed by a connector whose stored offset is the position before it,
  beside a raw binlog read and decode of the same events (``BinlogReader``, no Kafka);
- ``produce``:    the same records (``ChangeEventEncoder`` output, built in memory first, not timed)
  through the source's transactional producer with no database, 2,048 records per transaction (the
  connector's ``max.batch.size``).

Writing the rows is not measured. Uses the local stack (or ``MUNGMO_MARIADB_ADMIN_URL`` /
``MUNGMO_KAFKA_BOOTSTRAP``) and drops what it created.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
from sqlalchemy import make_url  # noqa: E402

from bench.binlog_read import admin_connection, replica_settings, write_rows  # noqa: E402
from bench.report import Report, add_markdown_flag  # noqa: E402
from bench.source import WALKS, peak_rss_mb, run_stage  # noqa: E402
from mungmo_pipelines.core.config.debezium_source import MARIADB_CONNECTOR_CLASS  # noqa: E402
from mungmo_pipelines.core.config.loader import parse_connector  # noqa: E402
from mungmo_pipelines.core.kafka.clients import KafkaSettings  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog import BinlogPosition, BinlogReader, RowChange  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog.checks import head_position  # noqa: E402
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url  # noqa: E402

SERVER_ID = 7_000_101


def connector(database: str, table: str, prefix: str, **options: str) -> dict:
    """A connector of its own (name, topics, server id) for one stage."""
    url = make_url(mariadb_admin_url())
    return {
        "name": f"bench-{prefix}",
        "config": {
            "connector.class": MARIADB_CONNECTOR_CLASS,
            "database.hostname": url.host,
            "database.port": str(url.port or 3306),
            "database.user": url.username or "root",
            "database.password": url.password or "",
            "database.server.id": str(SERVER_ID + sum(prefix.encode()) % 1000),
            "topic.prefix": prefix,
            "table.include.list": f"{database}\\.{table}",
            "offsets.storage.topic": f"{prefix}-offsets",
            **options,
        },
    }


def _cleanup_topics(prefix: str) -> None:
    kafka = KafkaSettings(kafka_bootstrap())
    admin = kafka.admin()
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(prefix)]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


# --- stages (each runs in its own process) -----------------------------------------------


def stage_select(args: argparse.Namespace) -> dict:
    connection = admin_connection(args.database)
    started = time.perf_counter()
    cursor = connection.cursor(pymysql.cursors.SSCursor)
    cursor.execute(f"SELECT * FROM `{args.table}` ORDER BY id")
    rows = 0
    while batch := cursor.fetchmany(1000):
        rows += len(batch)
    seconds = time.perf_counter() - started
    connection.close()
    return {"rows": rows, "seconds": seconds}


def stage_binlog(args: argparse.Namespace) -> dict:
    start = BinlogPosition.from_offset(json.loads(args.start))
    wanted = (args.database, args.table)
    reader = BinlogReader(replica_settings(), start, include=lambda db, table: (db, table) == wanted, blocking=False)
    started = time.perf_counter()
    rows = sum(1 for change in reader if type(change) is RowChange)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _run_connector(args: argparse.Namespace, **options: str) -> dict:
    from mungmo_pipelines.core.source.cdc.offsets import CdcOffset, server_partition
    from mungmo_pipelines.core.source.cdc.reader import run_cdc_source
    from mungmo_pipelines.core.source.offsets import offset_key

    prefix = f"{args.database}_{args.table}"
    config = parse_connector(connector(args.database, args.table, prefix, **options))
    kafka = KafkaSettings(kafka_bootstrap())
    if args.start:
        # The stored offset: the position before the part's rows, as an earlier run would have left it.
        from mungmo_pipelines.core.connect.json_converter import dumps
        from mungmo_pipelines.core.kafka.topics import ensure_topic

        ensure_topic(kafka, f"{prefix}-offsets", 1, 1, {"cleanup.policy": "compact"})
        producer = kafka.producer()
        value = CdcOffset(BinlogPosition.from_offset(json.loads(args.start))).to_value()
        producer.send(f"{prefix}-offsets", key=offset_key(config.name, server_partition(prefix)), value=dumps(value))
        producer.flush()
        producer.close()
    started = time.perf_counter()
    result = run_cdc_source(config, config.connection, kafka)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    records = result.run.rows
    _cleanup_topics(prefix)
    return {"rows": sum(result.stats.events.values()), "records": records, "seconds": seconds}


def stage_snapshot(args: argparse.Namespace) -> dict:
    return _run_connector(args, **{"snapshot.mode": "initial_only", "snapshot.fetch.size": "2000"})


def stage_stream(args: argparse.Namespace) -> dict:
    return _run_connector(args, **{"snapshot.mode": "no_data"})


def stage_produce(args: argparse.Namespace) -> dict:
    """The connector's records, built in memory first, through the source's producer alone."""
    from mungmo_pipelines.core.connect.debezium import ChangeEventEncoder, DebeziumOptions, SourceInfo
    from mungmo_pipelines.core.kafka.topics import ensure_topic
    from mungmo_pipelines.core.kafka.transactions import TransactionalProducer
    from mungmo_pipelines.core.mariadb.catalog import read_table_schema
    from mungmo_pipelines.core.mariadb.select_values import contract_row, select_converters

    connection = admin_connection(args.database)
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        schema = read_table_schema(cursor, args.database, args.table)
        cursor.execute(f"SELECT * FROM `{args.table}` ORDER BY id")
        converters = select_converters(schema)
        rows = [contract_row(converters, row) for row in cursor.fetchall()]
    connection.close()
    topic = f"{args.database}_{args.table}_produce"
    encoder = ChangeEventEncoder(schema, DebeziumOptions(topic), run_id=str(uuid.uuid4()))
    source = SourceInfo(ts_ns=time.time_ns(), snapshot="false", server_id=1, gtid="0-1-1", file="mysql-bin.000001")
    records = [record for row in rows for record in encoder.create(row, source)]
    del rows
    kafka = KafkaSettings(kafka_bootstrap())
    ensure_topic(kafka, topic)
    producer = TransactionalProducer(kafka, f"bench-produce-{topic}")
    producer.init_transactions()
    started = time.perf_counter()
    for first in range(0, len(records), 2048):
        producer.begin_transaction()
        for record in records[first : first + 2048]:
            producer.send(topic, record.key, record.value, record.headers)
        producer.flush()
        producer.commit_transaction()
    seconds = time.perf_counter() - started
    _cleanup_topics(topic)
    return {"rows": len(records), "seconds": seconds}


STAGES = {
    "select": stage_select,
    "binlog": stage_binlog,
    "snapshot": stage_snapshot,
    "stream": stage_stream,
    "produce": stage_produce,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_markdown_flag(parser)
    parser.add_argument("--rows", type=int, default=1_000_000, help="snapshot rows, and rows in 1,000-row transactions")
    parser.add_argument("--single-rows", type=int, default=100_000, help="rows written one transaction each")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--start", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = STAGES[args.stage](args)
        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    database = f"mungmo_test_bench_{uuid.uuid4().hex[:8]}"
    admin = admin_connection()
    results: list[tuple[str, dict, str]] = []  # (stage, result, baseline stage)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
            cursor.execute(f"USE `{database}`")
            for table in ("walks", "walks_stream", "walks_single"):
                cursor.execute(WALKS.replace("CREATE TABLE walks", f"CREATE TABLE {table}"))
            cursor.execute("SELECT @@global.innodb_flush_log_at_trx_commit")
            (flush,) = cursor.fetchone()
        try:
            with admin.cursor() as cursor:
                cursor.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
            write_rows(admin, "walks", args.rows, 10_000)
            starts = {}
            for table, rows, per_transaction in (
                ("walks_stream", args.rows, 1000),
                ("walks_single", args.single_rows, 1),
            ):
                starts[table] = json.dumps(head_position(admin).as_offset())
                write_rows(admin, table, rows, per_transaction)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {int(flush)}")

        common = {"database": database}
        snapshot_base = "snapshot: raw SELECT of the same rows (SSCursor)"
        results.append((snapshot_base, run_stage("select", __file__, table="walks", **common), snapshot_base))
        produce = "raw produce of the same records (transactional producer, no database)"
        results.append((produce, run_stage("produce", __file__, table="walks", **common), produce))
        snapshot = run_stage("snapshot", __file__, table="walks", **common)
        results.append(("snapshot: connector (snapshot.mode=initial_only)", snapshot, snapshot_base))
        for table, label in (("walks_stream", "1,000-row transactions"), ("walks_single", "single-row transactions")):
            base = f"{label}: raw binlog read + decode (BinlogReader)"
            part = {"table": table, "start": starts[table], **common}
            results.append((base, run_stage("binlog", __file__, **part), base))
            results.append((f"{label}: connector streaming", run_stage("stream", __file__, **part), base))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()

    load = os.getloadavg()
    report = Report("CDC source (bench/cdc.py)")
    report.line(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    report.line()
    header = (
        f"| {'stage':<72} | {'rows':>9} | {'seconds':>7} | {'rows/s':>9} | {'/ baseline':>10} | "
        f"{'/ produce':>9} | {'peak RSS MB':>11} |"
    )
    report.line(header)
    report.line("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    rates = {stage: result["rows"] / result["seconds"] for stage, result, _ in results}
    for stage, result, baseline in results:
        rate = rates[stage]
        report.line(
            f"| {stage:<72} | {result['rows']:>9,} | {result['seconds']:>7.2f} | {rate:>9,.0f} | "
            f"{rate / rates[baseline]:>10.0%} | {rate / rates[produce]:>9.0%} | {result['peak_rss_mb']:>11.0f} |"
        )
    report.line()
    report.line("rows/s of the connector stages count source rows (a record each here: inserts only).")
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
