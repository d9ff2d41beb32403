"""The CDC source (Debezium MariaDB bodies) on the real MariaDB and Kafka: records byte for byte as the
encoder makes them, snapshot modes, filters, DDL mid-stream, offsets, server checks, bad options."""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.connect.debezium import ChangeEventEncoder, DebeziumRecord, SourceInfo, snapshot_marker
from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.errors import ConnectorConfigError
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.mariadb.binlog.checks import ServerCheckFailed
from mungmo_pipelines.core.mariadb.catalog import read_table_schema
from mungmo_pipelines.core.source.cdc.offsets import CdcOffset
from mungmo_pipelines.core.source.cdc.reader import connect as cdc_connect
from tests.support.binlog import connect, global_setting, head, purge_binary_logs_to
from tests.support.cdc import Cdc, Raw, check_chain, fold, read_raw
from tests.support.sandbox import Sandbox

UTC = dt.UTC
PETS = """
CREATE TABLE pets (
  id INT NOT NULL PRIMARY KEY,
  name VARCHAR(20) NOT NULL DEFAULT 'x',
  weight DECIMAL(5,2) NULL,
  born DATETIME(3) NULL,
  seen TIMESTAMP(6) NULL,
  note TEXT NULL,
  flags BIT(3) NULL,
  kind ENUM('dog','cat') NULL
) DEFAULT CHARSET=utf8mb4
"""
SIMPLE = "CREATE TABLE {} (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) NULL) DEFAULT CHARSET=utf8mb4"


def insert_sql(row: tuple[Any, ...]) -> str:
    """A row of ``pets`` in the value contract as an INSERT (session time zone UTC)."""
    id_, name, weight, born, seen, note, flags, kind = row
    values = [
        str(id_),
        f"'{name}'",
        "NULL" if weight is None else str(weight),
        "NULL" if born is None else f"'{born.isoformat(sep=' ')}'",
        "NULL" if seen is None else f"'{seen.replace(tzinfo=None).isoformat(sep=' ')}'",
        "NULL" if note is None else "'" + note.replace("'", "''") + "'",
        "NULL" if flags is None else f"b'{flags:b}'",
        "NULL" if kind is None else f"'{kind}'",
    ]
    return f"INSERT INTO pets VALUES ({', '.join(values)})"


def execute(database: str, *statements: str) -> None:
    """Each statement its own transaction, with the session in UTC (TIMESTAMP values as written)."""
    connection = connect(database)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


