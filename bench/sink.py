"""Sink throughput: a topic of N member records (~200-byte rows) into MariaDB, beside raw baselines.

    python bench/sink.py                 # 1,000,000 records (the issue's size)
    python bench/sink.py --rows 100000   # a quick check
    python bench/sink.py --debezium      # the same rows as Debezium change events

Measured in one run on the same topic and rows:

* ``consume``: kafka-python reading the topic (read_committed, the sink's consumer settings),
  no decoding, no writes;
* ``json.loads`` / ``orjson.loads``: parsing every record value, no Kafka, no writes;
* ``executemany insert|upsert``: PyMySQL ``executemany`` of the already-decoded rows in
  ``batch.size`` chunks, one transaction each, no Kafka;
* ``sink insert|upsert``: ``JdbcSink.run()`` end to end (read, decode, write, offsets, commits).

With ``--debezium`` the topic holds the same rows as Debezium change events (the envelope,
``source`` block and schemas Debezium 3.5's MariaDB connector writes, taken from its golden
records in ``tests/fixtures/debezium/``; ``op=c``, key = the primary key struct), and the sink
runs are Debezium ``JdbcSinkConnector`` bodies (``insert``; ``upsert`` with ``record_key`` and
``delete.enabled``, at ``--batch-size`` and at Debezium's default 500) and the JDBC sink with
``ExtractNewRecordState``.

Ratios compare each sink run with the executemany baseline of the same statement and with
the consume baseline. Uses the admin account (``MUNGMO_MARIADB_ADMIN_URL``) and the local stack
unless ``MUNGMO_KAFKA_BOOTSTRAP`` says otherwise; drops its database and topic afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pymysql
from pymysql.constants import FIELD_TYPE, FLAG
from sqlalchemy import create_engine, make_url

from bench.report import Report, add_markdown_flag
from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.connect.json_converter import RowEncoder, jackson_json
from mungmo_pipelines.core.connect.schema import DBZ_TIMESTAMP, struct_schema
from mungmo_pipelines.core.connect.source_types import field_codec
from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end, topic_partitions
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.mariadb.columns import BINARY_CHARSET, ResultColumn
from mungmo_pipelines.core.mariadb.dialect import STRICT_SQL_MODE
from mungmo_pipelines.core.mariadb.session import admin_connection
from mungmo_pipelines.core.settings import PROJECT_ROOT, kafka_bootstrap, mariadb_admin_url
from mungmo_pipelines.core.sink.runtime import FETCH_BYTES, IDLE_POLL_SLEEP_MS, JdbcSink

UTF8MB4 = 45  # utf8mb4_general_ci, as the server describes text columns in result sets
# The protocol's column definitions of a members table (what the source reads from the server).
COLUMNS = [
    ResultColumn("seq", FIELD_TYPE.LONG, 11, 0, FLAG.NOT_NULL, BINARY_CHARSET),
    ResultColumn("member_name", FIELD_TYPE.VAR_STRING, 200, 0, FLAG.NOT_NULL, UTF8MB4),
    ResultColumn("pet_name", FIELD_TYPE.VAR_STRING, 200, 0, 0, UTF8MB4),
    ResultColumn("neighbourhood", FIELD_TYPE.VAR_STRING, 400, 0, FLAG.NOT_NULL, UTF8MB4),
    ResultColumn("walk_note", FIELD_TYPE.BLOB, 262140, 0, FLAG.BLOB, UTF8MB4),
    ResultColumn("weight_kg", FIELD_TYPE.NEWDECIMAL, 7, 2, 0, BINARY_CHARSET),
    ResultColumn("neutered", FIELD_TYPE.TINY, 4, 0, FLAG.NOT_NULL, BINARY_CHARSET),
    ResultColumn("created_at", FIELD_TYPE.DATETIME, 23, 3, FLAG.NOT_NULL | FLAG.BINARY, BINARY_CHARSET),
]
# What auto.create makes of those fields (the insert table has no key, the upsert table keys on seq).
TABLE_DDL = (
    "CREATE TABLE {table} (seq INT NOT NULL, member_name LONGTEXT NOT NULL, pet_name LONGTEXT NULL, "
    "neighbourhood LONGTEXT NOT NULL, walk_note LONGTEXT NULL, weight_kg DECIMAL(65,2) NULL, "
    "neutered TINYINT NOT NULL, created_at DATETIME(3) NOT NULL{key}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
# ... and of Debezium's fields for the same columns (TINYINT is int16, DATETIME(3) io.debezium.time.Timestamp).
DEBEZIUM_TABLE_DDL = (
    TABLE_DDL.replace("DECIMAL(65,2)", "DECIMAL(7,2)")
    .replace("neutered TINYINT", "neutered SMALLINT")
    .replace("DATETIME(3)", "DATETIME(6)")
)
GOLDEN_RECORDS = PROJECT_ROOT / "tests" / "fixtures" / "debezium" / "records" / "default.jsonl"
MEMBERS = ["김민지", "이서준", "박지우", "최하은", "정도윤", "강수아", "조예준", "윤지호", "Bob Smith", "Alice Kim"]
PETS = ["초코", "나비", "콩이", "보리", "치즈", "토리", None]
PLACES = ["서울 마포구 망원동 123-45", "서울 성동구 성수동 67", "부산 해운대구 우동 89-1", "경기 성남시 분당구 정자동"]
NOTES = [
    "아침 산책 30분 🐾 공원 한 바퀴",
    "공원에서 친구 만남, 간식 조금",
    None,
    "비 와서 짧게 산책 ☔",
    "간식 금지 중 (다이어트)",
]


def member_rows(count: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 1)
    for seq in range(1, count + 1):
        yield (
            seq,
            rng.choice(MEMBERS),
            rng.choice(PETS),
            rng.choice(PLACES),
            rng.choice(NOTES),
            Decimal(rng.randint(100, 9999)).scaleb(-2),
            rng.randint(0, 1),
            base + dt.timedelta(milliseconds=rng.randint(0, 10**10)),
        )


def parse_all(loads: Callable[[bytes], Any], values: list[bytes]) -> None:
    for value in values:
        loads(value)


@dataclass
class Result:
    name: str
    rows: int
    seconds: float
    baseline: str | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def timed(name: str, rows: int, action: Callable[[], Any], baseline: str | None = None) -> Result:
    started = time.perf_counter()
    action()
    result = Result(name, rows, time.perf_counter() - started, baseline)
    print(f"  {name}: {result.rate:,.0f} rows/s", file=sys.stderr)
    return result


class DebeziumEvents:
    """The bench's rows as Debezium 3.5's MariaDB connector writes them: key and change event, with schemas.

    The envelope (its ``source`` and ``transaction`` blocks, op and timestamps) is the one of a golden record;
    the row is the members table as Debezium maps it.
    """

    def __init__(self, encoder: RowEncoder, topic: str) -> None:
        template = next(
            json.loads(line)
            for line in GOLDEN_RECORDS.read_text(encoding="utf-8").splitlines()
            if json.loads(line)["topic"].endswith(".gold.sink_flow") and json.loads(line)["value"]
        )
        value = json.loads(template["value"])
        self.source = value["payload"]["source"]
        fields = []
        for field in encoder.value_schema["fields"]:
            field = dict(field)
            if field["field"] == "neutered":
                field["type"] = "int16"
            if field.get("name") == "org.apache.kafka.connect.data.Timestamp":
                field["name"] = DBZ_TIMESTAMP
            fields.append(field)
        prefix = "bench.mungmo.members"
        row = struct_schema(fields, f"{prefix}.Value", optional=True)
        envelope_fields = [
            dict(row, field="before"),
            dict(row, field="after"),
            *(f for f in value["schema"]["fields"] if f["field"] not in ("before", "after")),
        ]
        envelope = dict(value["schema"], fields=envelope_fields, name=f"{prefix}.Envelope")
        key = struct_schema([fields[0]], f"{prefix}.Key")
        self.encoder = encoder
        self.value_prefix = b'{"schema":' + jackson_json(envelope) + b',"payload":'
        self.key_prefix = b'{"schema":' + jackson_json(key) + b',"payload":'
        self.topic = topic

    def encode(self, position: int, row: tuple[Any, ...]) -> tuple[bytes, bytes]:
        after = self.encoder.payload(row)
        source = {**self.source, "snapshot": "false", "db": "mungmo", "table": "members", "pos": 4 + position}
        ts_ms = source["ts_ms"]
        event = {
            "before": None,
            "after": after,
            "source": source,
            "transaction": None,
            "op": "c",
            "ts_ms": ts_ms,
            "ts_us": ts_ms * 1000,
            "ts_ns": ts_ms * 1_000_000,
        }
        key = self.key_prefix + jackson_json({"seq": row[0]}) + b"}"
        return key, self.value_prefix + jackson_json(event) + b"}"


class Bench:
    def __init__(self, rows: int, batch_size: int, partitions: int, debezium: bool = False) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.partitions = partitions
        self.debezium = debezium
        # Change events carry their ~3.5 KB schema each: the parse baselines run on a sample, not on gigabytes.
        self.kept_values = 200_000 if debezium else rows
        suffix = uuid.uuid4().hex[:8]
        self.database = f"mungmo_bench_{suffix}"
        self.topic = f"mungmo_bench_{suffix}_members"
        self.kafka = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
        self.admin_url = make_url(mariadb_admin_url())
        self.admin = create_engine(self.admin_url)

    # --- setup ---------------------------------------------------------------------------------

    def setup(self) -> tuple[list[bytes], list[tuple[Any, ...]]]:
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{self.database}` DEFAULT CHARACTER SET utf8mb4")
        codecs = [field_codec(c) for c in COLUMNS]
        encoder = RowEncoder(codecs, "members", [0])
        events = DebeziumEvents(encoder, self.topic) if self.debezium else None
        rows = list(member_rows(self.rows))
        ensure_topic(self.kafka, self.topic, self.partitions)
        producer = self.kafka.producer(acks="all", linger_ms=20, batch_size=1024 * 1024, compression_type=None)
        values: list[bytes] = []
        started = time.perf_counter()
        for position, row in enumerate(rows):
            key, value = events.encode(position, row) if events else encoder.encode(row)
            if len(values) < self.kept_values:
                values.append(value)
            producer.send(self.topic, key=key, value=value)
        producer.flush()
        producer.close()
        seconds = time.perf_counter() - started
        payload = sum(len(orjson.dumps(self.row_payload(orjson.loads(v)["payload"]))) for v in values[:1000]) / min(
            1000, len(values)
        )
        print(
            f"topic {self.topic}: {self.rows:,} records in {self.partitions} partition(s), "
            f"{sum(map(len, values)) / len(values):.0f} bytes per record value, ~{payload:.0f} bytes of row payload; "
            f"produced in {seconds:.1f}s",
            file=sys.stderr,
        )
        return values, rows

    def row_payload(self, payload: Any) -> Any:
        return payload["after"] if self.debezium else payload

    def cleanup(self) -> None:
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{self.database}`")
        admin = self.kafka.admin()
        try:
            admin.delete_topics([self.topic])
        finally:
            admin.close()
        self.admin.dispose()

    # --- baselines -------------------------------------------------------------------------------

    def consume(self) -> None:
        consumer = self.kafka.consumer(
            isolation_level="read_committed",
            enable_auto_commit=False,
            max_partition_fetch_bytes=FETCH_BYTES,
            retry_backoff_ms=IDLE_POLL_SLEEP_MS,
        )
        try:
            count = sum(1 for _ in read_to_end(consumer, topic_partitions(consumer, self.topic)))
        finally:
            consumer.close()
        assert count == self.rows, count

    def consume_with_librdkafka(self) -> None:
        """The same read with confluent-kafka (librdkafka), when installed: what another client would cost."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.kafka.bootstrap_servers,
                "group.id": f"{self.topic}-librdkafka",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
            count = 0
            while count < self.rows:
                for message in consumer.consume(num_messages=10_000, timeout=1.0):
                    if message.error() is None:
                        message.key(), message.value()
                        count += 1
        finally:
            consumer.close()

    def connect(self) -> pymysql.Connection:
        conn = admin_connection(self.database, autocommit=False)
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = %s", (STRICT_SQL_MODE,))
        return conn

    def create_table(self, table: str, keyed: bool) -> None:
        conn = self.connect()
        with conn.cursor() as cursor:
            ddl = DEBEZIUM_TABLE_DDL if self.debezium else TABLE_DDL
            cursor.execute(ddl.format(table=table, key=", PRIMARY KEY (seq)" if keyed else ""))
        conn.close()

    def executemany(self, table: str, rows: list[tuple[Any, ...]], upsert: bool) -> None:
        names = [c.name for c in COLUMNS]
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
        if upsert:
            sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"{n} = VALUES({n})" for n in names[1:])
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                for start in range(0, len(rows), self.batch_size):
                    cursor.executemany(sql, rows[start : start + self.batch_size])
                    conn.commit()
        finally:
            conn.close()

    # --- the sink ----------------------------------------------------------------------------------

    def sink(self, name: str, table: str, **options: str) -> JdbcSink:
        url = f"jdbc:mysql://{self.admin_url.host}:{self.admin_url.port or 3306}/{self.database}"
        config_map = {
            "connector.class": JDBC_SINK_CLASS,
            "connection.url": url,
            "topics": self.topic,
            "table.name.format": table,
            "auto.create": "true",
            "batch.size": str(self.batch_size),
        }
        body = {"name": f"bench-{name}", "config": {**config_map, **options}}
        config = parse_connector(body)
        assert isinstance(config, SinkConfig)
        engine = create_engine(self.admin_url.set(database=self.database))
        return JdbcSink(config, engine, self.kafka)

    def debezium_sink(self, name: str, table: str, **options: str) -> JdbcSink:
        """A Debezium ``JdbcSinkConnector`` body on the bench topic."""
        body = {
            "name": f"bench-{name}",
            "config": {
                "connector.class": DEBEZIUM_SINK_CLASS,
                "connection.url": f"jdbc:mariadb://{self.admin_url.host}:{self.admin_url.port or 3306}/{self.database}",
                "connection.username": self.admin_url.username or "",
                "connection.password": self.admin_url.password or "",
                "topics": self.topic,
                "collection.name.format": table,
                "schema.evolution": "basic",
                "batch.size": str(self.batch_size),
                **options,
            },
        }
        config = parse_connector(body)
        assert isinstance(config, SinkConfig)
        engine = create_engine(self.admin_url.set(database=self.database))
        return JdbcSink(config, engine, self.kafka)

    def run_sink(self, sink: JdbcSink) -> None:
        run = sink.run()
        assert run.records == self.rows and run.lag_after() == 0, (run.records, run.lag_after())

    def count(self, table: str) -> int:
        with self.admin.connect() as conn:
            return conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{self.database}`.{table}").scalar_one()

    # --- all of it -----------------------------------------------------------------------------------

    def run(self) -> list[Result]:
        values, rows = self.setup()
        # The bench keeps every record and row in memory; out of the collector's sight, they do not make
        # each garbage collection in the measurements below scan millions of objects a real run never has.
        gc.collect()
        gc.freeze()
        results = [timed("consume (kafka-python, no writes)", self.rows, self.consume)]
        if importlib.util.find_spec("confluent_kafka"):
            results.append(timed("consume (confluent-kafka, no writes)", self.rows, self.consume_with_librdkafka))
        parsed = "every value" if len(values) == self.rows else f"{len(values):,} values"
        results.append(timed(f"json.loads of {parsed}", len(values), lambda: parse_all(json.loads, values)))
        results.append(timed(f"orjson.loads of {parsed}", len(values), lambda: parse_all(orjson.loads, values)))
        if self.debezium:
            return results + self.debezium_runs(rows)

        self.create_table("raw_insert", keyed=False)
        results.append(timed("executemany insert", self.rows, lambda: self.executemany("raw_insert", rows, False)))
        self.create_table("raw_upsert", keyed=True)
        results.append(
            timed("executemany upsert (new rows)", self.rows, lambda: self.executemany("raw_upsert", rows, True))
        )
        results.append(
            timed("executemany upsert (rows exist)", self.rows, lambda: self.executemany("raw_upsert", rows, True))
        )

        insert = self.sink("insert", "sink_insert")
        results.append(timed("sink insert", self.rows, lambda: self.run_sink(insert), "executemany insert"))
        upsert = {"insert.mode": "upsert", "pk.mode": "record_key"}
        new_rows = self.sink("upsert", "sink_upsert", **upsert)
        results.append(
            timed("sink upsert (new rows)", self.rows, lambda: self.run_sink(new_rows), "executemany upsert (new rows)")
        )
        again = self.sink("upsert-again", "sink_upsert", **upsert)
        results.append(
            timed(
                "sink upsert (rows exist)", self.rows, lambda: self.run_sink(again), "executemany upsert (rows exist)"
            )
        )
        for table in ("raw_insert", "raw_upsert", "sink_insert", "sink_upsert"):
            assert self.count(table) == self.rows, table
        return results

    def debezium_runs(self, rows: list[tuple[Any, ...]]) -> list[Result]:
        """The baselines and sink runs on a topic of Debezium change events."""
        results = []
        self.create_table("raw_insert", keyed=True)
        results.append(timed("executemany insert", self.rows, lambda: self.executemany("raw_insert", rows, False)))
        self.create_table("raw_upsert", keyed=True)
        results.append(
            timed("executemany upsert (new rows)", self.rows, lambda: self.executemany("raw_upsert", rows, True))
        )
        cdc = {"primary.key.mode": "record_key", "delete.enabled": "true"}
        insert = self.debezium_sink("dbz-insert", "dbz_insert", **cdc)
        results.append(timed("Debezium sink, insert", self.rows, lambda: self.run_sink(insert), "executemany insert"))
        upsert = self.debezium_sink("dbz-upsert", "dbz_upsert", **cdc, **{"insert.mode": "upsert"})
        results.append(
            timed("Debezium sink, upsert", self.rows, lambda: self.run_sink(upsert), "executemany upsert (new rows)")
        )
        default_batch = self.debezium_sink(
            "dbz-upsert-500", "dbz_upsert_500", **cdc, **{"insert.mode": "upsert", "batch.size": "500"}
        )
        results.append(
            timed(
                "Debezium sink, upsert, batch.size 500 (Debezium's default)",
                self.rows,
                lambda: self.run_sink(default_batch),
                "executemany upsert (new rows)",
            )
        )
        unwrap = self.sink(
            "unwrap",
            "unwrap_upsert",
            **{
                "insert.mode": "upsert",
                "pk.mode": "record_key",
                "delete.enabled": "true",
                "transforms": "unwrap",
                "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            },
        )
        results.append(
            timed(
                "JDBC sink + ExtractNewRecordState, upsert",
                self.rows,
                lambda: self.run_sink(unwrap),
                "executemany upsert (new rows)",
            )
        )
        for table in ("raw_insert", "raw_upsert", "dbz_insert", "dbz_upsert", "dbz_upsert_500", "unwrap_upsert"):
            assert self.count(table) == self.rows, table
        return results


def table(results: list[Result], rows: int, batch_size: int, debezium: bool) -> str:
    by_name = {r.name: r for r in results}
    consume = by_name["consume (kafka-python, no writes)"]
    lines = [
        f"{rows:,} {'Debezium change events' if debezium else 'records'}, batch.size {batch_size}",
        "",
        "| measurement | rows/s | seconds | vs executemany | vs consume |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        versus = f"{r.rate / by_name[r.baseline].rate:.0%}" if r.baseline else ""
        versus_consume = f"{r.rate / consume.rate:.0%}" if r.baseline else ""
        lines.append(f"| {r.name} | {r.rate:,.0f} | {r.seconds:.2f} | {versus} | {versus_consume} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="records in the topic (default 1,000,000)")
    parser.add_argument("--batch-size", type=int, default=3000, help="batch.size, the JDBC sink's default 3000")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the bench topic")
    parser.add_argument("--debezium", action="store_true", help="the rows as Debezium change events (see above)")
    add_markdown_flag(parser)
    args = parser.parse_args()
    bench = Bench(args.rows, args.batch_size, args.partitions, args.debezium)
    try:
        results = bench.run()
    finally:
        bench.cleanup()
    report = Report("Sink throughput, Debezium change events" if args.debezium else "Sink throughput")
    report.line(table(results, args.rows, args.batch_size, args.debezium))
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
