"""Source throughput: rows per second from a MariaDB table into Kafka, beside raw baselines.

    PYTHONPATH=. python bench/source.py               # 1,000,000 rows of about 200 bytes (the issue's size)
    PYTHONPATH=. python bench/source.py --rows 200000

Builds ``mungmo_test_bench_<hex>.walks`` with the Sequence engine, then measures, each stage in
its own process so its peak RSS is its own:

- ``read``:    a bare PyMySQL ``SSCursor`` read of the same rows (no encoding, no Kafka);
- ``encode``:  ``RowEncoder`` alone on rows already in memory (the JSON cost);
- ``produce``: kafka-python producing the same serialized records with no database read, one
               transaction per second (the issue's raw baseline);
- ``produce-librdkafka``: the same with the source's own producer (confluent-kafka/librdkafka);
- ``source``:  ``JdbcSource.run()`` end to end (incrementing mode, empty offsets), with the
               default ``transaction.boundary=interval`` and with ``poll`` (one transaction per
               ``batch.max.rows``=100 rows, KIP-618's default boundary).

Prints one table; ratios are against the kafka-python raw produce and the raw read rates of the
same run.
Uses the local stack (or ``MUNGMO_MARIADB_ADMIN_URL`` / ``MUNGMO_KAFKA_BOOTSTRAP``) and drops
what it created.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, make_url  # noqa: E402

from bench.report import Report, add_markdown_flag  # noqa: E402
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS  # noqa: E402
from mungmo_pipelines.core.config.loader import parse_connector  # noqa: E402
from mungmo_pipelines.core.kafka.clients import KafkaSettings  # noqa: E402
from mungmo_pipelines.core.kafka.topics import ensure_topic  # noqa: E402
from mungmo_pipelines.core.mariadb.session import admin_connection  # noqa: E402
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url  # noqa: E402

SAMPLE = 10_000
WALKS = """
CREATE TABLE walks (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  member_name VARCHAR(50) NOT NULL,
  pet_name VARCHAR(50) NOT NULL,
  pet_kind ENUM('dog', 'cat', 'other') NOT NULL,
  neighbourhood VARCHAR(100) NOT NULL,
  walk_note VARCHAR(255) NULL,
  weight_kg DECIMAL(5,2) NULL,
  created_at DATETIME(3) NOT NULL
) DEFAULT CHARSET=utf8mb4
"""
FILL = """
INSERT INTO walks (member_name, pet_name, pet_kind, neighbourhood, walk_note, weight_kg, created_at)
SELECT ELT(1 + MOD(seq, 8), '김민지', '이서준', '박지우', '최하은', '정도윤', '강수아', '조예준', '윤지호'),
       ELT(1 + MOD(seq, 6), '초코', '나비', '콩이', '보리', '치즈', '토리'),
       ELT(1 + MOD(seq, 3), 'dog', 'cat', 'other'),
       ELT(1 + MOD(seq, 4), '서울 마포구 망원동 한강공원 산책로', '서울 성동구 성수동 서울숲',
                            '부산 해운대구 우동 해변', '경기 성남시 분당구 정자동 탄천'),
       CONCAT('아침 산책 ', MOD(seq, 60), '분, 공원에서 친구 만남 🐾 간식 조금, 물 충분히 ',
              REPEAT('x', 25 + MOD(seq, 40))),
       (MOD(seq, 3000)) / 100,
       TIMESTAMPADD(SECOND, seq, '2026-01-01 00:00:00')
