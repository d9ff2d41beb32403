"""The JDBC sink's write options on real MariaDB and Kafka: insert/pk modes, upserts, deletes, tables."""

from __future__ import annotations

import pytest

from mungmo_pipelines.core.errors import SinkError
from mungmo_pipelines.core.sink.runtime import MAX_BATCH_BYTES
from mungmo_pipelines.core.sink.writers import Statement
from tests.support.sandbox import Sandbox
from tests.support.sink import (
    MEMBER_FIELDS,
    SinkCase,
    envelope,
    field,
    member,
    new_case,
    primitive,
    tombstone,
)


@pytest.fixture
def case(sandbox: Sandbox) -> SinkCase:
    return new_case(sandbox)


def test_insert_with_pk_mode_none_appends_rows_without_a_key(case: SinkCase) -> None:
    case.produce([member(1, "김민지", "초코"), member(2, "bob"), member(1, "김민지", "초코")])
    run = case.run(case.config(auto_create="true"))
    assert run.stats(case.topic).inserted == 3 and run.records == 3
    assert case.rows() == [(1, "김민지", "초코"), (1, "김민지", "초코"), (2, "bob", None)]
    assert case.columns() == {"seq": "int(11)", "member_name": "longtext", "pet_name": "longtext"}
    assert case.sandbox.rows(case.database, f"SHOW INDEX FROM `{case.topic}`") == []
    # A second run has nothing left to read: the offsets stored with the rows say so.
    again = case.run(case.config(auto_create="true"))
    assert (again.records, again.lag_before()) == (0, 0)
    assert len(case.rows()) == 3


def test_pk_mode_kafka_keys_rows_by_coordinates(case: SinkCase) -> None:
    case.produce([member(7, "a"), member(7, "b")])
    case.run(case.config(auto_create="true", pk_mode="kafka"))
    assert case.rows(f"SELECT * FROM `{case.topic}` ORDER BY __connect_offset") == [
        (case.topic, 0, 0, 7, "a", None),
        (case.topic, 0, 1, 7, "b", None),
    ]
    primary = case.sandbox.rows(
        case.database,
        f"SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME = '{case.topic}' AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
    )
    assert primary == [("__connect_topic",), ("__connect_partition",), ("__connect_offset",)]
    assert case.columns()["__connect_topic"] == "varchar(255)"


def test_pk_mode_kafka_with_named_fields(case: SinkCase) -> None:
    case.produce([member(1, "a")])
    case.run(case.config(auto_create="true", pk_mode="kafka", pk_fields="t,p,o"))
    assert list(case.columns())[:3] == ["t", "p", "o"]


def test_record_key_upsert_keeps_the_latest_value_per_key(case: SinkCase) -> None:
    case.produce([member(1, "a", "x"), member(2, "b"), member(1, "a2", "y")])
    config = case.config(auto_create="true", insert_mode="upsert", pk_mode="record_key")
    first = case.run(config)
    assert case.rows() == [(1, "a2", "y"), (2, "b", None)]
    assert (first.stats(case.topic).inserted, first.stats(case.topic).updated) == (2, 1)
    # Changed rows arrive later: updated in place, and an unchanged re-send counts as an update too.
    case.produce([member(2, "b", "new pet"), member(1, "a2", "y"), member(3, "c")])
    second = case.run(config)
    assert case.rows() == [(1, "a2", "y"), (2, "b", "new pet"), (3, "c", None)]
    assert (second.stats(case.topic).inserted, second.stats(case.topic).updated) == (1, 2)
    # String keys become indexable VARCHARs that compare exactly (no case folding, no pad space).
    assert case.columns()["seq"] == "int(11)"


def test_record_key_with_primitive_key_needs_one_pk_field(case: SinkCase) -> None:
    value = envelope([field("name", "string")], {"name": "Bob"})
    case.produce([(primitive("string", "bob"), value), (primitive("string", "Bob"), value)])
    case.run(case.config(auto_create="true", insert_mode="upsert", pk_mode="record_key", pk_fields="login"))
    assert case.rows() == [("Bob", "Bob"), ("bob", "Bob")]
    assert case.columns() == {"login": "varchar(255)", "name": "longtext"}
    collation = case.sandbox.rows(
        case.database,
        f"SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME = '{case.topic}' AND COLUMN_NAME = 'login'",
    )
    assert collation == [("utf8mb4_nopad_bin",)]


