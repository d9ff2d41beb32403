"""Canonical forms of what Debezium's MariaDB source carries, against the tables the project's sink makes
of its change events.

The target is written by the real CDC source (rows from its snapshot and from its stream) and the real
Debezium JDBC sink (``schema.evolution=basic``), so it has the types that sink creates (DATETIME(6),
TIMESTAMP(6), DECIMAL(65,30), BIT(n), LONGBLOB, ENUM, SET, YEAR, LONGTEXT...): the check must find it
equal, in every value-handling mode, then find and name one changed value per column.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mungmo_pipelines.core.consistency import Domain, debezium_forms
from mungmo_pipelines.core.mariadb.columns import TableColumn
from tests.support.cdc import Cdc
from tests.support.consistency import CdcReplication, differing_columns
from tests.support.sandbox import Sandbox

PETS = """CREATE TABLE pets (
  id INT NOT NULL PRIMARY KEY,
  visits TINYINT UNSIGNED NOT NULL,
  chip BIGINT UNSIGNED NULL,
  weight DECIMAL(5,2) NULL,
  precise DECIMAL(65,30) NULL,
  rating FLOAT NULL,
  ratio FLOAT(7,3) NULL,
  distance DOUBLE NULL,
  flag BIT(1) NULL,
  flags BIT(10) NULL,
  postcode CHAR(6) NULL,
  name VARCHAR(40) COLLATE utf8mb4_general_ci NULL,
  note TEXT NULL,
  size ENUM('small', 'medium', 'large') NULL,
  tags SET('calm', 'playful', 'shy') NULL,
  prefs JSON NULL,
  chip_id BINARY(16) NULL,
  photo VARBINARY(16) NULL,
  born DATE NULL,
  since YEAR NULL,
  walk_time TIME(6) NULL,
  created_at DATETIME(6) NULL,
  seen_at TIMESTAMP(6) NULL,
  birthday DATE NOT NULL DEFAULT '2000-01-01',
  hatched DATETIME(3) NOT NULL DEFAULT '2000-01-01'
) DEFAULT CHARSET=utf8mb4"""
ROW = (
    "4, 9223372036854775807, 4.25, 12345678901234567890123456789012345.123456789012345678901234567891, 16777217, "
    "1.005, 0.1, 1, b'1000000011', '04001 ', '멍멍 🐶 ', '', 'small', 'calm,shy', '{\"walks\": [1, 2], \"a\": \"b\"}', "
    "X'00112233445566778899AABBCCDD0000', X'0102', '2021-03-01', 2019, '-37:30:00.123456', "
    "'2026-01-02 03:04:05.123456', '2026-01-02 03:04:05.678901', '0050-06-15', '2026-01-02 03:04:05.678'"
)
# Zero and partial dates (the session's sql_mode allows them): NULL in nullable columns, the epoch in NOT NULL ones.
ZERO_DATES = (
    "INSERT INTO pets (id, visits, born, created_at, seen_at, birthday, hatched) "
    "VALUES ({id}, 1, '0000-00-00', '2024-00-10 10:00:00', {seen_at}, '0000-00-00', '2024-02-00 10:00:00')"
)
# One target edit per row: (id, SQL assignment, the column that must be named); ids below 100 came from the
# source's snapshot, the others from its stream.
EDITS = [
    (1, "visits = visits + 1", "visits"),
    (102, "chip = chip - 1", "chip"),
    (3, "weight = 4.26", "weight"),
    (104, "precise = precise + 0.000000000000000000000000000001", "precise"),
    (5, "rating = 16777300", "rating"),  # another value at FLOAT's 6 significant digits
    (106, "ratio = 1.006", "ratio"),
    (7, "distance = 0.3", "distance"),
    (108, "flag = 0", "flag"),
    (9, "flags = b'11'", "flags"),
    (110, "postcode = '04002'", "postcode"),
    (11, "name = '멍멍 🐶'", "name"),  # the trailing space dropped
    (112, "name = '멍멍 🐕 '", "name"),  # another emoji
    (13, "note = NULL", "note"),  # NULL is not ''
    (114, "size = 'medium'", "size"),
    (15, "tags = 'calm'", "tags"),
    (116, """prefs = '{"walks":[1,2],"a":"b"}'""", "prefs"),  # JSON compared as text
    (17, "chip_id = X'00112233445566778899AABBCCDD00'", "chip_id"),  # a trailing zero byte of BINARY(16) lost
    (118, "photo = X'010200'", "photo"),
    (19, "born = '2021-03-02'", "born"),
    (120, "since = 2020", "since"),
    (21, "walk_time = '-37:30:00.123457'", "walk_time"),
    (122, "created_at = '2026-01-02 03:04:05.123457'", "created_at"),
    (23, "seen_at = seen_at + INTERVAL 1 MICROSECOND", "seen_at"),
    (124, "birthday = '2050-06-16'", "birthday"),
    (25, "hatched = '2026-01-02 03:04:05.679'", "hatched"),
]


@pytest.fixture
def pipelines(sandbox: Sandbox) -> Iterator[list[CdcReplication]]:
    made: list[CdcReplication] = []
    yield made
    for pipeline in made:
        pipeline.close()


def replicated_pets(sandbox: Sandbox, made: list[CdcReplication], **source_options: str) -> CdcReplication:
    """Pets rows 1-30 carried by the source's snapshot, 101-130 by its stream, zero dates on both paths."""
    pipeline = CdcReplication(sandbox, PETS, "pets", source_options=source_options)
    made.append(pipeline)
    rows = ", ".join(f"({key}, {ROW})" for key in range(1, 31))
    sandbox.execute(
        pipeline.source_db,
        f"INSERT INTO pets VALUES {rows}",
        "INSERT INTO pets (id, visits) VALUES (50, 0)",
        "SET SESSION sql_mode = ''",
        # The snapshot reads a nullable zero TIMESTAMP as null; streamed it is the epoch, which no TIMESTAMP column
        # takes (the sink stops at it), so only the snapshot carries one.
        ZERO_DATES.format(id=60, seen_at="'0000-00-00 00:00:00'"),
    )
    pipeline.replicate()
    sandbox.execute(
        pipeline.source_db,
        f"INSERT INTO pets SELECT id + 100, {ROW} FROM pets WHERE id <= 30",
        "INSERT INTO pets (id, visits) VALUES (150, 0)",
        "SET SESSION sql_mode = ''",
        ZERO_DATES.format(id=160, seen_at="NULL"),
    )
    pipeline.replicate()
    return pipeline


