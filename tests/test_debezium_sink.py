"""Debezium change events into MariaDB, on real servers: the records the real Debezium 3.5 wrote for
tests/fixtures/debezium/schema.sql + changes.sql are replayed byte for byte into a test topic, and the
target table is compared with the source table those statements leave (built here from the same SQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.errors import SinkError
from tests.support.debezium import (
    FIXTURES,
    DebeziumSinkCase,
    GoldenRecord,
    golden_records,
    load_source,
    new_debezium_case,
    replay,
)
from tests.support.sandbox import Sandbox
from tests.support.sink import headers_of, read_topic

CDC = {"insert.mode": "upsert", "primary.key.mode": "record_key", "delete.enabled": "true", "schema.evolution": "basic"}
UNWRAP = {
    "transforms": "unwrap",
    "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
    "pk.mode": "record_key",
    "insert.mode": "upsert",
    "delete.enabled": "true",
    "auto.create": "true",
}


@pytest.fixture(scope="module")
def source_tables(admin_engine: Engine) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Every table of schema.sql after changes.sql, read once from a database built from them."""
    database = f"mungmo_test_{uuid.uuid4().hex[:10]}_source"
    with admin_engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
    try:
        load_source(database, "schema.sql", "changes.sql")
        with admin_engine.connect() as conn:
            conn.exec_driver_sql(f"USE `{database}`")
            tables = ("all_types", "sink_flow", "composite_pk", "no_pk")
            yield {table: [tuple(row) for row in conn.exec_driver_sql(stored_values(conn, table))] for table in tables}
    finally:
        with admin_engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")


def stored_values(conn: Any, table: str) -> str:
    """``SELECT`` every column of ``table`` as stored: a FLOAT or DOUBLE as the DOUBLE it holds, not the digits
    its display width (FLOAT(7,3), DOUBLE(10,2)) shows, so a FLOAT and the DOUBLE Debezium makes of it compare."""
    columns = conn.exec_driver_sql(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ).all()
    selected = ", ".join(
        f"CAST(`{name}` AS DOUBLE)" if kind in ("float", "double") else f"`{name}`" for name, kind in columns
    )
    return f"SELECT {selected} FROM `{table}` ORDER BY 1, 2"


def target_rows(case: DebeziumSinkCase) -> list[tuple[Any, ...]]:
    with case.sandbox.admin.connect() as conn:
        conn.exec_driver_sql(f"USE `{case.database}`")
        return [tuple(row) for row in conn.exec_driver_sql(stored_values(conn, case.table))]


def debezium_sink_table(label: str) -> dict[str, Any]:
    """What Debezium's own JDBC sink did with the same records (tests/fixtures/debezium/sink/)."""
    result: dict[str, Any] = json.loads((FIXTURES / "sink" / f"{label}.json").read_text(encoding="utf-8"))
    return result


def column_lines(create_table: str) -> list[str]:
    return [line.strip().rstrip(",") for line in create_table.splitlines() if line.strip().startswith("`")]