def test_record_value_pk_with_fields_whitelist(case: SinkCase) -> None:
    case.produce([member(1, "a", "x"), member(1, "b", "y"), member(2, "c", "z")])
    config = case.config(
        auto_create="true", insert_mode="upsert", pk_mode="record_value", pk_fields="seq", fields_whitelist="pet_name"
    )
    case.run(config)
    assert case.columns() == {"seq": "int(11)", "pet_name": "longtext"}
    assert case.rows() == [(1, "y"), (2, "z")]


def test_update_mode_changes_existing_rows_only(case: SinkCase) -> None:
    case.sandbox.execute(
        case.database, f"CREATE TABLE `{case.topic}` (seq INT PRIMARY KEY, member_name TEXT, pet_name TEXT)"
    )
    case.sandbox.execute(case.database, f"INSERT INTO `{case.topic}` VALUES (1, 'old', NULL)")
    case.produce([member(1, "new", "pet"), member(2, "absent")])
    run = case.run(case.config(insert_mode="update", pk_mode="record_value", pk_fields="seq"))
    assert case.rows() == [(1, "new", "pet")]
    assert run.stats(case.topic).updated == 1


def test_tombstones_delete_with_delete_enabled_in_order_with_upserts(case: SinkCase) -> None:
    case.produce([member(1, "a"), member(2, "b"), member(3, "c")])
    config = case.config(auto_create="true", insert_mode="upsert", pk_mode="record_key", delete_enabled="true")
    case.run(config)
    # One batch: delete 1; re-create 2 after deleting it; delete 3 after updating it.
    case.produce([tombstone(1), tombstone(2), member(2, "b again"), member(3, "c2"), tombstone(3), tombstone(99)])
    run = case.run(config)
    assert case.rows() == [(2, "b again", None)]
    assert (run.stats(case.topic).deleted, run.batches) == (3, 1)


def test_tombstone_for_a_table_not_created_yet_deletes_nothing(case: SinkCase) -> None:
    case.produce([tombstone(1), member(2, "b")])
    config = case.config(auto_create="true", insert_mode="upsert", pk_mode="record_key", delete_enabled="true")
    assert case.run(config).stats(case.topic).deleted == 0
    assert case.rows() == [(2, "b", None)]


def test_tombstone_without_delete_enabled_is_a_bad_record_not_a_delete(case: SinkCase) -> None:
    case.produce([member(1, "a"), tombstone(1)])
    dlq = case.sandbox.topic("dlq")
    config = case.config(
        auto_create="true",
        insert_mode="upsert",
        pk_mode="record_key",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
    )
    run = case.run(config)
    assert case.rows() == [(1, "a", None)]
    assert run.stats(case.topic).dead_lettered == 1
    strict = SinkCase(case.sandbox, case.database, case.sandbox.topic("strict"))
    strict.produce([tombstone(1)])
    with pytest.raises(SinkError, match=r"delete\.enabled=false"):
        strict.run(strict.config(auto_create="true", insert_mode="upsert", pk_mode="record_key"))


def test_new_field_mid_stream_is_added_with_auto_evolve(case: SinkCase) -> None:
    grown = [
        *MEMBER_FIELDS,
        field("walks", "int32", optional=True),
        field("kind", "string", default="dog"),
    ]
    case.produce([member(1, "a"), member(2, "b", fields=grown), member(3, "c")])
    config = case.config(auto_create="true", auto_evolve="true", insert_mode="upsert", pk_mode="record_key")
    case.run(config)
    assert case.columns() == {
        "seq": "int(11)",
        "member_name": "longtext",
        "pet_name": "longtext",
        "walks": "int(11)",
        "kind": "longtext",
    }
    # Record 2 carried kind=null: the schema default applies, as Kafka Connect's converter does.
    assert case.rows() == [(1, "a", None, None, "dog"), (2, "b", None, None, "dog"), (3, "c", None, None, "dog")]


