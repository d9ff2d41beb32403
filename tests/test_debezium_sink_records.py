"""Debezium change events to row changes without servers, on the records the real Debezium 3.5 wrote
(tests/fixtures/debezium/records/): what Debezium's sink does with each op, and what
ExtractNewRecordState makes of them for the JDBC sink."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.connect.schema import UTC
from mungmo_pipelines.core.errors import RecordRejected
from mungmo_pipelines.core.sink.records import TASK_PUT, RecordDecoder, RowChange
from tests.support.debezium import GoldenRecord, golden_records, scenario_records

TOPIC = "gold_default.gold.sink_flow"
FLOW = golden_records("default", "sink_flow")  # r 1, r 2, r 3, c 4, u 1, d 3, tombstone 3, d 2, tombstone 2, c 20
UNWRAP = {"transforms": "unwrap", "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState"}


def sink_config(connector_class: str, **options: str) -> SinkConfig:
    body = {"connector.class": connector_class, "connection.url": "jdbc:mariadb://db:3306/target", "topics": TOPIC}
    parsed = parse_connector({"name": "unit", "config": {**body, **options}}, environ={})
    assert isinstance(parsed, SinkConfig)
    return parsed


def debezium(**options: str) -> SinkConfig:
    return sink_config(DEBEZIUM_SINK_CLASS, **{"connection.username": "u", **options})


def jdbc(**options: str) -> SinkConfig:
    return sink_config(JDBC_SINK_CLASS, **options)


def consumer_record(golden: GoldenRecord, value: bytes | None = None, topic: str = TOPIC) -> ConsumerRecord:
    data = golden.value if value is None else value
    return ConsumerRecord(topic, 0, -1, golden.offset, 0, 0, golden.key, data, list(golden.headers), None, -1, -1, -1)


def decode_all(config: SinkConfig, records: list[GoldenRecord] = FLOW) -> list[RowChange | None]:
    decoder = RecordDecoder(config, UTC)
    return [decoder.decode(consumer_record(record)) for record in records]


def summary(changes: list[RowChange | None]) -> list[tuple[str, tuple[str, ...]] | None]:
    return [
        None
        if change is None
        else ("truncate" if change.shape.truncate else "delete" if change.shape.delete else "write", change.row)
        for change in changes
    ]


def with_event(golden: GoldenRecord, **changes: Any) -> bytes:
    document = json.loads(golden.value or b"")
    document["payload"].update(changes)
    return dumps(document)


def test_fixture_is_the_sink_flow_of_changes_sql() -> None:
    ops = [record.event["op"] if record.event else None for record in FLOW]
    assert ops == ["r", "r", "r", "c", "u", "d", None, "d", None, "c"]


def test_debezium_sink_with_record_key_writes_after_and_deletes_by_key() -> None:
    config = debezium(**{"insert.mode": "upsert", "primary.key.mode": "record_key", "delete.enabled": "true"})
    changes = decode_all(config)
    written = changes[4]
    assert written is not None
    assert written.shape.table == "gold_default_gold_sink_flow"
    assert written.shape.columns == ("id", "name", "amount", "seen", "stamp")
    assert written.row == (
        "1",
        "'보리 updated'",
        "11.25",
        "'2026-01-01 09:00:00.125000'",
        "'2026-01-01 09:00:00.000001'",
    )
    # d and its tombstone both delete by the key (the tombstone a second time, as Debezium's sink does);
    # the key change of id 2 to 20 is d + tombstone + c.
    assert summary(changes)[5:] == [
        ("delete", ("3",)),
        ("delete", ("3",)),
        ("delete", ("2",)),
        ("delete", ("2",)),
        (
            "write",
            ("20", "'coco'", "NULL", "NULL", "NULL"),
        ),
    ]


def test_deletes_are_skipped_unless_enabled() -> None:
    changes = decode_all(debezium(**{"insert.mode": "upsert", "primary.key.mode": "record_key"}))
    assert [c is None for c in changes] == [False] * 5 + [True] * 4 + [False]


def test_record_value_deletes_by_the_key_fields_of_before_and_skips_tombstones() -> None:
    config = debezium(
        **{
            "insert.mode": "upsert",
            "primary.key.mode": "record_value",
            "primary.key.fields": "id",
            "delete.enabled": "true",
        }
    )
    assert summary(decode_all(config))[5:9] == [("delete", ("3",)), None, ("delete", ("2",)), None]


def test_truncate_events_truncate_when_enabled() -> None:
    truncate = consumer_record(FLOW[0], with_event(FLOW[0], op="t", before=None, after=None))
    enabled = RecordDecoder(debezium(**{"truncate.enabled": "true"}), UTC).decode(truncate)
    assert enabled is not None and enabled.shape.truncate and enabled.shape.table == "gold_default_gold_sink_flow"
    assert RecordDecoder(debezium(), UTC).decode(truncate) is None


def test_table_names_from_the_source_block() -> None:
    config = debezium(**{"collection.name.format": "copy_${source.table}", "primary.key.mode": "record_key"})
    changes = decode_all(config)
    assert {c.shape.table for c in changes if c is not None} == {"copy_sink_flow"}
    assert changes[6] is None  # a tombstone has no source block: no table name, skipped as Debezium does


def test_a_row_that_is_not_a_change_event_is_written_as_it_is() -> None:
    (after_schema,) = [f for f in json.loads(FLOW[0].value or b"")["schema"]["fields"] if f["field"] == "after"]
    row = dumps({"schema": dict(after_schema, optional=False), "payload": FLOW[0].event["after"]})  # type: ignore[index]
    change = RecordDecoder(debezium(), UTC).decode(consumer_record(FLOW[0], row))
    assert change is not None and change.row[:2] == ("1", "'보리'")


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ({}, with_event(FLOW[0], op="m"), "op='m': expected c, r, u, d or t"),
        ({}, with_event(FLOW[3], after=None), "op='c' without an 'after' row"),
        (
            {"primary.key.mode": "record_value", "delete.enabled": "true"},
            with_event(FLOW[5], before=None),
            "delete event without a 'before' row",
        ),
        ({"collection.name.format": "${source.thread}"}, None, "no string field 'thread'"),
        ({"primary.key.mode": "record_value", "primary.key.fields": "pk"}, None, "primary.key.fields names ['pk']"),
    ],
)
def test_malformed_change_events_are_named(options: dict[str, str], value: bytes | None, expected: str) -> None:
    with pytest.raises(RecordRejected) as raised:
        RecordDecoder(debezium(**options), UTC).decode(consumer_record(FLOW[0] if value is None else FLOW[3], value))
    assert raised.value.stage == TASK_PUT and expected in str(raised.value)


def test_schema_change_events_are_refused_by_name() -> None:
    change_event = scenario_records("default", lambda topic: topic == "gold_default")[0]
    with pytest.raises(RecordRejected, match=r"a schema change event \(io\.debezium\.connector\.mariadb\.Schema"):
        RecordDecoder(debezium(topics="gold_default"), UTC).decode(consumer_record(change_event, topic="gold_default"))


# --- ExtractNewRecordState on the JDBC sink --------------------------------------------------


def unwrapped(mode: str | None = None, **options: str) -> list[tuple[str, tuple[str, ...]] | None]:
    transform = dict(UNWRAP)
    if mode:
        transform["transforms.unwrap.delete.tombstone.handling.mode"] = mode
    config = jdbc(
        **transform, **options, **{"pk.mode": "record_key", "delete.enabled": "true", "insert.mode": "upsert"}
    )
    return summary(decode_all(config))


def test_unwrap_tombstone_mode_turns_deletes_into_deletes_and_drops_tombstones() -> None:
    changes = unwrapped("tombstone")
    assert changes[4] == (
        "write",
        ("1", "'보리 updated'", "11.25", "'2026-01-01 09:00:00.125000'", "'2026-01-01 09:00:00.000001'"),
    )
    assert changes[5:] == [
        ("delete", ("3",)),
        None,
        ("delete", ("2",)),
        None,
        ("write", ("20", "'coco'", "NULL", "NULL", "NULL")),
    ]
    assert unwrapped() == changes  # tombstone is the default


def test_unwrap_drop_and_delete_to_tombstone() -> None:
    assert unwrapped("drop")[5:9] == [None, None, None, None]
    assert unwrapped("delete-to-tombstone")[5:9] == [("delete", ("3",)), None, ("delete", ("2",)), None]


def test_unwrap_rewrite_marks_rows_deleted_and_keeps_them() -> None:
    changes = unwrapped("rewrite")
    assert changes[4] is not None and changes[4][1][-1] == "'false'"
    assert changes[5] == (
        "write",
        ("3", "'delete me'", "1.00", "'2026-01-02 00:00:00.000000'", "'2026-01-02 00:00:00.000000'", "'true'"),
    )
    assert changes[6] is None
    with_tombstones = unwrapped("rewrite-with-tombstone")
    assert with_tombstones[5][1][-1] == "'true'" and with_tombstones[6] == ("delete", ("3",))  # type: ignore[index]


def test_unwrap_legacy_options_as_debezium_2_read_them() -> None:
    legacy = {"transforms.unwrap.delete.handling.mode": "none", "transforms.unwrap.drop.tombstones": "false"}
    assert unwrapped(None, **legacy)[5:9] == [
        ("delete", ("3",)),
        ("delete", ("3",)),
        ("delete", ("2",)),
        ("delete", ("2",)),
    ]
    assert unwrapped(None, **{"transforms.unwrap.delete.handling.mode": "drop"})[5:9] == [None] * 4


def test_unwrap_add_fields_become_columns() -> None:
    config = jdbc(
        **UNWRAP,
        **{
            "transforms.unwrap.add.fields": "op,table,source.ts_ms,lsn,id",
            "pk.mode": "record_key",
            "insert.mode": "upsert",
        },
    )
    change = RecordDecoder(config, UTC).decode(consumer_record(FLOW[4]))
    assert change is not None
    # lsn is in no block of MariaDB's events, so Debezium adds nothing for it; transaction.id is null here.
    assert change.shape.columns[-4:] == ("__op", "__table", "__source_ts_ms", "__id")
    assert change.row[-4:] == ("'u'", "'sink_flow'", str(FLOW[4].event["source"]["ts_ms"]), "NULL")  # type: ignore[index]
    assert all(f.get("optional") for f in change.shape.fields[-4:])


def test_unwrap_drops_truncates_and_passes_other_values() -> None:
    config = jdbc(**UNWRAP)
    decoder = RecordDecoder(config, UTC)
    truncate = consumer_record(FLOW[0], with_event(FLOW[0], op="t", before=None, after=None))
    assert decoder.decode(truncate) is None
    plain = dumps(
        {
            "schema": {
                "type": "struct",
                "fields": [{"type": "int32", "optional": False, "field": "id"}],
                "optional": False,
                "name": "x.Value",
            },
            "payload": {"id": 5},
        }
    )
    change = decoder.decode(consumer_record(FLOW[0], plain))
    assert change is not None and change.row == ("5",)


def test_a_null_in_a_change_event_stays_null_where_the_column_has_a_default() -> None:
    """Kafka Connect's Struct.get gives a null field its schema default, so Debezium's own sink writes -7 for a
    d_int_null set to NULL; the change event says NULL, and NULL is what the source row holds."""
    (created,) = [r for r in golden_records("default", "defaults") if r.event and r.event["op"] == "c"]
    after = dict(created.event["after"], d_int_null=None)  # type: ignore[index]
    value = with_event(created, after=after)
    for config in (debezium(**{"primary.key.mode": "record_key"}), jdbc(**UNWRAP, **{"pk.mode": "record_key"})):
        change = RecordDecoder(config, UTC).decode(consumer_record(created, value, topic=created.topic))
        assert change is not None
        assert change.row[change.shape.columns.index("d_int_null")] == "NULL"