def as_text(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows as the fixture prints them (numbers as ints, everything else as str)."""
    return [tuple(v if v is None or isinstance(v, int) else str(v) for v in row) for row in rows]


def dead_letters(sandbox: Sandbox, topic: str) -> dict[int, str]:
    return {
        int(h["__connect.errors.offset"]): h["__connect.errors.exception.message"]
        for h in map(headers_of, read_topic(sandbox.kafka, topic))
    }


def test_creates_updates_deletes_and_a_key_change_end_like_the_source(
    sandbox: Sandbox, source_tables: dict[str, list[tuple[Any, ...]]]
) -> None:
    case = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    run = case.run(case.config(**CDC))
    assert case.rows() == source_tables["sink_flow"]
    stats = run.stats(case.table)
    # r 1-3, c 4, c 20 inserted; u 1 updated; d 3 + tombstone, d 2 + tombstone (2 became 20): each row deleted once.
    assert (stats.inserted, stats.updated, stats.deleted, run.records, run.skipped) == (5, 1, 2, 10, 0)
    # Debezium's own sink, run on the same records, ended with the same rows and created the same columns.
    debezium = debezium_sink_table("sink_flow")
    assert as_text(case.rows()) == [tuple(row.values()) for row in debezium["target_rows"]]
    create = sandbox.rows(case.database, f"SHOW CREATE TABLE `{case.table}`")[0][1]
    assert column_lines(create) == column_lines(debezium["show_create_table"])


def test_a_composite_key_change_deletes_the_old_key_and_writes_the_new_one(
    sandbox: Sandbox, source_tables: dict[str, list[tuple[Any, ...]]]
) -> None:
    """Debezium's own sink failed on these records (the key change's ``__debezium.newkey`` header)."""
    case = new_debezium_case(sandbox, "composite_pk")
    records = golden_records("bigint_precise", "composite_pk")
    ops = "".join(r.event["op"] if r.event else "-" for r in records)
    assert ops.count("d-c") == 3  # the key changes: seq 2 to 3, seq 5 to 6, tenant 'q"b\\c' to 'q"b\\c2'

    replay(sandbox, case.topic, records)
    case.run(case.config(**CDC))
    assert case.rows() == [(t, Decimal(s), n) for t, s, n in source_tables["composite_pk"]]
    assert debezium_sink_table("composite_pk")["task_state"] == "FAILED"


# Cells of Debezium's snapshot records that are not the stored value: its snapshot reads FLOAT and DOUBLE(M,D)
# through their text, so 16777217 stored as float32 16777216 arrives as 16777200.0 (6 digits) and DOUBLE(10,2)
# -0.01, stored as -0.010000000000000009, arrives as -0.01 (the streamed copies, rows 12-14, carry the stored
# value). The target holds what the record says.
SNAPSHOT_TEXT_READS = {(4, "c_float"): 16777200.0, (2, "c_double_md"): -0.01}


def expected_row(source_row: tuple[Any, ...], columns: list[str]) -> tuple[Any, ...]:
    """The source row (of the columns kept, in order), with Debezium's snapshot text reads in place."""
    key = source_row[0]
    row = [source_row[SOURCE_COLUMNS.index(name)] for name in columns]
    for (row_key, name), value in SNAPSHOT_TEXT_READS.items():
        if row_key == key and name in columns:
            row[columns.index(name)] = value
    return normalized(tuple(row))


def test_every_type_round_trips_from_source_to_target(
    sandbox: Sandbox, source_tables: dict[str, list[tuple[Any, ...]]]
) -> None:
    """One row of every MariaDB type, through Debezium's records (bigint.unsigned.handling.mode=precise)."""
    records = golden_records("bigint_precise", "all_types")
    by_offset = {r.offset: r.event for r in records}
    snapshot = {event["after"]["id"]: event["after"] for event in by_offset.values() if event and event["op"] == "r"}
    for (key, name), value in SNAPSHOT_TEXT_READS.items():
        assert snapshot[key][name] == value
    source = {row[0]: row for row in source_tables["all_types"]}
    case = new_debezium_case(sandbox, "all_types")
    replay(sandbox, case.topic, records)
    dlq = sandbox.topic("dlq")
    case.run(case.config(**CDC, **{"errors.tolerance": "all", "errors.deadletterqueue.topic.name": dlq}))
    target = {row[0]: row for row in target_rows(case)}

    # Debezium's records themselves differ from the source where Debezium cannot say the value: row 4's
    # ENUM holds the empty error value (Debezium sends ''), and UPDATE ... c_year = 0 arrives as 1900. Both
    # are refused by name, not written as something else.
    assert by_offset[3]["after"]["c_enum"] == by_offset[7]["after"]["c_enum"] == ""  # type: ignore[index]
    assert by_offset[14]["after"]["c_year"] == 1900 and source[14][SOURCE_COLUMNS.index("c_year")] == 0  # type: ignore[index]
    letters = dead_letters(sandbox, dlq)
    assert sorted(letters) == [3, 7, 14]
    assert "field 'c_enum': expected one of the Enum's values ['large', 'medium', 'small'], got ''" in letters[3]
    assert "field 'c_year': expected a Year a YEAR column holds (0 or 1901 to 2155), got 1900" in letters[14]

    assert sorted(target) == [1, 2, 3, 11, 22]
    for key in target:
        assert normalized(target[key]) == expected_row(source[key], SOURCE_COLUMNS), key

    # The same records with those two fields left out: every other cell of rows 4 and 14 too.
    without = new_debezium_case(sandbox, "all_types")
    replay(sandbox, without.topic, records)
    without.run(without.config(**CDC, **{"field.exclude.list": "c_enum,c_year"}))
    kept = [name for name in SOURCE_COLUMNS if name not in ("c_enum", "c_year")]
    assert [c[0] for c in sandbox.rows(without.database, f"SHOW COLUMNS FROM `{without.table}`")] == kept
    rows = {row[0]: row for row in target_rows(without)}
    assert sorted(rows) == [1, 2, 3, 4, 11, 14, 22]
    for key, row in rows.items():
        assert normalized(row) == expected_row(source[key], kept), key