def test_new_field_without_auto_evolve_stops_the_run_naming_the_column(case: SinkCase) -> None:
    grown = [*MEMBER_FIELDS, field("walks", "int32", optional=True)]
    case.produce([member(1, "a"), member(2, "b", fields=grown)])
    with pytest.raises(SinkError, match=r"lacks column\(s\) walks .* auto\.evolve=false"):
        case.run(case.config(auto_create="true"))
    # The first batch held both records, so nothing was committed.
    assert case.rows() == []


def test_required_field_without_default_cannot_be_added(case: SinkCase) -> None:
    grown = [*MEMBER_FIELDS, field("walks", "int32")]
    case.produce([member(1, "a"), (None, envelope(grown, {"seq": 2, "member_name": "b", "walks": 3}))])
    with pytest.raises(SinkError, match=r"cannot add column 'walks' \(INT for int32\): the field is required"):
        case.run(case.config(auto_create="true", auto_evolve="true", batch_size="1"))
    assert case.rows() == [(1, "a", None)]


def test_type_change_stops_the_run_naming_table_column_and_both_types(case: SinkCase) -> None:
    widened = [field("seq", "int64"), *MEMBER_FIELDS[1:]]
    case.produce([member(1, "a"), member(2, "b", fields=widened)])
    with pytest.raises(SinkError) as raised:
        case.run(case.config(auto_create="true", auto_evolve="true", batch_size="1"))
    message = str(raised.value)
    assert f"table {case.database}.{case.topic} column 'seq' is INT(11)" in message
    assert "records now carry int64" in message and "BIGINT" in message
    assert case.rows() == [(1, "a", None)]


def test_narrower_types_go_into_wider_columns(case: SinkCase) -> None:
    case.sandbox.execute(
        case.database,
        f"CREATE TABLE `{case.topic}` (seq BIGINT PRIMARY KEY, member_name VARCHAR(20), pet_name TEXT, extra INT NULL)",
    )
    case.produce([member(1, "a")])
    case.run(case.config(insert_mode="upsert", pk_mode="record_key"))
    assert case.rows() == [(1, "a", None, None)]


def test_dropped_field_with_a_required_column_stops_the_run(case: SinkCase) -> None:
    case.sandbox.execute(
        case.database,
        f"CREATE TABLE `{case.topic}` (seq INT PRIMARY KEY, member_name TEXT, pet_name TEXT, walks INT NOT NULL)",
    )
    case.produce([member(1, "a")])
    with pytest.raises(SinkError, match=r"column 'walks' \(INT\(11\) NOT NULL, no default\) gets no value"):
        case.run(case.config(insert_mode="upsert", pk_mode="record_key"))


def test_upsert_refuses_tables_with_other_unique_keys_unless_allowed(case: SinkCase) -> None:
    case.sandbox.execute(
        case.database,
        f"CREATE TABLE `{case.topic}` (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL, "
        "member_name VARCHAR(50), pet_name TEXT, UNIQUE KEY by_seq (seq), UNIQUE KEY by_name (member_name), "
        "UNIQUE KEY by_seq_name (seq, member_name))",
    )
    case.sandbox.execute(case.database, f"INSERT INTO `{case.topic}` (seq, member_name) VALUES (1, 'a'), (2, 'b')")
    case.produce([member(3, "a")])
    config = case.config(insert_mode="upsert", pk_mode="record_key")
    with pytest.raises(SinkError) as raised:
        case.run(config)
    # by_seq is the upsert key itself, by_seq_name contains it, PRIMARY is an AUTO_INCREMENT the sink
    # never writes: only by_name can make ON DUPLICATE KEY UPDATE hit another member's row.
    assert "unique key(s) besides the upsert key (seq): by_name (member_name)" in str(raised.value)
    assert "upsert.allow.other.unique.keys=true" in str(raised.value)
    case.run(case.config(insert_mode="upsert", pk_mode="record_key", upsert_allow_other_unique_keys="true"))
    # What the user accepted: member 3's record matched member 1's row by name and landed there.
    assert case.rows(f"SELECT seq, member_name FROM `{case.topic}` ORDER BY seq") == [(1, "a"), (2, "b")]


