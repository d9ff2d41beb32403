"""CDC source throughput and latency (Debezium MariaDB bodies), beside raw baselines.

    PYTHONPATH=. python bench/cdc.py                                  # 1,000,000 + 1,000,000 + 100,000 rows
    PYTHONPATH=. python bench/cdc.py --rows 200000 --single-rows 20000 --latency-changes 1000

Uses bench/source.py's ``walks`` rows (about 200 bytes; Korean text, an emoji, a DECIMAL, a
DATETIME(3)) in ``mungmo_test_bench_<hex>``, and measures, each stage in its own process (so its
peak RSS is its own):

- ``snapshot``:   ``walks`` (``--rows`` rows) copied by a connector with ``snapshot.mode=initial_only``,
  beside a raw ``SELECT`` of the same rows (PyMySQL SSCursor, no encoding, no Kafka);
- ``stream``:     ``--rows`` rows written in 1,000-row transactions, then ``--single-rows`` rows one
  transaction each, each part streamed by a connector whose stored offset is the position before it,
  beside a raw binlog read and decode of the same events (``BinlogReader``, no Kafka);
- ``produce``:    the same records (``ChangeEventEncoder`` output of the same rows, encoded 20,480 at a
  time outside the timing, so memory stays bounded) through the source's transactional producer
  with no database, 2,048 records per transaction (the connector's ``max.batch.size``);
- the snapshot, the 1,000-row transactions and the produce again with
  ``producer.override.compression.type=lz4`` (each Debezium record repeats its ~3.5 KB schema);
- ``latency``:    ``--latency-changes`` single-row inserts at a steady ``--latency-rate`` per second
  while a connector run streams (``mungmo.streaming.duration.ms``) and the Debezium JDBC sink is
  run back to back in another process (what its lag sensor's runs do, without the sensor's 5 s tick
  and the run's start): the time from each insert's commit until its row event is read from the
  binlog by a raw ``BinlogReader`` (the floor), until its record is visible to a ``read_committed``
  consumer, and until its row is in the target table; p50, p95 and max.

Writing the rows is not measured. Uses the local stack (or ``MUNGMO_MARIADB_ADMIN_URL`` /
``MUNGMO_KAFKA_BOOTSTRAP``) and drops what it created.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
from sqlalchemy import make_url  # noqa: E402

from bench.binlog_read import replica_settings, write_rows  # noqa: E402
from bench.report import Report, add_markdown_flag  # noqa: E402
from bench.source import FILL, WALKS, peak_rss_mb, raw_read, run_stage  # noqa: E402
from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS  # noqa: E402
from mungmo_pipelines.core.config.debezium_source import MARIADB_CONNECTOR_CLASS  # noqa: E402
from mungmo_pipelines.core.config.loader import parse_connector  # noqa: E402
from mungmo_pipelines.core.kafka.clients import KafkaSettings  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog import BinlogError, BinlogPosition, BinlogReader, RowChange  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog.checks import head_position  # noqa: E402
from mungmo_pipelines.core.mariadb.session import admin_connection  # noqa: E402
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url  # noqa: E402

SERVER_ID = 7_000_101
LZ4 = {"producer.override.compression.type": "lz4"}
PRODUCE_CHUNK = 20_480  # records encoded (untimed) before they are produced (timed): 10 transactions


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


def sink_connector(database: str, topic: str) -> dict:
    """The team's CDC sink options (connectors/mungmo-cdc-sink.json) on the bench's target database."""
    url = make_url(mariadb_admin_url())
    return {
        "name": f"bench-sink-{database}",
        "config": {
            "connector.class": DEBEZIUM_SINK_CLASS,
            "connection.url": f"jdbc:mariadb://{url.host}:{url.port or 3306}/{database}",
            "connection.username": url.username or "root",
            "connection.password": url.password or "",
            "topics": topic,
            "collection.name.format": "${source.table}",
            "insert.mode": "upsert",
            "delete.enabled": "true",
            "primary.key.mode": "record_key",
            "schema.evolution": "basic",
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


def _options(args: argparse.Namespace) -> dict[str, str]:
    return LZ4 if args.compression == "lz4" else {}


# --- stages (each runs in its own process) -----------------------------------------------


def stage_select(args: argparse.Namespace) -> dict:
    return raw_read(args.database, f"SELECT * FROM `{args.table}` ORDER BY id")


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

    prefix = f"{args.database}_{args.table}_{args.compression}"
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
    return _run_connector(args, **{"snapshot.mode": "initial_only", "snapshot.fetch.size": "2000", **_options(args)})


def stage_stream(args: argparse.Namespace) -> dict:
    return _run_connector(args, **{"snapshot.mode": "no_data", **_options(args)})


def stage_produce(args: argparse.Namespace) -> dict:
    """The connector's records through the source's producer alone: the rows are read and encoded
    ``PRODUCE_CHUNK`` at a time outside the timing, then produced (timed), so memory stays bounded."""
    from mungmo_pipelines.core.connect.debezium import ChangeEventEncoder, DebeziumOptions, SourceInfo
    from mungmo_pipelines.core.kafka.topics import ensure_topic
    from mungmo_pipelines.core.kafka.transactions import TransactionalProducer
    from mungmo_pipelines.core.mariadb.catalog import read_table_schema
    from mungmo_pipelines.core.mariadb.select_values import contract_row, select_converters

    connection = admin_connection(args.database)
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        schema = read_table_schema(cursor, args.database, args.table)
    converters = select_converters(schema)
    topic = f"{args.database}_{args.table}_produce_{args.compression}"
    encoder = ChangeEventEncoder(schema, DebeziumOptions(topic), run_id=str(uuid.uuid4()))
    source = SourceInfo(ts_ns=time.time_ns(), snapshot="false", server_id=1, gtid="0-1-1", file="mysql-bin.000001")
    kafka = KafkaSettings(kafka_bootstrap())
    ensure_topic(kafka, topic)
    producer = TransactionalProducer(kafka, f"bench-produce-{topic}", compression=args.compression)
    producer.init_transactions()
    cursor = connection.cursor(pymysql.cursors.SSCursor)
    cursor.execute(f"SELECT * FROM `{args.table}` ORDER BY id")
    sent, seconds = 0, 0.0
    while rows := cursor.fetchmany(PRODUCE_CHUNK):
        records = [record for row in rows for record in encoder.create(contract_row(converters, row), source)]
        started = time.perf_counter()
        for first in range(0, len(records), 2048):
            producer.begin_transaction()
            for record in records[first : first + 2048]:
                producer.send(topic, record.key, record.value, record.headers)
            producer.commit_transaction()
        seconds += time.perf_counter() - started
        sent += len(records)
    producer.close()
    connection.close()
    _cleanup_topics(topic)
    return {"rows": sent, "seconds": seconds}


def stage_latency_source(args: argparse.Namespace) -> dict:
    """A connector run that keeps streaming while changes come (the latency stage's source)."""
    options = {"snapshot.mode": "no_data", "mungmo.streaming.duration.ms": str(args.duration_ms)}
    return _run_connector(args, **options, **{"mungmo.streaming.idle.ms": "10000"})


def stage_latency_sink(args: argparse.Namespace) -> dict:
    """The Debezium JDBC sink, one run after the other (each as a Dagster run of it would: a new
    consumer and connection), until the file ``args.start`` exists."""
    from mungmo_pipelines.core.mariadb.connection import create_engine
    from mungmo_pipelines.core.sink.runtime import JdbcSink

    config = parse_connector(sink_connector(args.database, args.table))
    engine = create_engine(config.connection.sqlalchemy_url())
    kafka = KafkaSettings(kafka_bootstrap())
    runs, records, started = 0, 0, time.perf_counter()
    while not Path(args.start).exists():
        records += JdbcSink(config, engine, kafka).run().records  # type: ignore[arg-type]
        runs += 1
    engine.dispose()
    return {"rows": records, "runs": runs, "seconds": time.perf_counter() - started}


STAGES = {
    "select": stage_select,
    "binlog": stage_binlog,
    "snapshot": stage_snapshot,
    "stream": stage_stream,
    "produce": stage_produce,
    "latency_source": stage_latency_source,
    "latency_sink": stage_latency_sink,
}


# --- latency -------------------------------------------------------------------------------


class TopicWatcher(threading.Thread):
    """Notes when each key's record becomes visible to a ``read_committed`` consumer of ``topic``."""

    def __init__(self, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.arrived: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import TopicPartition

        consumer = KafkaSettings(kafka_bootstrap()).consumer(isolation_level="read_committed", enable_auto_commit=False)
        try:
            while not consumer.partitions_for_topic(self.topic):  # created with the first change
                if self.stop.wait(0.05):
                    return
                consumer._client.cluster.request_update()  # kafka-python caches "no such topic"
            partitions = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic)]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            while not self.stop.is_set():
                for records in consumer.poll(timeout_ms=20).values():
                    now = time.time()
                    for record in records:
                        if record.value is not None:
                            self.arrived.setdefault(json.loads(record.key)["payload"]["id"], now)
        finally:
            consumer.close()