FROM seq_1_to_{rows}
"""


def connector_body(database: str, topic_prefix: str, offsets_topic: str, **options: str) -> dict:
    url = make_url(mariadb_admin_url())
    return {
        "name": f"bench-{topic_prefix}",
        "config": {
            "connector.class": JDBC_SOURCE_CLASS,
            "connection.url": f"jdbc:mysql://{url.host}:{url.port or 3306}/{database}",
            "connection.user": url.username or "root",
            "connection.password": url.password or "",
            "mode": "incrementing",
            "table.whitelist": "walks",
            "topic.prefix": topic_prefix,
            "offsets.storage.topic": offsets_topic,
            **options,
        },
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- stages (each runs in its own process) -----------------------------------------------


def raw_read(database: str, query: str) -> dict:
    """The baseline read: ``query``'s rows streamed by PyMySQL's unbuffered cursor, nothing done with them."""
    import pymysql.cursors

    conn = admin_connection(database)
    started = time.perf_counter()
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    cursor.execute(query)
    rows = 0
    while batch := cursor.fetchmany(1000):
        rows += len(batch)
    seconds = time.perf_counter() - started
    conn.close()
    return {"rows": rows, "seconds": seconds}


def stage_read(args: argparse.Namespace) -> dict:
    return raw_read(args.database, "SELECT * FROM walks")


def _sample(args: argparse.Namespace):
    """Rows of the table already in memory and the source's encoder for them."""
    from mungmo_pipelines.core.connect.json_converter import RowEncoder
    from mungmo_pipelines.core.connect.source_types import field_codec
    from mungmo_pipelines.core.mariadb.columns import ResultColumn

    conn = admin_connection(args.database)
    cursor = conn.cursor()
    cursor.execute(f"SELECT * FROM walks LIMIT {SAMPLE}")
    columns = [ResultColumn.from_field(f) for f in cursor._result.fields]
    rows = cursor.fetchall()
    conn.close()
    return rows, RowEncoder([field_codec(c) for c in columns], "walks", [0])


def stage_encode(args: argparse.Namespace) -> dict:
    rows, encoder = _sample(args)
    started = time.perf_counter()
    for index in range(args.rows):
        encoder.encode(rows[index % len(rows)])
    return {"rows": args.rows, "seconds": time.perf_counter() - started}


def _produce_in_transactions_of_one_second(
    args: argparse.Namespace, producer: Any, send: Callable[[bytes | None, bytes], None]
) -> dict:
    """The same serialized records, no database read, one transaction per second: the raw baseline."""
    rows, encoder = _sample(args)
    records = [encoder.encode(row) for row in rows]
    producer.init_transactions()
    started = time.perf_counter()
    producer.begin_transaction()
    committed_at = time.monotonic()
    for index in range(args.rows):
        key, value = records[index % len(records)]
        send(key, value)
        if time.monotonic() - committed_at >= 1:
            producer.commit_transaction()
            producer.begin_transaction()
            committed_at = time.monotonic()
    producer.commit_transaction()
    size = sum(len(k) + len(v) for k, v in records) / len(records)
    return {"rows": args.rows, "seconds": time.perf_counter() - started, "record_bytes": round(size)}


def stage_produce(args: argparse.Namespace) -> dict:
    """kafka-python, the project's general Kafka client.

    The partition is given (the topic has one), sparing kafka-python's pure-Python murmur2: its best case.
    """
    settings = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
    ensure_topic(settings, args.topic)
    producer = settings.producer(
        transactional_id=f"bench-raw-{args.topic}", acks="all", linger_ms=5, batch_size=512 * 1024, retry_backoff_ms=5
    )
    try:
        return _produce_in_transactions_of_one_second(
            args, producer, lambda key, value: producer.send(args.topic, key=key, value=value, partition=0)
        )
    finally:
        producer.close()


def stage_produce_librdkafka(args: argparse.Namespace) -> dict:
    """The source's own producer (``TransactionalProducer``, librdkafka)."""
    from mungmo_pipelines.core.kafka.transactions import TransactionalProducer

    settings = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
    ensure_topic(settings, args.topic)
    producer = TransactionalProducer(settings, f"bench-raw-{args.topic}")
    return _produce_in_transactions_of_one_second(
        args, producer, lambda key, value: producer.send(args.topic, key, value)
    )


