"""Records in the exact form Confluent's JDBC source writes (golden files) load through a real topic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from tests.support.sandbox import Sandbox
from tests.support.sink import SinkCase, new_case

FIXTURES = Path(__file__).parent / "fixtures" / "confluent_jdbc_source"


def replay(case: SinkCase, name: str) -> None:
    lines = (FIXTURES / f"{name}.values.jsonl").read_bytes().splitlines()
    case.produce((None, line) for line in lines)


def test_seed_table_records_create_and_fill_the_table_as_the_jdbc_sink_would(sandbox: Sandbox) -> None:
    case = new_case(sandbox, "my_topic_test001")
    replay(case, "test001")
    # The team's sink body: auto.create, auto.evolve, insert, pk.mode none.
    run = case.run(case.config(auto_create="true", auto_evolve="true", delete_enabled="false", tasks_max="1"))
    assert run.stats(case.topic).inserted == 3
    assert case.columns() == {
        "seq": "int(11)",
        "member_name": "longtext",
        "pet_name": "longtext",
        "pet_kind": "longtext",
        "neighbourhood": "longtext",
        "walk_note": "longtext",
        "weight_kg": "decimal(5,2)",
        "neutered": "tinyint(4)",
        "visits": "bigint(20)",
        "height_cm": "float",
        "score": "double",
        "born": "date",
        "walk_time": "time(3)",
        "created_at": "datetime(3)",
        "photo": "longblob",
    }
    assert case.rows() == [
        (
            1,
            "김민지",
            "초코",
            "dog",
            "서울 마포구 망원동",
            "아침 산책 30분 🐾",
            Decimal("4.25"),
            1,
            12,
            31.5,
            4.75,
            dt.date(2021, 3, 1),
            dt.timedelta(hours=7, minutes=30),
            dt.datetime(2026, 1, 2, 3, 4, 5, 678000),
            b"\x89PNG\r\n",
        ),
        (
            2,
            "이서준",
            None,
            "cat",
            "서울 성동구 성수동",
            None,
            None,
            0,
            None,
            None,
            None,
            None,
            None,
            dt.datetime(2026, 5, 6, 7, 8, 9),
            None,
        ),
        (
            3,
            "bob",
            "Max",
            "other",
            "부산 해운대구 우동",
            "'quotes', \"double\" and \\backslash\ttab",
            Decimal("-12.50"),
            0,
            4294967295,
            -0.25,
            1e-05,
            dt.date(1969, 12, 31),
            dt.timedelta(hours=23, minutes=59, seconds=59, milliseconds=999),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999000),
            b"",
        ),
    ]


def test_timestamp_incrementing_updates_upsert_by_a_value_field(sandbox: Sandbox) -> None:
    """The JDBC source leaves keys null, so upserts take their key from the value (pk.mode=record_value)."""
    case = new_case(sandbox, "neighbourhood_verification")
    replay(case, "test002")
    config = case.config(auto_create="true", insert_mode="upsert", pk_mode="record_value", pk_fields="member_seq")
    run = case.run(config)
    assert (run.stats(case.topic).inserted, run.stats(case.topic).updated) == (2, 1)
    assert case.rows() == [
        (10, "서울 마포구 망원동", 0, None, dt.datetime(2026, 7, 1, 9, 30, 0, 500000)),
        (11, "서울 성동구 성수동", 1, dt.datetime(2026, 7, 1, 9, 0), dt.datetime(2026, 7, 1, 9, 0)),
    ]
    assert case.columns()["member_seq"] == "bigint(20)"