def test_upsert_needs_a_unique_key_on_the_pk_fields(case: SinkCase) -> None:
    case.sandbox.execute(case.database, f"CREATE TABLE `{case.topic}` (seq INT, member_name TEXT, pet_name TEXT)")
    case.produce([member(1, "a")])
    with pytest.raises(SinkError, match=r"no PRIMARY KEY or UNIQUE index on exactly those columns"):
        case.run(case.config(insert_mode="upsert", pk_mode="record_key"))


def test_missing_table_without_auto_create_is_named(case: SinkCase) -> None:
    case.produce([member(1, "a")])
    with pytest.raises(SinkError, match=rf"table {case.database}\.{case.topic} does not exist and auto\.create=false"):
        case.run(case.config())


def test_table_name_format_and_topics_regex(sandbox: Sandbox) -> None:
    case = new_case(sandbox, "orders_kr")
    other = sandbox.topic("orders_jp")
    case.produce([member(1, "a")])
    SinkCase(sandbox, case.database, other).produce([member(2, "b"), member(3, "c")])
    regex = f"mungmo_test_{sandbox.suffix}_orders_.*"
    config = case.config(topics="", topics_regex=regex, table_name_format="copy_${topic}", auto_create="true")
    run = case.run(config)
    assert run.stats(f"copy_{case.topic}").inserted == 1
    assert run.stats(f"copy_{other}").inserted == 2
    assert sandbox.rows(case.database, f"SELECT seq FROM `copy_{other}` ORDER BY seq") == [(2,), (3,)]


def test_partitions_are_tracked_separately_and_batches_are_multi_row(case: SinkCase) -> None:
    case.produce([member(i, f"m{i}") for i in range(1, 501)], partitions=3)
    run = case.run(case.config(auto_create="true", insert_mode="upsert", pk_mode="record_key", batch_size="100"))
    assert run.stats(case.topic).inserted == 500 and run.batches == 5
    assert len(case.stored_offsets()) == 3 and sum(case.stored_offsets().values()) == 500
    assert [r[0] for r in case.rows()] == list(range(1, 501))
    assert run.lag_before() == 500 and run.lag_after() == 0


def test_missing_topic_is_reported_not_fatal(case: SinkCase) -> None:
    run = case.run(case.config(auto_create="true"))
    assert run.missing_topics == [case.topic] and run.records == 0


def test_decimals_written_as_json_numbers_keep_every_digit(case: SinkCase) -> None:
    """decimal.format=NUMERIC writes Decimals as JSON numbers; they are parsed without float rounding."""
    value = (
        b'{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},'
        b'{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,'
        b'"parameters":{"scale":"20"},"field":"amount"}],"optional":false},'
        b'"payload":{"id":1,"amount":0.12345678901234567891}}'
    )
    case.produce([(None, value)])
    case.run(case.config(auto_create="true"))
    assert case.columns()["amount"] == "decimal(65,20)"
    assert str(case.rows()[0][1]) == "0.12345678901234567891"