SOURCE_COLUMNS = [
    line.split()[0]
    for line in (FIXTURES / "schema.sql")
    .read_text(encoding="utf-8")
    .split("CREATE TABLE all_types (")[1]
    .split(") DEFAULT CHARSET")[0]
    .strip()
    .splitlines()
]


def normalized(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """BIT(1) becomes a Connect boolean, so TINYINT(1) in the target: compare as numbers."""
    return tuple(
        int.from_bytes(v, "big") if isinstance(v, bytes) and len(v) == 1 and v in (b"\0", b"\1") else v for v in row
    )


def test_column_types_are_the_ones_debeziums_sink_creates(sandbox: Sandbox) -> None:
    case = new_debezium_case(sandbox, "all_types")
    replay(sandbox, case.topic, golden_records("default", "all_types")[:1])
    case.run(case.config(**CDC))
    ours = column_lines(sandbox.rows(case.database, f"SHOW CREATE TABLE `{case.table}`")[0][1])
    theirs = column_lines(debezium_sink_table("all_types")["show_create_table"])
    # The one difference: DECIMAL(65,30) stays DECIMAL(65,30), where Debezium's capped 38 digits then
    # refuse the value (its all_types_unwrapped run failed with "Out of range value for column 'c_decimal_max'").
    assert [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b] == [
        ("`c_decimal_max` decimal(65,30) DEFAULT NULL", "`c_decimal_max` decimal(38,30) DEFAULT NULL")
    ]
    assert "Out of range value for column 'c_decimal_max'" in " ".join(
        debezium_sink_table("all_types_unwrapped")["error"]
    )


def test_deletes_and_tombstones_are_skipped_unless_enabled(sandbox: Sandbox) -> None:
    case = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    run = case.run(case.config(**{**CDC, "delete.enabled": "false"}))
    assert run.skipped == 4 and [row[0] for row in case.rows()] == [1, 2, 3, 4, 20]


def test_record_value_keys_delete_by_the_fields_of_before(
    sandbox: Sandbox, source_tables: dict[str, list[tuple[Any, ...]]]
) -> None:
    case = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    run = case.run(case.config(**{**CDC, "primary.key.mode": "record_value", "primary.key.fields": "id"}))
    assert case.rows() == source_tables["sink_flow"] and run.skipped == 2  # the tombstones


def test_insert_mode_insert_fails_on_an_update_as_debeziums_sink_does(sandbox: Sandbox) -> None:
    case = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    with pytest.raises(SinkError, match=r"@4 failed at TASK_PUT: .*Duplicate entry '1' for key 'PRIMARY'"):
        case.run(case.config(**{**CDC, "insert.mode": "insert"}))


def test_a_table_without_primary_key_is_appended_to(
    sandbox: Sandbox, source_tables: dict[str, list[tuple[Any, ...]]]
) -> None:
    """``primary.key.mode=none``: every create, read and update is a new row; deletes cannot be applied."""
    case = new_debezium_case(sandbox, "no_pk")
    records = golden_records("default", "no_pk")
    assert any(r.key is None and r.value is None for r in records)  # Debezium's tombstone of a keyless row
    replay(sandbox, case.topic, records)
    run = case.run(case.config(**{"schema.evolution": "basic"}))
    assert run.skipped == 2
    assert sorted(case.rows(), key=repr) == sorted(
        [(None, None), (None, "changed"), (1, "first"), (1, "first"), (2, "second")], key=repr
    )


def truncate_event(template: GoldenRecord) -> bytes:
    """A truncate event in the envelope Debezium wrote for the table (Debezium's MariaDB connector skips
    truncates by default, skipped.operations=t, so the golden records have none)."""
    document = json.loads(template.value or b"")
    document["payload"].update(op="t", before=None, after=None)
    return dumps(document)


def test_truncate_events_empty_the_table_between_batches(sandbox: Sandbox) -> None:
    records = golden_records("default", "sink_flow")
    truncate = GoldenRecord(records[0].topic, 0, None, truncate_event(records[3]), ())
    sequence = [*records[:5], truncate, *records[9:]]  # r 1-3, c 4, u 1, truncate, c 20
    case = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, sequence)
    run = case.run(case.config(**CDC, **{"truncate.enabled": "true", "batch.size": "3"}))
    assert [row[0] for row in case.rows()] == [20]
    assert run.stats(case.table).truncated == 1 and run.records == 7

    skipping = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, skipping.topic, sequence)
    run = skipping.run(skipping.config(**CDC))
    assert [row[0] for row in skipping.rows()] == [1, 2, 3, 4, 20] and run.skipped == 1