class BinlogWatcher(threading.Thread):
    """Notes when each insert's row event is read from the binlog by a raw reader (the floor)."""

    def __init__(self, database: str, table: str, start: BinlogPosition) -> None:
        super().__init__(daemon=True)
        settings = dataclasses.replace(replica_settings(), server_id=SERVER_ID - 1, heartbeat_seconds=0.5)
        wanted = (database, table)
        self.reader = BinlogReader(settings, start, include=lambda db, name: (db, name) == wanted, reconnect_attempts=0)
        self.arrived: dict[int, float] = {}

    def run(self) -> None:
        try:
            for change in self.reader:
                if type(change) is RowChange and change.after is not None:
                    self.arrived.setdefault(change.after[0], time.time())
        except (OSError, ValueError, pymysql.MySQLError, BinlogError):
            pass  # closed by the bench once everything arrived


def measure_latency(database: str, changes: int, rate: float) -> dict[str, Any]:
    """Steady inserts while a connector run streams and the sink runs back to back; latencies by path."""
    from sqlalchemy import create_engine

    from bench.latency import Watcher, percentile, wait_until

    table, target = "walks_latency", f"{database}_dst"
    prefix = f"{database}_{table}_none"
    topic = f"{prefix}.{database}.{table}"
    one_row = FILL.replace("INTO walks", f"INTO `{table}`").replace("seq_1_to_{rows}", "seq_{seq}_to_{seq}")
    admin = admin_connection(database)
    with admin.cursor() as cursor:
        cursor.execute(WALKS.replace("CREATE TABLE walks", f"CREATE TABLE {table}"))
        cursor.execute(f"CREATE DATABASE `{target}` DEFAULT CHARACTER SET utf8mb4")
    stop_file = Path(tempfile.mkdtemp(prefix="mungmo-cdc-latency-")) / "stop"
    duration_ms = int((changes / rate + 120) * 1000)
    binlog = BinlogWatcher(database, table, head_position(admin))
    topic_watcher = TopicWatcher(topic)
    engine = create_engine(make_url(mariadb_admin_url()).set(database=target))
    row_watcher = Watcher(engine, table, key="id")
    outputs: dict[str, dict] = {}

    def stage(name: str, **extra: str | int) -> threading.Thread:
        def run() -> None:
            try:
                outputs[name] = run_stage(name, __file__, compression="none", **extra)
            except SystemExit as failed:  # a thread would drop it silently
                outputs[name] = {"error": str(failed)}

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    source = stage("latency_source", database=database, table=table, duration_ms=duration_ms)
    sink = stage("latency_sink", database=target, table=topic, start=str(stop_file))
    for watcher in (binlog, topic_watcher, row_watcher):
        watcher.start()
    inserted: dict[int, float] = {}

    def insert(seq: int) -> None:
        with admin.cursor() as cursor:
            cursor.execute(one_row.format(seq=seq))  # autocommit: one transaction
        inserted[seq] = time.time()

    try:
        # Warm-up: rows until one is in the target (the run streams, the sink runs); not counted.
        seq = 1
        deadline = time.monotonic() + 120
        while not row_watcher.arrived:
            if time.monotonic() > deadline or not (source.is_alive() and sink.is_alive()):
                raise SystemExit(f"latency: no warm-up row reached {target}.{table} ({outputs})")
            insert(seq)
            seq += 1
            time.sleep(0.5)
        warm_up = set(inserted)
        first = time.monotonic()
        for index in range(changes):
            time.sleep(max(0.0, first + index / rate - time.monotonic()))
            insert(seq)
            seq += 1
        last = seq - 1
        wait_until(lambda: last in row_watcher.arrived and last in topic_watcher.arrived, 120, "the last change")
    finally:
        stop_file.touch()
        sink.join(timeout=120)
        row_watcher.stop.set()
        topic_watcher.stop.set()
        binlog.reader.close()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{target}`")
        admin.close()
        engine.dispose()
    source.join(timeout=60)  # ends mungmo.streaming.idle.ms (10 s) after the last change
    timed = {s: t for s, t in inserted.items() if s not in warm_up}
    paths = {}
    for label, watcher in (("binlog", binlog), ("topic", topic_watcher), ("target", row_watcher)):
        latencies = [watcher.arrived[s] - t for s, t in timed.items() if s in watcher.arrived]
        if len(latencies) != len(timed):
            raise SystemExit(f"latency: {len(timed) - len(latencies)} changes never reached the {label}")
        paths[label] = (percentile(latencies, 0.5), percentile(latencies, 0.95), max(latencies))
    achieved = len(timed) / (inserted[last] - min(timed.values()))
    return {"paths": paths, "changes": len(timed), "rate": achieved, "stages": outputs}


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_markdown_flag(parser)
    parser.add_argument("--rows", type=int, default=1_000_000, help="snapshot rows, and rows in 1,000-row transactions")
    parser.add_argument("--single-rows", type=int, default=100_000, help="rows written one transaction each")
    parser.add_argument("--latency-changes", type=int, default=3000, help="timed inserts of the latency stage")
    parser.add_argument("--latency-rate", type=float, default=100.0, help="inserts per second of the latency stage")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--start", default="", help=argparse.SUPPRESS)
    parser.add_argument("--compression", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--duration_ms", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = STAGES[args.stage](args)
        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    database = f"mungmo_test_bench_{uuid.uuid4().hex[:8]}"
    admin = admin_connection()
    load_at_start = os.getloadavg()
    # (stage, result, baseline stage, produce stage)
    results: list[tuple[str, dict, str, str]] = []
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
        select = "snapshot: raw SELECT of the same rows (SSCursor)"
        results.append((select, run_stage("select", __file__, table="walks", **common), select, select))
        produce = {}
        for compression in ("none", "lz4"):
            produce[compression] = f"raw produce of the same records, compression {compression} (no database)"
            stage = run_stage("produce", __file__, table="walks", compression=compression, **common)
            results.append((produce[compression], stage, produce[compression], produce[compression]))
        for compression in ("none", "lz4"):
            stage = run_stage("snapshot", __file__, table="walks", compression=compression, **common)
            results.append((f"snapshot: connector, compression {compression}", stage, select, produce[compression]))
        for table, label, compressions in (
            ("walks_stream", "1,000-row transactions", ("none", "lz4")),
            ("walks_single", "single-row transactions", ("none",)),
        ):
            base = f"{label}: raw binlog read + decode (BinlogReader)"
            part = {"table": table, "start": starts[table], **common}
            results.append((base, run_stage("binlog", __file__, **part), base, produce["none"]))
            for compression in compressions:
                stage = run_stage("stream", __file__, compression=compression, **part)
                results.append(
                    (f"{label}: connector streaming, compression {compression}", stage, base, produce[compression])
                )
        latency = measure_latency(database, args.latency_changes, args.latency_rate)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()

    load = os.getloadavg()
    report = Report("CDC source (bench/cdc.py)")
    report.line(
        f"load average at the start {load_at_start[0]:.2f}, at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"on {os.cpu_count()} cores"
    )
    report.line()
    report.header(
        f"| {'stage':<72} | {'rows':>9} | {'seconds':>7} | {'rows/s':>9} | {'/ baseline':>10} | "
        f"{'/ produce':>9} | {'peak RSS MB':>11} |"
    )
    rates = {stage: result["rows"] / result["seconds"] for stage, result, _, _ in results}
    for stage, result, baseline, producing in results:
        rate = rates[stage]
        report.line(
            f"| {stage:<72} | {result['rows']:>9,} | {result['seconds']:>7.2f} | {rate:>9,.0f} | "
            f"{rate / rates[baseline]:>10.0%} | {rate / rates[producing]:>9.0%} | {result['peak_rss_mb']:>11.0f} |"
        )
    report.line()
    report.line(
        "rows/s of the connector stages count source rows (a record each here: inserts only); the baseline of a "
        "connector stage is the raw read of the same rows, its produce column the raw produce with the same "
        "compression."
    )
    report.line()
    stages = latency["stages"]
    report.line(
        f"Latency: {latency['changes']:,} single-row inserts at {latency['rate']:.0f}/s while one connector run "
        f"streamed (peak RSS {stages['latency_source']['peak_rss_mb']:.0f} MB) and the sink ran back to back "
        f"({stages['latency_sink']['runs']} runs, peak RSS {stages['latency_sink']['peak_rss_mb']:.0f} MB)"
    )
    report.line()
    report.header(f"| {'from the insert committed until':<72} | {'p50 s':>6} | {'p95 s':>6} | {'max s':>6} |")
    for label, text in (
        ("binlog", "its row event is read from the binlog (raw BinlogReader; the floor)"),
        ("topic", "its record is visible in the topic (read_committed)"),
        ("target", "its row is in the target table (Debezium JDBC sink)"),
    ):
        p50, p95, worst = latency["paths"][label]
        report.line(f"| {text:<72} | {p50:>6.2f} | {p95:>6.2f} | {worst:>6.2f} |")
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