def test_every_type_debeziums_sink_creates_compares_equal_and_each_changed_value_is_named(
    sandbox: Sandbox, pipelines: list[CdcReplication]
) -> None:
    pipeline = replicated_pets(sandbox, pipelines)
    created = dict(
        sandbox.rows(
            pipeline.target_db,
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND TABLE_NAME = '{pipeline.target_table}'",
        )
    )
    assert {name: created[name] for name in ("precise", "flags", "created_at", "seen_at", "size", "since")} == {
        "precise": "decimal(65,30)",
        "flags": "bit(10)",
        "created_at": "datetime(6)",
        "seen_at": "timestamp(6)",
        "size": "enum('small','medium','large')",
        "since": "year(4)",
    }
    # The FLOAT(7,3) value 1.005 as the snapshot read the server's text, and as the stream carried the float32.
    assert pipeline.target_rows("ratio", "id IN (1, 101)") == [(1.0049999952316284,), (1.005,)]
    equal = pipeline.check()
    assert equal.passed and not equal.in_flight and equal.method == "chunks", equal.summary()
    assert equal.stats.source_rows == equal.stats.target_rows == 64
    assert "rating: target float compared as float32, the precision the pipeline carries" not in equal.notes

    pipeline.target(*("UPDATE {t} SET " + f" {assignment} WHERE id = {key}" for key, assignment, _ in EDITS))
    found = pipeline.check()
    assert differing_columns(found) == {key: {column} for key, _, column in EDITS}, found.summary()
    assert not found.passed and len(found.differences) == len(EDITS)
    # The zero dates are compared as Debezium carries them: the target's epoch is not a NULL.
    pipeline.target("UPDATE {t} SET born = '1970-01-01', birthday = '1970-01-02' WHERE id = 60")
    assert differing_columns(pipeline.check())[60] == {"born", "birthday"}