def stage_source(args: argparse.Namespace) -> dict:
    from mungmo_pipelines.core.source.jdbc import run_jdbc_source

    options = json.loads(args.options)
    config = parse_connector(connector_body(args.database, args.topic, args.offsets, **options))
    engine = create_engine(make_url(mariadb_admin_url()).set(database=args.database))
    started = time.perf_counter()
    run = run_jdbc_source(config, engine, KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench"))
    seconds = time.perf_counter() - started
    (table,) = run.tables
    return {"rows": table.rows, "seconds": seconds, "transactions": table.transactions}


STAGES = {
    "read": stage_read,
    "encode": stage_encode,
    "produce": stage_produce,
    "produce-librdkafka": stage_produce_librdkafka,
    "source": stage_source,
}


def run_stage(stage: str, script: str = __file__, **args: str | int) -> dict:
    """``script --stage <stage> --<name> <value>…`` in its own process (its peak RSS its own); its last line's JSON."""
    command = [sys.executable, script, "--stage", stage] + [
        part for name, value in args.items() for part in (f"--{name}", str(value))
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def drop_bench_data(admin: Any, settings: KafkaSettings, database: str, topic_prefix: str) -> None:
    """Drop the bench's database and every topic whose name starts with ``topic_prefix``."""
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
    kafka_admin = settings.admin()
    try:
        doomed = [t for t in kafka_admin.list_topics() if t.startswith(topic_prefix)]
        if doomed:
            kafka_admin.delete_topics(doomed)
    finally:
        kafka_admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_markdown_flag(parser)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default: 1,000,000)")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--offsets", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = STAGES[args.stage](args)
        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    suffix = uuid.uuid4().hex[:8]
    database = f"mungmo_test_bench_{suffix}"
    admin = create_engine(mariadb_admin_url())
    settings = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
    topics = [f"mungmo_test_bench_{suffix}_{name}" for name in ("raw", "interval", "poll", "offsets", "rawrd")]
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
            conn.exec_driver_sql(f"USE `{database}`")
            conn.exec_driver_sql(WALKS)
            conn.exec_driver_sql(FILL.format(rows=args.rows))
            row_bytes = conn.exec_driver_sql(
                "SELECT AVG(4 + LENGTH(member_name) + LENGTH(pet_name) + LENGTH(pet_kind) + LENGTH(neighbourhood) "
                "+ LENGTH(walk_note) + 3 + 6) FROM walks"
            ).scalar()
        common = {"database": database, "rows": args.rows}
        results = {
            "raw read (PyMySQL SSCursor)": run_stage("read", **common),
            "JSON encode only (RowEncoder)": run_stage("encode", **common),
            "raw produce (kafka-python, same records)": run_stage("produce", **common, topic=topics[0]),
            "raw produce (librdkafka, the source's producer)": run_stage(
                "produce-librdkafka", **common, topic=topics[4]
            ),
            "source, transaction.boundary=interval (1 s)": run_stage(
                "source", **common, topic=topics[1].removesuffix("interval"), offsets=topics[3]
            ),
        }
        results["source, transaction.boundary=poll (100 rows)"] = run_stage(
            "source",
            **common,
            topic=f"mungmo_test_bench_{suffix}_poll_",
            offsets=topics[3],
            options=json.dumps({"transaction.boundary": "poll"}),
        )
    finally:
        drop_bench_data(admin, settings, database, f"mungmo_test_bench_{suffix}")

    raw_read = results["raw read (PyMySQL SSCursor)"]
    raw_produce = results["raw produce (kafka-python, same records)"]
    read_rate = raw_read["rows"] / raw_read["seconds"]
    produce_rate = raw_produce["rows"] / raw_produce["seconds"]
    report = Report("Source throughput")
    report.line(
        f"{args.rows:,} rows, about {row_bytes:.0f} bytes of column data per row, "
        f"{raw_produce['record_bytes']} bytes per Kafka record (key + JsonConverter value)\n"
    )
    header = (
        f"| {'stage':<60} | {'rows':>9} | {'seconds':>7} | {'rows/s':>8} | {'/ produce':>9} | {'/ read':>6} "
        f"| {'peak RSS MB':>11} |"
    )
    report.header(header)
    for stage, result in results.items():
        rate = result["rows"] / result["seconds"]
        report.line(
            f"| {stage:<60} | {result['rows']:>9,} | {result['seconds']:>7.1f} | {rate:>8,.0f} | "
            f"{rate / produce_rate:>8.0%} | {rate / read_rate:>5.0%} | {result['peak_rss_mb']:>11.0f} |"
        )
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