class Expected:
    """Builds the records the encoder makes for planned changes, taking the run-dependent facts
    (processing time, binlog coordinates, each run's id) from the records the connector wrote."""

    def __init__(self, produced: list[Raw], encoder_for: Callable[[str, Callable[[], int]], ChangeEventEncoder]):
        self.produced = produced
        values = [r.payload for r in produced if r.value is not None]
        self.clock = deque(p["ts_ns"] for p in values)
        self.encoder_for = encoder_for
        self.encoders: dict[str, ChangeEventEncoder] = {}
        self.records: list[DebeziumRecord] = []

    @property
    def encoder(self) -> ChangeEventEncoder:
        headers = dict(self.produced[len(self.records)].headers)
        run_id = headers["__debezium.context.runId"].decode()
        if run_id not in self.encoders:
            self.encoders[run_id] = self.encoder_for(run_id, self.clock.popleft)
        return self.encoders[run_id]

    def _source(self, snapshot: str | None = None) -> SourceInfo:
        facts = self.produced[len(self.records)].payload["source"]
        if snapshot is not None:
            return SourceInfo(ts_ns=facts["ts_ns"], snapshot=snapshot, file=facts["file"], pos=facts["pos"])
        return SourceInfo(
            ts_ns=facts["ts_ns"],
            server_id=facts["server_id"],
            gtid=facts["gtid"],
            file=facts["file"],
            pos=facts["pos"],
            row=facts["row"],
        )

    def read(self, row: tuple[Any, ...], marker: str) -> None:
        self.records += self.encoder.read(row, self._source(marker))

    def create(self, row: tuple[Any, ...]) -> None:
        self.records += self.encoder.create(row, self._source())

    def update(self, before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
        self.records += self.encoder.update(before, after, self._source())

    def delete(self, row: tuple[Any, ...]) -> None:
        self.records += self.encoder.delete(row, self._source())


def test_changes_arrive_as_the_encoders_records_byte_for_byte(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    first = (1, "초코", Decimal("4.50"), dt.datetime(2024, 1, 1, 10, 0, 0, 500000),
             dt.datetime(2024, 1, 1, 1, 2, 3, 456789, tzinfo=UTC), "note 🐾", 5, "dog")  # fmt: skip
    second = (2, "나비", None, None, dt.datetime(2024, 2, 29, 12, 0, 0, 500000, tzinfo=UTC), None, 0, "cat")
    execute(database, PETS, insert_sql(first), insert_sql(second))
    cdc = Cdc(sandbox, [database])
    snapshot = cdc.run()
    assert (snapshot.stats.started_with, dict(snapshot.stats.events)) == ("snapshot", {"r": 2})

    third = (3, "콩이", Decimal("-0.01"), dt.datetime(2026, 5, 5, 5, 5, 5, 5000), None, "it's", 7, None)
    renamed = (2, "보리", *second[2:])
    moved = (30, *third[1:])
    fourth, fifth = (4, "a", *[None] * 6), (5, "b", *[None] * 6)
    execute(
        database,
        insert_sql(third),
        "UPDATE pets SET name = '보리' WHERE id = 2",
        "DELETE FROM pets WHERE id = 1",
        "UPDATE pets SET id = 30 WHERE id = 3",
        "INSERT INTO pets (id, name) VALUES (4, 'a'), (5, 'b')",
    )
    streamed = cdc.run()
    assert dict(streamed.stats.events) == {"c": 3, "u": 2, "d": 1}  # the key change counts as one update
    assert streamed.stats.transactions == 5

    produced = cdc.records(database, "pets")
    config = cdc.config()
    with connect() as connection, connection.cursor() as cursor:
        schema = read_table_schema(cursor, database, "pets")

    def encoder(run_id: str, clock: Callable[[], int]) -> ChangeEventEncoder:
        return ChangeEventEncoder(schema, config.record_options, run_id=run_id, clock=clock)

    expected = Expected(produced, encoder)
    expected.read(first, snapshot_marker(True, True, True, False))
    expected.read(second, snapshot_marker(True, True, False, True))
    expected.create(third)
    expected.update(second, renamed)
    expected.delete(first)
    expected.update(third, moved)
    expected.create(fourth)
    expected.create(fifth)
    assert len(expected.records) == len(produced)
    for index, (built, got) in enumerate(zip(expected.records, produced, strict=True)):
        assert (built.topic, built.key, list(built.headers)) == (got.topic, got.key, got.headers), index
        assert built.value == got.value, f"@{index}: {first_difference(built.value, got.value)}"
    assert [r.payload["source"]["row"] for r in produced[-2:]] == [0, 1]


def first_difference(built: bytes | None, got: bytes | None) -> str:
    if built is None or got is None:
        return f"expected {built!r}, the connector wrote {got!r}"
    at = next((i for i, (a, b) in enumerate(zip(built, got, strict=False)) if a != b), min(len(built), len(got)))
    return f"byte {at}: expected ...{built[max(0, at - 80) : at + 60]!r}, wrote ...{got[max(0, at - 80) : at + 60]!r}"


def test_offsets_are_debeziums_shape_under_debeziums_key(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"), "INSERT INTO t VALUES (1, 'a')")
    cdc = Cdc(sandbox, [database])
    cdc.run()
    after_snapshot = cdc.offset()
    assert list(after_snapshot) == ["ts_sec", "file", "pos", "gtids"]
    execute(database, "INSERT INTO t VALUES (2, 'b')")
    run = cdc.run()
    stored = cdc.offset()
    assert list(stored) == ["ts_sec", "file", "pos", "gtids", "server_id"]
    assert run.run.tables[0].offset_after == stored
    # The position is right after the streamed transaction, the last one written: the head.
    position, now = CdcOffset.parse(stored).position, head()
    assert (position.gtids, position.file, position.pos) == (now.gtids, now.file, now.pos)
    assert cdc.run().run.rows == 0  # nothing new: nothing sent, the offset stays


def test_filters_pick_tables_and_columns_as_debezium_does(sandbox: Sandbox) -> None:
    database, other = sandbox.database("src"), sandbox.database("other")
    execute(database, SIMPLE.format("kept"), SIMPLE.format("Skipped"), "INSERT INTO kept VALUES (1, 'a')")
    execute(database, "INSERT INTO Skipped VALUES (1, 'a')")
    execute(other, SIMPLE.format("kept"), "INSERT INTO kept VALUES (1, 'elsewhere')")
    # Debezium's lists are regular expressions matched case-insensitively against the whole name.
    cdc = Cdc(sandbox, [database], {"table.include.list": f"{database}\\.KEPT", "column.exclude.list": r".*\.v"})
    cdc.run()
    execute(database, "INSERT INTO kept VALUES (2, 'b')", "INSERT INTO Skipped VALUES (2, 'b')")
    execute(other, "INSERT INTO kept VALUES (2, 'elsewhere')")
    cdc.run()
    payloads = [r.payload for r in cdc.records(database, "kept")]
    assert [(p["op"], p["after"]) for p in payloads] == [("r", {"id": 1}), ("c", {"id": 2})]
    assert cdc.records(database, "Skipped") == [] and cdc.records(other, "kept") == []


def test_ddl_mid_stream_changes_the_records_schema_from_that_event_on(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"), "INSERT INTO t VALUES (1, 'a')")
    cdc = Cdc(sandbox, [database])
    cdc.run()
    execute(
        database,
        "INSERT INTO t VALUES (2, 'before')",
        "ALTER TABLE t ADD COLUMN added VARCHAR(10) NULL DEFAULT 'new'",
        "INSERT INTO t VALUES (3, 'after add', 'x')",
        "ALTER TABLE t MODIFY COLUMN v VARCHAR(40) NOT NULL DEFAULT 'd'",
        "INSERT INTO t VALUES (4, 'after modify', 'y')",
        "ALTER TABLE t RENAME COLUMN v TO title",
        "INSERT INTO t VALUES (5, 'after rename', 'z')",
        "ALTER TABLE t DROP COLUMN added",
        "INSERT INTO t VALUES (6, 'after drop')",
        "CREATE TABLE created (id INT PRIMARY KEY)",
        "INSERT INTO created VALUES (7)",
        "DROP TABLE created",
    )
    run = cdc.run()
    assert run.stats.ddl == 6
    values = [json.loads(r.value) for r in cdc.records(database, "t")]

    def fields(value: dict) -> list[tuple[str, bool, Any]]:
        after = value["schema"]["fields"][1]["fields"]
        return [(f["field"], f["optional"], f.get("default")) for f in after]

    assert [v["payload"]["after"] for v in values[1:]] == [
        {"id": 2, "v": "before"},
        {"id": 3, "v": "after add", "added": "x"},
        {"id": 4, "v": "after modify", "added": "y"},
        {"id": 5, "title": "after rename", "added": "z"},
        {"id": 6, "title": "after drop"},
    ]
    # Defaults come from the live table (the binlog has none), so only the shape the table still has
    # carries them; rows of earlier shapes read after a later ALTER have the right values, no defaults.
    assert fields(values[2]) == [("id", False, None), ("v", True, None), ("added", True, None)]
    assert fields(values[3]) == [("id", False, None), ("v", False, None), ("added", True, None)]
    assert fields(values[5]) == [("id", False, None), ("title", False, "d")]
    assert [r.payload["after"] for r in cdc.records(database, "created")] == [{"id": 7}]


@pytest.mark.parametrize(
    ("mode", "first_run", "second_run"),
    [
        ("initial", ["r1"], ["c2"]),
        ("initial_only", ["r1"], []),
        ("no_data", [], ["c2"]),
        ("schema_only", [], ["c2"]),
        ("recovery", [], ["c2"]),
        ("when_needed", ["r1"], ["c2"]),
        ("always", ["r1"], ["r1", "r2"]),
        ("never", ["c1"], ["c2"]),
    ],
)
def test_snapshot_modes(sandbox: Sandbox, mode: str, first_run: list[str], second_run: list[str]) -> None:
    database = sandbox.database("src")
    if mode == "never":
        # It reads from the oldest binlog: start one with this test, so other tests' events (some
        # logged as statements on purpose, which the reader refuses) are not in its way.
        start_a_new_binlog_and_purge_the_rest()
    execute(database, SIMPLE.format("t"), "INSERT INTO t VALUES (1, 'a')")
    cdc = Cdc(sandbox, [database], {"snapshot.mode": mode})
    cdc.run()
    seen = [f"{r.payload['op']}{r.payload['after']['id']}" for r in cdc.records(database, "t")]
    assert seen == first_run
    execute(database, "INSERT INTO t VALUES (2, 'b')")
    cdc.run()
    seen = [f"{r.payload['op']}{r.payload['after']['id']}" for r in cdc.records(database, "t")]
    assert seen[len(first_run) :] == second_run


def start_a_new_binlog_and_purge_the_rest() -> None:
    admin = connect()
    with admin.cursor() as cursor:
        cursor.execute("FLUSH BINARY LOGS")
        cursor.execute("SHOW MASTER STATUS")
        newest = cursor.fetchone()[0]
    admin.close()
    purge_binary_logs_to(newest)


def test_a_purged_position_fails_by_name_and_when_needed_snapshots_again(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"), "INSERT INTO t VALUES (1, 'a')")
    cdc = Cdc(sandbox, [database])
    cdc.run()
    execute(database, "INSERT INTO t VALUES (2, 'b')")
    start_a_new_binlog_and_purge_the_rest()
    with pytest.raises(ServerCheckFailed, match=r"stored offset .* is no longer in the binlog.*when_needed"):
        cdc.run()
    run = cdc.run(**{"snapshot.mode": "when_needed"})
    assert run.stats.started_with == "snapshot: the stored position was purged (when_needed)"
    ops = [(r.payload["op"], r.payload["after"]["id"]) for r in cdc.records(database, "t")]
    assert ops == [("r", 1), ("r", 1), ("r", 2)]


def test_heartbeats_carry_the_offset_to_the_heartbeat_topic(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"))
    cdc = Cdc(sandbox, [database], {"heartbeat.interval.ms": "1", "mungmo.streaming.duration.ms": "1500",
                                    "mungmo.streaming.idle.ms": "1000"})  # fmt: skip
    cdc.run()
    execute(database, "INSERT INTO t VALUES (1, 'a')")
    run = cdc.run()
    assert run.stats.heartbeats >= 1
    (beat, *_) = [r for r in read_heartbeats(cdc)]
    assert json.loads(beat.key)["payload"] == {"serverName": cdc.prefix} and beat.headers == []


def read_heartbeats(cdc: Cdc) -> list[Raw]:
    return read_raw(cdc.sandbox, f"__debezium-heartbeat.{cdc.prefix}")


def test_skipped_operations_and_tombstones(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"), "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    cdc = Cdc(sandbox, [database], {"skipped.operations": "u,t", "tombstones.on.delete": "false"})
    cdc.run()
    execute(database, "UPDATE t SET v = 'z'", "DELETE FROM t WHERE id = 1", "INSERT INTO t VALUES (3, 'c')")
    cdc.run()
    records = cdc.records(database, "t")
    assert [r.payload and r.payload["op"] for r in records] == ["r", "r", "d", "c"]


@pytest.mark.parametrize(
    ("options", "field", "expected"),
    [
        ({"snapshot.lock.timeout": "5"}, "snapshot.lock.timeout", "not an option this connector supports"),
        ({"table.include.list": "a", "table.exclude.list": "b"}, "table.exclude.list", "not both"),
        ({"skipped.operations": "c"}, "skipped.operations", "must include t"),
        ({"skipped.operations": "x"}, "skipped.operations", "c, u, d, t, or none"),
        ({"converters": "boolean"}, "converters", "custom converters are Java classes"),
        ({"time.precision.mode": "adaptive"}, "time.precision.mode", "refuses adaptive"),
        ({"topic.prefix": "bad prefix"}, "topic.prefix", "letters, digits"),
        ({"snapshot.mode": "custom"}, "snapshot.mode", "expected one of initial"),
        ({"database.ssl.mode": "required"}, "database.ssl.mode", "expected one of disable, trust, verify-ca"),
        ({"snapshot.max.threads": "2"}, "snapshot.max.threads", "cannot share a consistent snapshot"),
        ({"provide.transaction.metadata": "true"}, "provide.transaction.metadata", "not produced"),
        ({"database.server.id": "0"}, "database.server.id", "from 1 to 4294967295"),
        ({"signal.data.collection": "nodot"}, "signal.data.collection", "<database>.<table>"),
        ({"table.include.list": "a(b"}, "table.include.list", "regular expressions"),
        ({"transforms": "unwrap"}, "transforms", "transforms are not run here"),
    ],
)
def test_bad_options_are_named(sandbox: Sandbox, options: dict[str, str], field: str, expected: str) -> None:
    body = Cdc(sandbox, ["db"]).body(**options)
    with pytest.raises(ConnectorConfigError) as raised:
        parse_connector(body, origin="connectors/cdc.json")
    assert raised.value.field_name == field
    assert expected in str(raised.value)


def test_options_without_effect_are_accepted(sandbox: Sandbox) -> None:
    config = Cdc(sandbox, ["db"]).config(
        **{
            "schema.history.internal.kafka.topic": "schemahistory.x",
            "schema.history.internal.kafka.bootstrap.servers": "localhost:9092",
            "max.queue.size": "8192",
            "snapshot.locking.mode": "none",
            "include.schema.changes": "true",
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        }
    )
    assert config.max_batch_size == 2048 and config.snapshot_mode == "initial"


@pytest.mark.parametrize(
    ("name", "value"),
    [("binlog_format", "MIXED"), ("binlog_row_image", "MINIMAL"), ("binlog_row_metadata", "MINIMAL")],
)
def test_a_server_missing_a_setting_is_named_before_the_first_run(sandbox: Sandbox, name: str, value: str) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"))
    cdc = Cdc(sandbox, [database])
    with global_setting(name, value), pytest.raises(ServerCheckFailed, match=rf"^{name}: is {value}.*Fix: SET GLOBAL"):
        cdc.run()
    assert cdc.offset() is None


def test_unsigned_bigint_above_long_is_refused_by_name_unless_wrap(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, "CREATE TABLE u (id INT PRIMARY KEY, big BIGINT UNSIGNED)", "INSERT INTO u VALUES (1, 1)")
    cdc = Cdc(sandbox, [database])
    cdc.run()
    execute(database, "INSERT INTO u VALUES (2, 18446744073709551615)")
    with pytest.raises(ValueError, match=r"u: column 'big': BIGINT UNSIGNED 18446744073709551615"):
        cdc.run()
    cdc.run(**{"mungmo.bigint.unsigned.overflow": "wrap"})
    assert [r.payload["after"]["big"] for r in cdc.records(database, "u")] == [1, -1]


def test_folded_records_equal_the_table(sandbox: Sandbox) -> None:
    """The check every crash test ends with, on a plain run: the chain holds and the fold is the table."""
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"), "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_50")
    cdc = Cdc(sandbox, [database])
    cdc.run()
    execute(database, "UPDATE t SET v = 'x' WHERE id % 3 = 0", "DELETE FROM t WHERE id % 5 = 0")
    cdc.run()
    records = cdc.records(database, "t")
    assert check_chain(records) == []
    assert fold(records) == {row[0]: {"id": row[0], "v": row[1]} for row in sandbox.rows(database, "SELECT * FROM t")}


def test_a_user_without_replication_grants_is_told_which_one(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"))
    user = f"mungmo_test_{sandbox.suffix}"
    with sandbox.admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'no-replication'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{user}'@'127.0.0.1'")
    try:
        cdc = Cdc(sandbox, [database], {"database.user": user, "database.password": "no-replication"})
        with pytest.raises(
            ServerCheckFailed, match=rf"REPLICATION SLAVE: '{user}'@'127.0.0.1' may not read the binary"
        ):
            cdc.run()
    finally:
        with sandbox.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'127.0.0.1'")


def test_a_debezium_offset_is_where_streaming_resumes(sandbox: Sandbox) -> None:
    """An offset as Debezium's own connector stores it (key and value), e.g. after moving from Kafka Connect."""
    database = sandbox.database("src")
    execute(database, SIMPLE.format("t"), "INSERT INTO t VALUES (1, 'before the offset')")
    position = head()
    execute(database, "INSERT INTO t VALUES (2, 'after the offset')")
    cdc = Cdc(sandbox, [database])
    key = f'["{cdc.body()["name"]}",{{"server":"{cdc.prefix}"}}]'.encode()
    value = {"ts_sec": 1796139924, "file": position.file, "pos": position.pos, "gtids": str(position.gtids),
             "server_id": 1}  # fmt: skip
    ensure_topic(sandbox.kafka, cdc.offsets_topic, 1, 1, {"cleanup.policy": "compact"})
    producer = sandbox.kafka.producer()
    producer.send(cdc.offsets_topic, key=key, value=dumps(value))
    producer.flush()
    producer.close()
    run = cdc.run()
    assert run.stats.started_with == "streaming from the stored offset"
    assert [(r.payload["op"], r.payload["after"]["id"]) for r in cdc.records(database, "t")] == [("c", 2)]


def test_the_snapshots_fast_date_conversion_reads_what_pymysql_reads(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    values = ["0000-00-00 00:00:00", "2024-00-10 00:00:00", "2024-02-00 10:00:00", "0050-06-15 01:02:03",
              "2026-01-01 00:00:00.5", "9999-12-31 23:59:59.999999", "2000-02-29 12:00:00"]  # fmt: skip
    execute(
        database,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE d (id INT PRIMARY KEY, dt DATETIME(6), ts TIMESTAMP(6) NULL, d DATE)",
        *[f"INSERT INTO d VALUES ({i}, '{v}', '{v}', '{v[:10]}')" for i, v in enumerate(values)],
    )
    config = Cdc(sandbox, [database]).config()
    fast, plain = cdc_connect(config.connection, config), connect(database)
    try:
        with fast.cursor() as a, plain.cursor() as b:
            for cursor in (a, b):
                cursor.execute(f"SELECT dt, ts, d FROM `{database}`.d ORDER BY id")
            assert a.fetchall() == b.fetchall()
    finally:
        fast.close()
        plain.close()