# Each mode, the columns whose records it changes, and a target edit (SQL assignment) each mode must still see.
MODES = {
    "decimal double": ({"decimal.handling.mode": "double"}, "weight = 4.2500001", "weight"),
    "decimal string": ({"decimal.handling.mode": "string"}, "precise = '0.1'", "precise"),
    "time connect": ({"time.precision.mode": "connect"}, "created_at = '2026-01-02 03:04:05.124'", "created_at"),
    "time isostring": ({"time.precision.mode": "isostring"}, "hatched = '2026-01-02T03:04:05.679Z'", "hatched"),
    "time microseconds": ({"time.precision.mode": "microseconds"}, "walk_time = '-37:30:00'", "walk_time"),
    "time nanoseconds": ({"time.precision.mode": "nanoseconds"}, "born = NULL", "born"),
    "bigint precise": ({"bigint.unsigned.handling.mode": "precise"}, "chip = 1", "chip"),
    "bigint wrapped": ({"mungmo.bigint.unsigned.overflow": "wrap"}, "chip = 1", "chip"),
    "binary base64": ({"binary.handling.mode": "base64"}, "chip_id = 'ABEiM0RVZneImaq7zN0AAA'", "chip_id"),
    "binary base64-url-safe": (
        {"binary.handling.mode": "base64-url-safe"},
        "chip_id = 'ABEiM0RVZneImaq7zN0AAQ=='",
        "chip_id",
    ),
    "binary hex": ({"binary.handling.mode": "hex"}, "photo = '010203'", "photo"),
}


@pytest.mark.parametrize("mode", MODES)
def test_every_value_handling_mode_compares_equal_and_still_sees_an_edit(
    sandbox: Sandbox, pipelines: list[CdcReplication], mode: str
) -> None:
    options, assignment, column = MODES[mode]
    pipeline = replicated_pets(sandbox, pipelines, **options)
    if mode == "bigint wrapped":  # above 2^63-1: Debezium's long mode writes the negative number it wraps to
        sandbox.execute(pipeline.source_db, "UPDATE pets SET chip = 18446744073709551615 WHERE id IN (2, 102)")
        pipeline.replicate()
        assert pipeline.target_rows("chip", "id = 102") == [(-1,)]
    equal = pipeline.check()
    assert equal.passed and not equal.in_flight, equal.summary()
    pipeline.target("UPDATE {t} SET " + f" {assignment} WHERE id IN (7, 107)")
    found = pipeline.check()
    assert differing_columns(found) == {7: {column}, 107: {column}}, found.summary()


def test_the_forms_follow_the_modes(sandbox: Sandbox) -> None:
    """What each mode makes of a column, read off the source body alone."""
    cdc = Cdc(sandbox, ["gold"])
    decimal = TableColumn("d", "decimal", "decimal(10,2)", True, 10, 2)
    unsigned = TableColumn("u", "bigint", "bigint(20) unsigned", True, 20, 0)
    fsp6 = TableColumn("t", "datetime", "datetime(6)", False, datetime_precision=6)
    blob = TableColumn("b", "blob", "blob", True)
    forms = debezium_forms(cdc.config())
    assert forms(decimal).domain == Domain.NUMBER and not forms(unsigned).wraps_to_signed
    assert (forms(fsp6).fraction_digits, forms(fsp6).invalid_dates, forms(fsp6).two_digit_years) == (6, "epoch", True)
    connect = debezium_forms(cdc.config(**{"time.precision.mode": "connect", "decimal.handling.mode": "string"}))
    assert (connect(fsp6).fraction_digits, connect(decimal).domain) == (3, Domain.TEXT)
    assert debezium_forms(cdc.config(**{"mungmo.bigint.unsigned.overflow": "wrap"}))(unsigned).wraps_to_signed
    assert debezium_forms(cdc.config(**{"binary.handling.mode": "hex"}))(blob).text_encoding == "hex"
