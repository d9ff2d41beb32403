"""Records to row changes without servers: pk modes, the schema-prefix cache, rejections by stage."""

from __future__ import annotations

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.connect.schema import UTC
from mungmo_pipelines.core.errors import RecordRejected
from mungmo_pipelines.core.sink.records import KEY_CONVERTER, TASK_PUT, VALUE_CONVERTER, RecordDecoder
from tests.support.sink import KEY_FIELDS, MEMBER_FIELDS, envelope, field, member, primitive, tombstone


def config(**options: str) -> JdbcSinkConfig:
    body = {
        "name": "unit",
        "config": {
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "connection.url": "jdbc:mysql://db:3306/target",
            "topics": "members",
            **{k.replace("_", "."): v for k, v in options.items()},
        },
    }
    parsed = parse_connector(body)
    assert isinstance(parsed, JdbcSinkConfig)
    return parsed


def record(key: bytes | None, value: bytes | None, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord("members", 0, -1, offset, 0, 0, key, value, [], None, -1, -1, -1)


def test_the_second_record_of_a_schema_parses_only_its_payload_and_reads_the_same() -> None:
    decoder = RecordDecoder(config(), UTC)
    first = decoder.decode(record(*member(1, "a", "x")))
    second = decoder.decode(record(*member(2, "b")))
    assert (first.row, second.row) == (("1", "'a'", "'x'"), ("2", "'b'", "NULL"))
    assert first.shape is second.shape
    # Messages alternating between two known schemas each read with their own.
    wider = [*MEMBER_FIELDS, field("walks", "int32", optional=True)]
    rows = [
        decoder.decode(record(None, value)).row
        for value in (
            envelope(wider, {"seq": 3, "member_name": "c", "pet_name": None, "walks": 2}),
            member(4, "d")[1],
            envelope(wider, {"seq": 5, "member_name": "e", "pet_name": "y", "walks": None}),
            member(6, "f")[1],
        )
    ]
    assert rows == [("3", "'c'", "NULL", "2"), ("4", "'d'", "NULL"), ("5", "'e'", "'y'", "NULL"), ("6", "'f'", "NULL")]


def test_known_schema_bytes_followed_by_something_else_take_the_full_path() -> None:
    decoder = RecordDecoder(config(), UTC)
    decoder.decode(record(*member(1, "a")))
    _, value = member(2, "b")
    with pytest.raises(RecordRejected) as raised:
        decoder.decode(record(None, value[:-1] + b',"extra":1}'))
    assert raised.value.stage == VALUE_CONVERTER
    assert 'exactly "schema" and "payload"' in str(raised.value)


def test_a_schema_containing_the_payload_marker_still_decodes() -> None:
    fields = [dict(MEMBER_FIELDS[0], parameters={"note": "x", "payload": "y"}), *MEMBER_FIELDS[1:]]
    decoder = RecordDecoder(config(), UTC)
    for seq in (1, 2):
        value = envelope(fields, {"seq": seq, "member_name": "m", "pet_name": None})
        assert decoder.decode(record(None, value)).row == (str(seq), "'m'", "NULL")


def test_pk_modes_put_key_columns_first() -> None:
    key, value = member(7, "a", "x")
    by_key = RecordDecoder(config(pk_mode="record_key"), UTC).decode(record(key, value))
    assert (by_key.shape.columns, by_key.shape.key_columns, by_key.row) == (
        ("seq", "member_name", "pet_name"),
        ("seq",),
        ("7", "'a'", "'x'"),
    )
    by_value = RecordDecoder(config(pk_mode="record_value", pk_fields="pet_name"), UTC).decode(record(key, value))
    assert (by_value.shape.columns, by_value.row) == (("pet_name", "seq", "member_name"), ("'x'", "7", "'a'"))
    by_kafka = RecordDecoder(config(pk_mode="kafka"), UTC).decode(record(key, value, offset=41))
    assert by_kafka.row == ("'members'", "0", "41", "7", "'a'", "'x'")


def test_tombstones_become_deletes_by_key() -> None:
    decoder = RecordDecoder(config(pk_mode="record_key", delete_enabled="true", insert_mode="upsert"), UTC)
    change = decoder.decode(record(*tombstone(3)))
    assert (change.shape.delete, change.shape.columns, change.row) == (True, ("seq",), ("3",))


@pytest.mark.parametrize(
    ("options", "message", "stage", "expected"),
    [
        ({}, (None, b"\xff\xfe"), VALUE_CONVERTER, "value is not valid JSON"),
        ({"pk_mode": "record_key"}, (b"{", member(1, "a")[1]), KEY_CONVERTER, "key is not valid JSON"),
        (
            {"pk_mode": "record_key"},
            (None, member(1, "a")[1]),
            TASK_PUT,
            "pk.mode=record_key but the record key is null",
        ),
        ({}, (None, dumps({"schema": {"type": "string"}, "payload": "x"})), TASK_PUT, "value schema must be a struct"),
        ({}, tombstone(1), TASK_PUT, "delete.enabled=false"),
        (
            {"pk_mode": "record_value", "pk_fields": "id"},
            member(1, "a"),
            TASK_PUT,
            "pk.fields names ['id'], which the value schema lacks",
        ),
        (
            {"pk_mode": "record_key"},
            (primitive("int64", 5), member(1, "a")[1]),
            TASK_PUT,
            "pk.fields must name exactly one column",
        ),
        ({}, (None, envelope(KEY_FIELDS, {"seq": None})), TASK_PUT, "field 'seq' is null but its schema is neither"),
    ],
)
def test_rejections_name_the_stage_and_the_problem(options: dict, message: tuple, stage: str, expected: str) -> None:
    with pytest.raises(RecordRejected) as raised:
        RecordDecoder(config(**options), UTC).decode(record(*message))
    assert raised.value.stage == stage
    assert expected in str(raised.value)
