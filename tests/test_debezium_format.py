"""Debezium's change-event records rebuilt on this project's MariaDB and compared byte for byte with
the records the real Debezium 3.5 MariaDB connector wrote (tests/fixtures/debezium, made by its
capture.py on the peer).

How the expected records come about: the fixture's schema.sql runs in a sandbox database; its tables
are read the way Debezium's snapshot reads them (``SELECT *``, tables in name order); changes.sql then
runs one statement at a time and each table it touches is read before and after, which gives every
row event with its before and after image (FLOAT and DOUBLE read exactly as stored, as the binlog
carries them, through ``CAST(... AS DOUBLE)``); signal.sql's incremental snapshot is read like the
snapshot. The encoder turns
these rows into records; nothing is copied from the golden records except these facts, which depend
on the run that made them and not on the data or the encoder:

- the envelope's ``ts_ms``/``ts_us``/``ts_ns``: processing time, fed through the encoder's clock;
- ``source.ts_ms`` of snapshot rows, incremental-snapshot rows and the signal insert: wall-clock
  times (streamed changes carry changes.sql's fixed session timestamp, computed here);
- ``source.file``/``pos``, and ``gtid``/``server_id`` of streamed rows: binlog coordinates of the
  peer's server;
- the ``__debezium.context.runId`` header: a UUID per task start;
- the heartbeats' ``ts_ms`` and how many fired (they follow the clock).

The rows Debezium's incremental snapshot itself wrote into the signal table (random ids, its clock
in the data) are inserted into the sandbox's signal table from the golden records and read back like
any other row. The schema-change topic (``<prefix>``) is not built by the encoder (see the README).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mungmo_pipelines.core.connect.debezium import (
    ChangeEventEncoder,
    ColumnValueError,
    DebeziumOptionError,
    DebeziumOptions,
    DebeziumRecord,
    SourceInfo,
    UnsupportedColumn,
    heartbeat_record,
    snapshot_marker,
)
from mungmo_pipelines.core.connect.debezium.columns import java_bigdecimal_text
from mungmo_pipelines.core.mariadb.catalog import enum_labels, read_table_schema
from mungmo_pipelines.core.mariadb.columns import TableSchema
from mungmo_pipelines.core.mariadb.select_values import contract_row, select_converters
from mungmo_pipelines.core.mariadb.session import admin_connection
from tests.support.sandbox import Sandbox

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "debezium"
GOLD_DATABASE = "gold"
SCENARIOS = sorted(path.stem for path in (FIXTURES / "records").glob("*.jsonl"))
_TABLE_OF_STATEMENT = re.compile(
    r"^(INSERT INTO|UPDATE|DELETE FROM|ALTER TABLE|CREATE TABLE|DROP TABLE)\s+`?(\w+)`?", re.IGNORECASE
)


def sql_statements(path: Path) -> list[str]:
    """The statements of a fixture SQL file (each ends with ``;`` at the end of a line)."""
    statements, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    return statements


# --- the replay on this project's MariaDB ---------------------------------------------------------


@dataclass
class RowEvent:
    """One row change as the binlog would carry it; ``row`` is its index within its statement."""

    table: str
    op: str
    before: list[Any] | None
    after: list[Any] | None
    schema: TableSchema
    row: int
    origin: str  # "stream", "incremental" or "signal"


@dataclass
class Replay:
    snapshot: dict[str, tuple[TableSchema, list[list[Any]]]]
    events: list[RowEvent] = field(default_factory=list)
    stream_ts_ns: int = 0


@contextmanager
def admin_cursor(database: str | None = None) -> Iterator[Any]:
    conn = admin_connection(database)
    try:
        yield conn.cursor()
    finally:
        conn.close()


class Server:
    """One session on the sandbox database, reading tables as the snapshot or the binlog sees them."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.conn = admin_connection(database)
        self.cursor = self.conn.cursor()
        self.execute("SET SESSION time_zone = '+00:00'")

    def execute(self, statement: str) -> None:
        self.cursor.execute(statement)

    def schema(self, table: str) -> TableSchema:
        return replace(read_table_schema(self.cursor, self.database, table), database=GOLD_DATABASE)

    def tables(self) -> list[str]:
        self.cursor.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        return sorted(row[0] for row in self.cursor.fetchall())

    def rows(self, schema: TableSchema, exact_floats: bool, where: str = "", order: bool = False) -> list[list[Any]]:
        """``SELECT *`` as Debezium's snapshot reads it (FLOAT printed to 6 digits, FLOAT(M,D) and
        DOUBLE(M,D) to D decimals), or with FLOAT and DOUBLE read exactly as stored, as the binlog
        carries them, when ``exact_floats``; ``order`` sorts by the primary key (incremental snapshot)."""
        columns = ", ".join(
            f"CAST(`{c.name}` AS DOUBLE)" if exact_floats and c.data_type in ("float", "double") else f"`{c.name}`"
            for c in schema.columns
        )
        sql = f"SELECT {columns} FROM `{schema.name}`" + (f" WHERE {where}" if where else "")
        if order and schema.primary_key:
            sql += " ORDER BY " + ", ".join(f"`{name}`" for name in schema.primary_key)
        self.cursor.execute(sql)
        converters = select_converters(schema)
        return [contract_row(converters, row) for row in self.cursor.fetchall()]