@pytest.mark.parametrize(
    ("insert_mode", "pk_mode", "expected", "dead_letters"),
    [
        ("insert", "none", [(1, "a", None), (1, "a2", None), (2, "b", None)], 0),
        ("insert", "kafka", [(1, "a", None), (1, "a2", None), (2, "b", None)], 0),
        ("insert", "record_key", [(1, "a", None), (2, "b", None)], 1),  # the second seq 1 is a duplicate key
        ("insert", "record_value", [(1, "a", None), (2, "b", None)], 1),
        ("upsert", "kafka", [(1, "a", None), (1, "a2", None), (2, "b", None)], 0),
        ("upsert", "record_key", [(1, "a2", None), (2, "b", None)], 0),
        ("upsert", "record_value", [(1, "a2", None), (2, "b", None)], 0),
        ("update", "record_key", [(1, "a2", None), (2, "b", None), (3, "untouched", None)], 0),
        ("update", "record_value", [(1, "a2", None), (2, "b", None), (3, "untouched", None)], 0),
    ],
)
def test_every_insert_and_pk_mode(
    case: SinkCase, insert_mode: str, pk_mode: str, expected: list[tuple], dead_letters: int
) -> None:
    if insert_mode == "update":
        case.sandbox.execute(
            case.database,
            f"CREATE TABLE `{case.topic}` (seq INT PRIMARY KEY, member_name TEXT, pet_name TEXT)",
            f"INSERT INTO `{case.topic}` VALUES (1, 'old', NULL), (2, 'old', NULL), (3, 'untouched', NULL)",
        )
    case.produce([member(1, "a"), member(2, "b"), member(1, "a2")])
    options = {"pk_fields": "seq"} if pk_mode == "record_value" else {}
    config = case.config(
        auto_create="true",
        insert_mode=insert_mode,
        pk_mode=pk_mode,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=case.sandbox.topic("dlq"),
        **options,
    )
    run = case.run(config)
    columns = "seq, member_name, pet_name"
    assert case.rows(f"SELECT {columns} FROM `{case.topic}` ORDER BY {columns}") == expected
    assert run.stats(case.topic).dead_lettered == dead_letters


def test_multi_row_inserts_are_cut_to_fit_the_statement_budget() -> None:
    statement = Statement("INSERT INTO t (a, b) VALUES ", " ON DUPLICATE KEY UPDATE b = VALUES(b)", multi_row=True)
    rows = [(str(i), "'x'") for i in range(5)]
    budget = len(statement.head) + len(statement.tail) + len("(0,'x'),(1,'x')")
    assert list(statement.statements(rows, budget)) == [
        "INSERT INTO t (a, b) VALUES (0,'x'),(1,'x') ON DUPLICATE KEY UPDATE b = VALUES(b)",
        "INSERT INTO t (a, b) VALUES (2,'x'),(3,'x') ON DUPLICATE KEY UPDATE b = VALUES(b)",
        "INSERT INTO t (a, b) VALUES (4,'x') ON DUPLICATE KEY UPDATE b = VALUES(b)",
    ]
    # A row longer than the budget still goes, alone.
    assert list(statement.statements(rows[:2], 1)) == [
        "INSERT INTO t (a, b) VALUES (0,'x') ON DUPLICATE KEY UPDATE b = VALUES(b)",
        "INSERT INTO t (a, b) VALUES (1,'x') ON DUPLICATE KEY UPDATE b = VALUES(b)",
    ]


def test_updates_and_deletes_fill_one_statement_per_row() -> None:
    update = Statement("UPDATE `t%%` SET `b` = %s WHERE `a` = %s", order=lambda row: (*row[1:], *row[:1]))
    assert list(update.statements([("1", "'50%s'")], 10)) == ["UPDATE `t%` SET `b` = '50%s' WHERE `a` = 1"]


def test_a_batch_larger_than_one_statement_lands_whole(case: SinkCase) -> None:
    """25 rows of 200,000 characters: 5 million, more than one statement takes (a quarter of MariaDB's 16 MB
    max_allowed_packet, as a character may take 4 bytes), within one batch (at most MAX_BATCH_BYTES of records)."""
    names = [chr(ord("a") + i) * 200_000 for i in range(25)]
    assert sum(map(len, names)) < MAX_BATCH_BYTES
    case.produce([member(i, name) for i, name in enumerate(names)])
    run = case.run(case.config(auto_create="true", insert_mode="upsert", pk_mode="record_key"))
    assert (run.records, run.batches, run.stats(case.topic).inserted) == (25, 1, 25)
    landed = f"SELECT seq, CHAR_LENGTH(member_name), LEFT(member_name, 1) FROM `{case.topic}` ORDER BY seq"
    assert case.rows(landed) == [(i, 200_000, name[0]) for i, name in enumerate(names)]