def test_table_names_from_the_events_source_block(sandbox: Sandbox) -> None:
    case = new_debezium_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    table = f"copy_{sandbox.suffix}_${{source.table}}"
    run = case.run(case.config(**CDC, **{"collection.name.format": table}))
    assert sandbox.rows(case.database, f"SELECT id FROM `copy_{sandbox.suffix}_sink_flow` ORDER BY id") == [
        (1,),
        (4,),
        (20,),
    ]
    assert run.skipped == 2  # tombstones carry no source block to name a table with


def test_schema_evolution_adds_columns_and_stops_at_a_type_change(sandbox: Sandbox) -> None:
    """``evolving`` gains a column, then changes INT to BIGINT: the run stops there, naming the column, with
    every earlier change committed; after the column is altered the next run goes on from that change."""
    case = new_debezium_case(sandbox, "evolving")
    replay(sandbox, case.topic, golden_records("default", "evolving"))
    with pytest.raises(SinkError, match=r"column 'score' is INT\(11\), but the records now carry int64"):
        case.run(case.config(**CDC, **{"batch.size": "1"}))
    # ADD COLUMN … DEFAULT 'new' gives the rows already there 'new', in the target as in the source.
    assert case.rows() == [
        (1, "before", 1, "new"),
        (2, "in trx 1", 11, "new"),
        (3, "in trx 2", 21, "new"),
        (4, "after add", 3, "new"),
    ]
    sandbox.execute(case.database, f"ALTER TABLE `{case.table}` MODIFY score BIGINT NOT NULL DEFAULT 0")
    with pytest.raises(SinkError, match=r"cannot add column 'title' .* the field is required and has no default"):
        case.run(case.config(**CDC, **{"batch.size": "1"}))
    assert case.rows()[-1] == (5, "after modify", 0, "new")
    with pytest.raises(SinkError, match=r"table .* does not exist and schema\.evolution=none"):
        other = new_debezium_case(sandbox, "evolving")
        replay(sandbox, other.topic, golden_records("default", "evolving")[:1])
        other.run(other.config(**{**CDC, "schema.evolution": "none"}))


# --- the JDBC sink with ExtractNewRecordState -----------------------------------------------------


def jdbc_case(sandbox: Sandbox, label: str) -> tuple[DebeziumSinkCase, dict[str, Any]]:
    case = new_debezium_case(sandbox, label)
    body = sandbox.sink_body(case.database, topics=case.topic, **{"table.name.format": case.table})
    return case, body


def run_jdbc(case: DebeziumSinkCase, body: dict[str, Any], **options: str) -> Any:
    from mungmo_pipelines.core.config.loader import parse_connector
    from mungmo_pipelines.core.sink.runtime import JdbcSink

    config = parse_connector({"name": body["name"], "config": {**body["config"], **options}})
    return JdbcSink(config, case.sandbox.engine(case.database), case.sandbox.kafka).run()  # type: ignore[arg-type]


def test_jdbc_sink_with_unwrap_applies_change_events(
    sandbox: Sandbox, source_tables: dict[str, list[tuple[Any, ...]]]
) -> None:
    case, body = jdbc_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    run = run_jdbc(case, body, **UNWRAP)
    # Unwrapped, a MicroTimestamp/ZonedTimestamp is still Debezium's type, written as Debezium's sink would.
    assert case.rows() == source_tables["sink_flow"] and run.skipped == 2  # the dropped tombstones


