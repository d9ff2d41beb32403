"""Peak memory of source and sink runs whatever ``batch.max.rows`` and ``batch.size`` say, beside raw baselines.

    PYTHONPATH=. python bench/memory.py                 # 200,000 rows
    PYTHONPATH=. python bench/memory.py --rows 50000    # a quick check

Each stage runs in its own process, so its peak RSS (``ru_maxrss``) is its own:

- ``raw read``: a bare PyMySQL ``SSCursor`` read of the table, 100 rows per fetch (the source's floor);
- ``source``: ``run_jdbc_source`` over the same table with ``batch.max.rows`` 100 (the default) and
  2147483647 (the most a Kafka Connect INT takes), with ``transaction.boundary=poll`` so the option
  also sets the transaction size;
- ``raw consume``: kafka-python reading the topic the sink reads, no decoding (the sink's floor);
- ``sink``: ``JdbcSink.run()`` of that topic with ``batch.size`` 3000 (the default) and 2147483647.

Memory must not grow with the option: the ``/ raw`` column compares each run with its floor.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, make_url  # noqa: E402

from bench.report import Report, add_markdown_flag  # noqa: E402
from bench.source import FILL, WALKS, connector_body, drop_bench_data, raw_read  # noqa: E402
from bench.source import run_stage as run_source_stage  # noqa: E402
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS  # noqa: E402
from mungmo_pipelines.core.config.loader import parse_connector  # noqa: E402
from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end, topic_partitions  # noqa: E402
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url  # noqa: E402

INT_MAX = 2**31 - 1


def kafka() -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")


# --- stages (each in its own process) ------------------------------------------------------


def stage_read(args: argparse.Namespace) -> int:
    return raw_read(args.database, "SELECT * FROM walks")["rows"]


def stage_source(args: argparse.Namespace) -> int:
    from mungmo_pipelines.core.source.jdbc import run_jdbc_source

    options = {"batch.max.rows": str(args.batch), "transaction.boundary": "poll"}
    config = parse_connector(connector_body(args.database, args.topic, args.offsets, **options))
    engine = create_engine(make_url(mariadb_admin_url()).set(database=args.database))
    return run_jdbc_source(config, engine, kafka()).rows


def stage_consume(args: argparse.Namespace) -> int:
    consumer = kafka().consumer(isolation_level="read_committed", enable_auto_commit=False)
    try:
        return sum(1 for _ in read_to_end(consumer, topic_partitions(consumer, args.topic)))
    finally:
        consumer.close()


def stage_sink(args: argparse.Namespace) -> int:
    from mungmo_pipelines.core.sink.runtime import JdbcSink

    url = make_url(mariadb_admin_url())
    body = {
        "name": f"bench-memory-{args.database}-{args.batch}",
        "config": {
            "connector.class": JDBC_SINK_CLASS,
            "connection.url": f"jdbc:mysql://{url.host}:{url.port or 3306}/{args.database}",
            "connection.user": url.username or "root",
            "connection.password": url.password or "",
            "topics": args.topic,
            "table.name.format": f"copy_{args.batch}",
            "auto.create": "true",
            "batch.size": str(args.batch),
        },
    }
    engine = create_engine(url.set(database=args.database))
    return JdbcSink(parse_connector(body), engine, kafka()).run().records  # type: ignore[arg-type]


STAGES = {"read": stage_read, "source": stage_source, "consume": stage_consume, "sink": stage_sink}


def run_stage(stage: str, **args: str | int) -> dict[str, float]:
    result: dict[str, float] = run_source_stage(stage, __file__, **args)
    print(f"  {stage} {args.get('batch', '')}: {result}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_markdown_flag(parser)
    parser.add_argument("--rows", type=int, default=200_000, help="rows in the table (default: 200,000)")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--offsets", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        rows = STAGES[args.stage](args)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rows": rows, "peak_rss_mb": round(peak, 1)}))
        return

    suffix = uuid.uuid4().hex[:8]
    database = f"mungmo_test_bench_{suffix}"
    prefix = f"mungmo_test_bench_{suffix}_"
    admin = create_engine(mariadb_admin_url())
    rows: list[tuple[str, dict[str, float], str]] = []
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
            conn.exec_driver_sql(f"USE `{database}`")
            conn.exec_driver_sql(WALKS)
            conn.exec_driver_sql(FILL.format(rows=args.rows))
        common = {"database": database, "offsets": f"{prefix}offsets"}
        rows.append(("raw read (PyMySQL SSCursor, 100 rows per fetch)", run_stage("read", **common), "read"))
        for batch in (100, INT_MAX):
            topic = f"{prefix}b{batch}_"
            result = run_stage("source", **common, topic=topic, batch=batch)
            rows.append((f"source, batch.max.rows={batch}, transaction.boundary=poll", result, "read"))
        topic = f"{prefix}b100_walks"
        rows.append(("raw consume (kafka-python, read_committed)", run_stage("consume", topic=topic), "consume"))
        for batch in (3000, INT_MAX):
            result = run_stage("sink", database=database, topic=topic, batch=batch)
            rows.append((f"sink, batch.size={batch}", result, "consume"))
    finally:
        drop_bench_data(admin, kafka(), database, prefix)

    floors = {kind: result["peak_rss_mb"] for name, result, kind in rows if name.startswith("raw")}
    report = Report("Peak memory")
    report.line(f"{args.rows:,} rows of about 200 bytes (bench/source.py's walks table), each run in its own process\n")
    report.header(f"| {'run':<62} | {'rows':>9} | {'peak RSS MB':>11} | {'/ raw':>6} |")
    for name, result, kind in rows:
        report.line(
            f"| {name:<62} | {int(result['rows']):>9,} | {result['peak_rss_mb']:>11.0f} "
            f"| {result['peak_rss_mb'] / floors[kind]:>5.1f}x |"
        )
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
