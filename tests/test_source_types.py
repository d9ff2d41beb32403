"""One row of every MariaDB type against hand-written JsonConverter JSON, and the generated docs tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mungmo_pipelines.core.connect.java_numbers import java_double_text, java_float_text
from mungmo_pipelines.core.connect.json_converter import jackson_json
from mungmo_pipelines.core.docs import stale_pages
from mungmo_pipelines.core.kafka.clients import read_to_end, topic_partitions
from tests.support.sandbox import Sandbox
from tests.support.source import run_source, source_config

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = json.loads((ROOT / "tests" / "fixtures" / "source_all_types.json").read_text(encoding="utf-8"))

ALL_TYPES = """
CREATE TABLE all_types (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  t_bool BOOLEAN NULL, t_tinyint TINYINT NULL, t_tinyint_u TINYINT UNSIGNED NULL,
  t_tinyint1_u TINYINT(1) UNSIGNED NULL, t_smallint SMALLINT NULL, t_smallint_u SMALLINT UNSIGNED NULL,
  t_mediumint MEDIUMINT NULL, t_mediumint_u MEDIUMINT UNSIGNED NULL, t_int INT NULL, t_int_u INT UNSIGNED NULL,
  t_bigint BIGINT NULL, t_bigint_u BIGINT UNSIGNED NULL, t_decimal DECIMAL(5,2) NULL,
  t_decimal_max DECIMAL(65,30) NULL, t_float FLOAT NULL, t_double DOUBLE NULL, t_bit1 BIT(1) NULL,
  t_bit12 BIT(12) NULL, t_char CHAR(4) NULL, t_varchar VARCHAR(50) NULL, t_text TEXT NULL, t_json JSON NULL,
  t_enum ENUM('dog', 'cat') NULL, t_set SET('walk', 'meal') NULL, t_binary BINARY(3) NULL,
  t_varbinary VARBINARY(8) NULL, t_blob BLOB NULL, t_date DATE NULL, t_year YEAR NULL, t_time TIME NULL,
  t_time3 TIME(3) NULL, t_datetime DATETIME NULL, t_datetime1 DATETIME(1) NULL, t_datetime3 DATETIME(3) NULL,
  t_datetime6 DATETIME(6) NULL, t_timestamp TIMESTAMP NULL, t_timestamp6 TIMESTAMP(6) NULL,
  t_required VARCHAR(10) NOT NULL
) DEFAULT CHARSET=utf8mb4
"""

ROWS = [
    (
        1, -128, 255, 200, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
        18446744073709551615, "123.45", "12345678901234567890123456789012345.123456789012345678901234567890",
        3.14, 0.1, b"\x01", b"\x0a\xaa", "멍멍", "김민지 🐶", 'line1\nline2 "quoted" \\ back \x1f ctl',
        '{"a": [1, 2]}', "cat", "walk,meal", b"\x00\x01\x02", bytes.fromhex("DEADBEEF"), "강아지".encode(),
        "2024-02-29", 2024, "13:45:30", "23:59:59.999", "2026-01-02 03:04:05", "2026-01-02 03:04:05.6",
        "2026-01-02 03:04:05.678", "2026-01-02 03:04:05.678901", "2026-01-02 03:04:05",
        "2026-01-02 03:04:05.678901", "x",
    ),
    (None,) * 37 + ("",),
    (
        0, 127, 0, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, "-12.50",
        "-12345678901234567890123456789012345.123456789012345678901234567890", 1e10, 1.5e-7, b"\x00",
        b"\x00\x01", "", "🐾", "", "null", "dog", "", b"\x01", b"", b"\x00", "0000-00-00", 1901, "00:00:00",
        "24:00:00", "0000-00-00 00:00:00", "1970-01-01 00:00:00.0", "1969-12-31 23:59:59.999",
        "1970-01-01 00:00:00.000999", "1970-01-01 00:00:01", "2038-01-19 03:14:07.999999", "y",
    ),
]  # fmt: skip


def _load_all_types(sandbox: Sandbox) -> str:
    database = sandbox.database("types")
    sandbox.execute(database, ALL_TYPES)
    columns = [f["field"] for f in EXPECTED["value_schema"]["fields"][1:]]
    with sandbox.admin.begin() as conn:
        conn.exec_driver_sql(f"USE `{database}`")
        conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")
        conn.exec_driver_sql(
            f"INSERT INTO all_types ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", ROWS
        )
    return database


def _raw_records(sandbox: Sandbox, topic: str) -> list[tuple[bytes, bytes]]:
    consumer = sandbox.kafka.consumer(isolation_level="read_committed", enable_auto_commit=False)
    try:
        return [(r.key, r.value) for r in read_to_end(consumer, topic_partitions(consumer, topic))]
    finally:
        consumer.close()


def _assert_same_document(actual: Any, expected: Any, path: str) -> None:
    """Equal values and, for objects, the same key order (JsonConverter's)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for name in expected:
            _assert_same_document(actual[name], expected[name], f"{path}.{name}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same_document(a, e, f"{path}[{index}]")
    else:
        assert actual == expected and type(actual) is type(expected), f"{path}: {actual!r} != {expected!r}"


def test_every_type_matches_the_hand_written_jsonconverter_form(sandbox: Sandbox) -> None:
    database = _load_all_types(sandbox)
    topic = sandbox.topic("all_types")
    run_source(sandbox, source_config(sandbox, database, mode="bulk", **{"table.whitelist": "all_types"}), database)
    records = _raw_records(sandbox, topic)
    assert len(records) == 3
    for (key, value), expected_payload in zip(records, EXPECTED["payloads"], strict=True):
        row = f"row {expected_payload['id']}"
        document = json.loads(value)
        assert list(document) == ["schema", "payload"]
        _assert_same_document(document["schema"], EXPECTED["value_schema"], f"{row} value schema")
        for field in EXPECTED["value_schema"]["fields"]:
            name = field["field"]
            _assert_same_document(document["payload"][name], expected_payload[name], f"{row} payload.{name}")
        assert list(document["payload"]) == list(expected_payload)
        key_document = json.loads(key)
        _assert_same_document(key_document["schema"], EXPECTED["key_schema"], f"{row} key schema")
        assert key_document["payload"] == {"id": expected_payload["id"]}
        # Compact, UTF-8 as is, and the exact text Jackson gives numbers and control characters.
        schema_text = value.split(b'"payload":')[0]
        assert b": " not in schema_text and b", " not in schema_text
        for name, text in EXPECTED["java_number_text"].get(str(expected_payload["id"]), {}).items():
            assert f'"{name}":{text},'.encode() in value, name
    # Jackson writes Korean as UTF-8 but an emoji as an escaped surrogate pair, as JsonConverter
    # does in the records Debezium wrote through Kafka 4.3 (tests/fixtures/debezium).
    assert "김민지 \\uD83D\\uDC36".encode() in records[0][1]
    assert b"back \\u001F ctl" in records[0][1]


def test_db_timezone_moves_datetime_but_not_timestamp_or_time(sandbox: Sandbox) -> None:
    database = _load_all_types(sandbox)
    topic = sandbox.topic("all_types")
    config = source_config(
        sandbox, database, mode="bulk", **{"table.whitelist": "all_types", "db.timezone": "Asia/Seoul"}
    )
    run_source(sandbox, config, database)
    first = json.loads(_raw_records(sandbox, topic)[0][1])["payload"]
    for name, expected in EXPECTED["seoul"].items():
        assert first[name] == expected, name


def test_docs_type_and_option_tables_are_the_code_tables() -> None:
    assert stale_pages() == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e7, "1.0E7"),
        (1234567.0, "1234567.0"),
        (0.001, "0.001"),
        (1e-4, "1.0E-4"),
        (-0.0, "-0.0"),
        (5e-324, "4.9E-324"),
    ],
)
def test_doubles_are_written_as_java_does(value: float, text: str) -> None:
    assert java_double_text(value) == text


def test_floats_are_the_float32_the_driver_reads() -> None:
    assert java_float_text(0.1) == "0.1"
    assert java_float_text(16777217.0) == "1.6777216E7"


def test_control_characters_are_escaped_in_upper_case_hex_like_jackson() -> None:
    assert jackson_json(["\x1f", "\\u00ab", "\n"]) == b'["\\u001F","\\\\u00ab","\\n"]'
    assert jackson_json("멍멍 🐾") == '"멍멍 \\uD83D\\uDC3E"'.encode()  # beyond the BMP: a surrogate pair
    # Every plane's lead byte (F0-F4 in UTF-8), side by side and twice, around Korean text.
    assert (
        jackson_json("\U00040000\U0010ffff가🐾🐾")
        == b'"\\uD8C0\\uDC00\\uDBFF\\uDFFF\xea\xb0\x80\\uD83D\\uDC3E\\uD83D\\uDC3E"'
    )