def test_jdbc_sink_with_unwrap_rewrite_keeps_deleted_rows_marked(sandbox: Sandbox) -> None:
    case, body = jdbc_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    run_jdbc(
        case,
        body,
        **{
            **UNWRAP,
            "delete.enabled": "false",
            "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
            "transforms.unwrap.add.fields": "op,source.ts_ms",
        },
    )
    rows = {row[0]: (row[1], row[5], row[6]) for row in case.rows(f"SELECT * FROM `{case.table}` ORDER BY 1")}
    assert {key: (name, deleted, op) for key, (name, deleted, op) in rows.items()} == {
        1: ("보리 updated", "false", "u"),
        2: ("coco", "true", "d"),
        3: ("delete me", "true", "d"),
        4: ("new 🐕", "false", "c"),
        20: ("coco", "false", "c"),
    }


def test_jdbc_sink_with_legacy_unwrap_options(sandbox: Sandbox) -> None:
    """Debezium 2.x's defaults, delete.handling.mode=drop and drop.tombstones=true, leave deleted rows in place."""
    case, body = jdbc_case(sandbox, "sink_flow")
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    run = run_jdbc(case, body, **{**UNWRAP, "transforms.unwrap.delete.handling.mode": "drop"})
    assert [row[0] for row in case.rows()] == [1, 2, 3, 4, 20] and run.skipped == 4


def test_fractional_seconds_a_narrower_column_would_drop_are_refused(sandbox: Sandbox) -> None:
    """MariaDB drops fractional seconds beyond a column's precision without a warning, even in strict mode."""
    case = new_debezium_case(sandbox, "sink_flow")
    sandbox.execute(
        case.database,
        f"CREATE TABLE `{case.table}` (id INT NOT NULL PRIMARY KEY, name VARCHAR(30) NOT NULL, "
        "amount DECIMAL(10,2) NULL, seen DATETIME NULL, stamp TIMESTAMP(6) NULL)",
    )
    replay(sandbox, case.topic, golden_records("default", "sink_flow"))
    dlq = sandbox.topic("dlq")
    case.run(case.config(**CDC, **{"errors.tolerance": "all", "errors.deadletterqueue.topic.name": dlq}))
    letters = dead_letters(sandbox, dlq)
    # r 1 (.125), c 4 (.5) and u 1 (.125) carry milliseconds; r 3's 00:00:00.000 fits.
    assert sorted(letters) == [0, 3, 4]
    assert (
        "column 'seen' is DATETIME, which would drop the fractional seconds of '2026-01-01 09:00:00.125000'"
        in (letters[0])
    )
    assert [row[0] for row in case.rows()] == [20]  # 2 became 20; 3 was written, then deleted


def test_column_defaults_come_from_debeziums_schema(sandbox: Sandbox) -> None:
    case = new_debezium_case(sandbox, "defaults")
    replay(sandbox, case.topic, golden_records("default", "defaults"))
    case.run(case.config(**CDC))
    create = sandbox.rows(case.database, f"SHOW CREATE TABLE `{case.table}`")[0][1]
    lines = {line.split()[0].strip("`"): line for line in column_lines(create)}
    assert lines["d_int"] == "`d_int` int(11) NOT NULL DEFAULT 42"
    assert lines["d_enum"] == "`d_enum` enum('a','b','c') NOT NULL DEFAULT 'b'"
    assert lines["d_time"] == "`d_time` time(6) NOT NULL DEFAULT '-01:02:03.500000'"
    assert lines["d_datetime"] == "`d_datetime` datetime(6) NOT NULL DEFAULT '2001-02-03 04:05:06.789000'"
    assert lines["d_timestamp_lit"] == "`d_timestamp_lit` timestamp(6) NOT NULL DEFAULT '2020-01-01 00:00:00.000000'"
    # CURRENT_TIMESTAMP arrives as the epoch, which no TIMESTAMP column holds: the column gets no default.
    assert lines["d_timestamp"] == "`d_timestamp` timestamp(6) NOT NULL"
    assert [row[0] for row in case.rows()] == [1, 2]