def _diff(schema: TableSchema, before: list[list[Any]], after: list[list[Any]], verb: str) -> list[tuple]:
    """(op, before image, after image) of one statement, in the order the binlog carries them."""
    if not schema.primary_key:  # InnoDB keeps insertion order; an UPDATE keeps a row in place
        if verb == "UPDATE":
            return [("u", old, new) for old, new in zip(before, after, strict=True) if old != new]
        if verb == "DELETE":
            remaining = list(after)
            removed = []
            for row in before:
                if row in remaining:
                    remaining.remove(row)
                else:
                    removed.append(("d", row, None))
            return removed
        return [("c", None, row) for row in after[len(before) :]]
    positions = [i for i, c in enumerate(schema.columns) if c.name in schema.primary_key]
    old = {tuple(row[i] for i in positions): row for row in before}
    new = {tuple(row[i] for i in positions): row for row in after}
    removed = [row for key, row in old.items() if key not in new]
    added = [row for key, row in new.items() if key not in old]
    changed = [("u", old[key], row) for key, row in new.items() if key in old and old[key] != row]
    if verb == "UPDATE":  # a key change: the row's old key disappears and its new key appears
        return changed + [("u", o, n) for o, n in zip(removed, added, strict=True)]
    if verb == "DELETE":
        return [("d", row, None) for row in removed]
    return [("c", None, row) for row in added]


def replay_fixture(database: str, golden_signal_rows: list[dict[str, Any]]) -> Replay:
    server = Server(database)
    for statement in sql_statements(FIXTURES / "schema.sql"):
        server.execute(statement)
    server.execute("SET SESSION timestamp = DEFAULT")
    schemas = {table: server.schema(table) for table in server.tables()}
    replay = Replay({name: (schema, server.rows(schema, exact_floats=False)) for name, schema in schemas.items()})

    for statement in sql_statements(FIXTURES / "changes.sql"):
        fixed = re.match(r"SET SESSION timestamp = (\d+)", statement)
        if fixed:
            replay.stream_ts_ns = int(fixed[1]) * 1_000_000_000
        target = _TABLE_OF_STATEMENT.match(statement)
        verb = target[1].split()[0].upper() if target else ""
        if verb in ("INSERT", "UPDATE", "DELETE"):
            schema = schemas[target[2]]
            before = server.rows(schema, exact_floats=True)
            server.execute(statement)
            after = server.rows(schema, exact_floats=True)
            for row, (op, old, new) in enumerate(_diff(schema, before, after, verb)):
                replay.events.append(RowEvent(schema.name, op, old, new, schema, row, "stream"))
            continue
        server.execute(statement)
        if verb in ("ALTER", "CREATE"):
            schemas[target[2]] = server.schema(target[2])
        elif verb == "DROP":
            del schemas[target[2]]

    server.execute("SET SESSION timestamp = DEFAULT")
    (signal,) = sql_statements(FIXTURES / "signal.sql")
    _signal_insert(server, schemas["debezium_signal"], signal, replay, "signal")
    request = json.loads(re.search(r"'(\{.*\})'", signal)[1])
    filters = {c["data-collection"]: c["filter"] for c in request.get("additional-conditions", [])}
    for collection in request["data-collections"]:
        schema = schemas[collection.split(".", 1)[1]]
        rows = server.rows(schema, exact_floats=False, where=filters.get(collection, ""), order=True)
        replay.events += [RowEvent(schema.name, "r", None, row, schema, 0, "incremental") for row in rows]
    for row in golden_signal_rows:  # Debezium's own watermark writes, see the module docstring
        values = ", ".join(server.conn.escape(row[c.name]) for c in schemas["debezium_signal"].columns)
        _signal_insert(server, schemas["debezium_signal"], f"INSERT INTO debezium_signal VALUES ({values})", replay,
                       "signal")  # fmt: skip
    server.conn.close()
    return replay


def _signal_insert(server: Server, schema: TableSchema, statement: str, replay: Replay, origin: str) -> None:
    before = server.rows(schema, exact_floats=True)
    server.execute(statement)
    for op, old, new in _diff(schema, before, server.rows(schema, exact_floats=True), "INSERT"):
        replay.events.append(RowEvent(schema.name, op, old, new, schema, 0, origin))


# --- golden records ------------------------------------------------------------------------------


def golden(scenario: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / "records" / f"{scenario}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def connector_config(scenario: str) -> dict[str, str]:
    return json.loads((FIXTURES / "connectors" / f"{scenario}.json").read_text(encoding="utf-8"))["config"]


def options_of(config: dict[str, str]) -> DebeziumOptions:
    return DebeziumOptions(
        topic_prefix=config["topic.prefix"],
        decimal_handling_mode=config.get("decimal.handling.mode", "precise"),
        time_precision_mode=config.get("time.precision.mode", "adaptive_time_microseconds"),
        bigint_unsigned_handling_mode=config.get("bigint.unsigned.handling.mode", "long"),
        binary_handling_mode=config.get("binary.handling.mode", "bytes"),
        tombstones_on_delete=config.get("tombstones.on.delete", "true") == "true",
        unsigned_overflow="wrap",  # Debezium's own behaviour; the default refuses (see below)
    )


def captured(config: dict[str, str], table: str) -> bool:
    qualified = f"{GOLD_DATABASE}.{table}"
    include = [p for p in config.get("table.include.list", "").split(",") if p]
    exclude = [p for p in config.get("table.exclude.list", "").split(",") if p]
    if include:
        return any(re.fullmatch(p, qualified) for p in include)
    return not any(re.fullmatch(p, qualified) for p in exclude)


def _headers(record: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(name, value["text"].encode()) for name, value in record.get("headers", [])]


def _bytes(record: dict[str, Any], part: str) -> bytes | None:
    text = record[part]
    return None if text is None else text.encode("utf-8")


@pytest.fixture(scope="module")
def replay(admin_engine, kafka_settings) -> Iterator[Replay]:
    box = Sandbox(admin_engine, kafka_settings, "dbzformat")
    database = box.database("gold")
    signal_topic = "gold_default.gold.debezium_signal"
    watermarks = [
        json.loads(r["value"])["payload"]["after"]
        for r in golden("default")
        if r["topic"] == signal_topic and r["value"] and "snapshot-window" in r["value"]
    ]
    try:
        yield replay_fixture(database, watermarks)
    finally:
        box.cleanup()


def expected_records(scenario: str, replay: Replay, goldens: list[dict[str, Any]]) -> dict[str, list[DebeziumRecord]]:
    """Per topic, the records the encoder writes for the replayed rows, with the run's facts."""
    config = connector_config(scenario)
    options = options_of(config)
    prefix = options.topic_prefix
    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in goldens:
        by_topic[record["topic"]].append(record)
    run_ids = {v.decode() for r in goldens for k, v in _headers(r) if k == "__debezium.context.runId"}
    assert len(run_ids) == 1, run_ids
    (run_id,) = run_ids
    # Each topic's golden payloads in order: the run's facts are read from the next one, and the
    # encoder's clock takes its processing time (a key change writes two values, two times).
    queues = {topic: deque(json.loads(r["value"])["payload"] for r in recs if r["value"])
              for topic, recs in by_topic.items()}  # fmt: skip
    encoders: dict[int, ChangeEventEncoder] = {}

    def encoder(schema: TableSchema) -> ChangeEventEncoder:
        if id(schema) not in encoders:
            queue = queues.setdefault(f"{prefix}.{GOLD_DATABASE}.{schema.name}", deque())
            encoders[id(schema)] = ChangeEventEncoder(schema, options, run_id=run_id,
                                                      clock=lambda: queue.popleft()["ts_ns"])  # fmt: skip
        return encoders[id(schema)]

    out: dict[str, list[DebeziumRecord]] = defaultdict(list)
    tables = [name for name in replay.snapshot if captured(config, name)]
    for order, name in enumerate(tables):
        schema, rows = replay.snapshot[name]
        enc = encoder(schema)
        for i, row in enumerate(rows):
            facts = queues[enc.topic][0]["source"]
            marker = snapshot_marker(order == 0, order == len(tables) - 1, i == 0, i == len(rows) - 1)
            source = SourceInfo(ts_ns=facts["ts_ns"], snapshot=marker, file=facts["file"], pos=facts["pos"])
            out[enc.topic] += enc.read(row, source)

    for event in replay.events:
        if not captured(config, event.table) or (event.origin != "stream" and "signal.data.collection" not in config):
            continue
        enc = encoder(event.schema)
        facts = queues[enc.topic][0]["source"]
        ts_ns = replay.stream_ts_ns if event.origin == "stream" else facts["ts_ns"]
        snapshot = "incremental" if event.origin == "incremental" else "false"
        source = SourceInfo(ts_ns=ts_ns, snapshot=snapshot, server_id=facts["server_id"], gtid=facts["gtid"],
                            file=facts["file"], pos=facts["pos"], row=event.row)  # fmt: skip
        if event.op == "r":
            out[enc.topic] += enc.read(event.after, source)
        elif event.op == "c":
            out[enc.topic] += enc.create(event.after, source)
        elif event.op == "d":
            out[enc.topic] += enc.delete(event.before, source)
        else:
            out[enc.topic] += enc.update(event.before, event.after, source)

    heartbeat_topic = f"__debezium-heartbeat.{prefix}"
    for record in by_topic.get(heartbeat_topic, []):
        out[heartbeat_topic].append(heartbeat_record(prefix, json.loads(record["value"])["payload"]["ts_ms"]))
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_records_match_debezium_byte_for_byte(scenario: str, replay: Replay) -> None:
    goldens = golden(scenario)
    prefix = connector_config(scenario)["topic.prefix"]
    expected = expected_records(scenario, replay, goldens)
    golden_topics = {r["topic"] for r in goldens} - {prefix}  # the schema-change topic is not built
    assert set(expected) == golden_topics
    compared = 0
    for topic in sorted(golden_topics):
        wanted = [r for r in goldens if r["topic"] == topic]
        built = expected[topic]
        assert len(built) == len(wanted), f"{topic}: {len(built)} records built, Debezium wrote {len(wanted)}"
        for offset, (record, gold) in enumerate(zip(built, wanted, strict=True)):
            where = f"{scenario} {topic} @{offset}"
            assert record.key == _bytes(gold, "key"), f"{where} key: {_difference(record.key, _bytes(gold, 'key'))}"
            value = _bytes(gold, "value")
            assert record.value == value, f"{where} value: {_difference(record.value, value)}"
            assert list(record.headers) == _headers(gold), f"{where}: headers differ"
            compared += 1
    assert compared == len(goldens) - sum(r["topic"] == prefix for r in goldens)


def _difference(built: bytes | None, wanted: bytes | None) -> str:
    if built is None or wanted is None:
        return f"built {built!r}, Debezium wrote {wanted!r}"
    at = next((i for i, (a, b) in enumerate(zip(built, wanted, strict=False)) if a != b), min(len(built), len(wanted)))
    around = slice(max(0, at - 60), at + 60)
    return f"first difference at byte {at}: built ...{built[around]!r}, Debezium ...{wanted[around]!r}"


# --- what this project does where Debezium fails, and the helpers' edge cases ---------------------


def _snapshot_row(replay: Replay, table: str, key: int) -> tuple[TableSchema, list[Any]]:
    schema, rows = replay.snapshot[table]
    return schema, next(row for row in rows if row[0] == key)


def test_long_mode_refuses_unsigned_bigint_above_2_63_by_name(replay: Replay) -> None:
    """Debezium's default writes 18446744073709551615 as -1; here that needs the explicit "wrap"."""
    schema, row = _snapshot_row(replay, "all_types", 1)
    encoder = ChangeEventEncoder(schema, DebeziumOptions("gold_default"), run_id="r")
    with pytest.raises(
        ColumnValueError, match=r"gold.all_types: column 'c_bigint_u': BIGINT UNSIGNED 18446744073709551615 .* -1"
    ):
        encoder.read(row, SourceInfo(ts_ns=0, snapshot="true"))
    precise = ChangeEventEncoder(schema, DebeziumOptions("p", bigint_unsigned_handling_mode="precise"), run_id="r")
    (record,) = precise.read(row, SourceInfo(ts_ns=0, snapshot="true"))
    assert json.loads(record.value)["payload"]["after"]["c_bigint_u"] == "AP//////////"


def test_a_value_outside_the_contract_is_refused_with_its_table_and_column(replay: Replay) -> None:
    schema, row = _snapshot_row(replay, "sink_flow", 1)
    encoder = ChangeEventEncoder(schema, DebeziumOptions("p"), run_id="r")
    bad = [*row[:3], "2026-01-01 09:00:00", *row[4:]]  # text where a datetime belongs
    with pytest.raises(ColumnValueError, match=r"table gold.sink_flow, column 'seen': cannot encode '2026-01-01"):
        encoder.create(bad, SourceInfo(ts_ns=0))
    with pytest.raises(ValueError, match=r"table gold.sink_flow: a row of 4 values for 5 columns"):
        encoder.create(row[:4], SourceInfo(ts_ns=0))


def test_columns_debezium_cannot_read_are_refused_by_name(replay: Replay) -> None:
    schema, _ = replay.snapshot["newer_types"]
    with pytest.raises(UnsupportedColumn, match="column 'c_inet4' is INET4"):
        ChangeEventEncoder(schema, DebeziumOptions("p"), run_id="r")


@pytest.mark.parametrize("mode", ["connect", "isostring"])
def test_time_of_day_modes_refuse_a_negative_time_in_a_not_null_column(replay: Replay, mode: str) -> None:
    """Debezium fails the same record (fixtures/debezium/failures/time_*_defaults.txt)."""
    schema, row = _snapshot_row(replay, "defaults", 1)
    options = DebeziumOptions("p", time_precision_mode=mode, unsigned_overflow="wrap")
    encoder = ChangeEventEncoder(schema, options, run_id="r")
    with pytest.raises(ColumnValueError, match=rf"column 'd_time': TIME -01:02:03.500000 .*{mode}"):
        encoder.read(row, SourceInfo(ts_ns=0, snapshot="true"))


def test_year_0000_reads_as_1900_in_a_snapshot_too(replay: Replay) -> None:
    """Debezium's snapshot fails on YEAR 0000 (fixtures/debezium/failures/year0000_snapshot.txt) while
    its binlog reader writes 1900 (covered byte for byte above); a snapshot here writes 1900 as well."""
    event = next(e for e in replay.events if e.table == "zero_dates" and e.after and e.after[0] == 20)
    assert event.after[5] == 0  # the contract's YEAR 0000
    encoder = ChangeEventEncoder(event.schema, DebeziumOptions("p"), run_id="r")
    (record,) = encoder.read(event.after, SourceInfo(ts_ns=0, snapshot="true"))
    assert json.loads(record.value)["payload"]["after"]["y"] == 1900


@pytest.mark.parametrize(
    ("text", "java"),
    [("3", "3"), ("-12.50", "-12.50"), ("0.000001", "0.000001"), ("0.0000001", "1E-7"), ("1E+3", "1E+3"),
     ("-0.00", "0.00"), ("123456789012345678901234567890.5", "123456789012345678901234567890.5")],
)  # fmt: skip
def test_decimals_in_key_headers_print_as_java_bigdecimal(text: str, java: str) -> None:
    assert java_bigdecimal_text(Decimal(text)) == java


def test_enum_labels_come_back_unquoted(sandbox: Sandbox) -> None:
    database = sandbox.database("labels")
    sandbox.execute(database, "CREATE TABLE t (e ENUM('a', 'it''s', 'x,y', '') NULL, s SET('p', 'q r') NULL)")
    with admin_cursor() as cursor:
        schema = read_table_schema(cursor, database, "t")
    assert [c.labels for c in schema.columns] == [("a", "it's", "x,y", ""), ("p", "q r")]
    assert enum_labels("enum('one')") == ("one",)


def test_options_outside_debeziums_values_are_refused_by_name() -> None:
    with pytest.raises(DebeziumOptionError, match=r"time.precision.mode: 'adaptive' is not one of"):
        DebeziumOptions("p", time_precision_mode="adaptive")
    with pytest.raises(DebeziumOptionError, match=r"binary\.handling\.mode"):
        DebeziumOptions("p", binary_handling_mode="raw")


def test_snapshot_markers_follow_debeziums_precedence() -> None:
    assert snapshot_marker(True, True, True, True) == "last"  # a one-row snapshot
    assert snapshot_marker(True, False, True, True) == "first"
    assert snapshot_marker(False, False, True, True) == "last_in_data_collection"
    assert snapshot_marker(False, True, True, False) == "first_in_data_collection"
    assert snapshot_marker(False, False, False, False) == "true"
