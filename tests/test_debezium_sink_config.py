"""Debezium's JdbcSinkConnector bodies, and ExtractNewRecordState in a sink's transforms: Debezium 3.5's
option names and defaults, the options that mean nothing here accepted, everything else refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mungmo_pipelines.core.config.debezium_sink import DebeziumSinkConfig
from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.options import options_of
from mungmo_pipelines.core.config.transforms import AddedField, OnDelete
from mungmo_pipelines.core.errors import ConnectorConfigError

BASE = {
    "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
    "connection.url": "jdbc:mariadb://db.internal:3306/mungmoMember",
    "connection.username": "mungmo",
    "connection.password": "${env:MUNGMO_DB_PASSWORD}",
    "topics": "mungmo.mungMo.test001",
}
ENV = {"MUNGMO_DB_PASSWORD": "pw"}


def debezium(**options: str) -> DebeziumSinkConfig:
    parsed = parse_connector({"name": "cdc-sink", "config": {**BASE, **options}}, environ=ENV)
    assert isinstance(parsed, DebeziumSinkConfig)
    return parsed


def jdbc_with_unwrap(**options: str) -> JdbcSinkConfig:
    body = {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "connection.url": "jdbc:mysql://db.internal:3306/mungmoMember",
        "topics": "mungmo.mungMo.test001",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        **options,
    }
    parsed = parse_connector({"name": "s", "config": body}, environ=ENV)
    assert isinstance(parsed, JdbcSinkConfig)
    return parsed


def test_debezium_sink_defaults_are_debeziums() -> None:
    config = debezium()
    assert (config.insert_mode, config.pk_mode, config.pk_fields, config.delete_enabled) == (
        "insert",
        "none",
        (),
        False,
    )
    assert (config.truncate_enabled, config.schema_evolution, config.auto_create, config.auto_evolve) == (
        False,
        "none",
        False,
        False,
    )
    assert (config.batch_size, config.max_retries, config.retry_backoff_ms, config.db_timezone) == (500, 5, 1000, "UTC")
    assert config.collection_name_format == "${topic}"
    assert config.consumer_group == "connect-cdc-sink"
    assert config.connection.describe() == "mungmo@db.internal:3306/mungmoMember"
    assert config.reads_change_events and config.transform_chain == ()


def test_debezium_options_map_onto_what_the_runtime_reads() -> None:
    config = debezium(
        **{
            "insert.mode": "upsert",
            "primary.key.mode": "record_value",
            "primary.key.fields": "seq, member_name",
            "delete.enabled": "true",
            "truncate.enabled": "true",
            "schema.evolution": "basic",
            "batch.size": "2000",
            "flush.max.retries": "2",
            "flush.retry.delay.ms": "50",
            "use.time.zone": "Asia/Seoul",
        }
    )
    assert (config.pk_mode, config.pk_fields, config.auto_create, config.auto_evolve) == (
        "record_value",
        ("seq", "member_name"),
        True,
        True,
    )
    assert (config.batch_size, config.max_retries, config.retry_backoff_ms, config.db_timezone) == (
        2000,
        2,
        50,
        "Asia/Seoul",
    )
    assert config.delete_enabled and config.truncate_enabled


def test_older_names_are_read_as_aliases() -> None:
    config = debezium(**{"database.time_zone": "Asia/Seoul", "table.name.format": "copy_${topic}"})
    assert (config.db_timezone, config.collection_name_format) == ("Asia/Seoul", "copy_${topic}")
    with pytest.raises(ConnectorConfigError) as raised:
        debezium(**{"database.time_zone": "UTC", "use.time.zone": "UTC"})
    assert raised.value.field_name in ("use.time.zone", "database.time_zone")
    assert "the same option as" in str(raised.value)


def test_kafka_mode_ignores_primary_key_fields_as_debezium_does() -> None:
    config = debezium(**{"primary.key.mode": "kafka", "primary.key.fields": "a,b"})
    assert config.pk_mode == "kafka" and config.pk_fields == ()


def test_table_names_follow_debeziums_default_naming() -> None:
    assert debezium().table_for("mungmo.mungMo.test001") == "mungmo_mungMo_test001"
    by_source = debezium(**{"collection.name.format": "${source.db}_${source.table}"})
    assert by_source.table_from_events
    assert by_source.table_name("any.topic", {"db": "mungMo", "table": "test001"}) == "mungMo_test001"
    # Without an event, the topic's last two names stand for source.db and source.table (<prefix>.<db>.<table>).
    assert by_source.table_for("mungmo.mungMo.test001") == "mungMo_test001"
    with pytest.raises(ValueError, match="no string field 'server_id'"):
        debezium(**{"collection.name.format": "${source.server_id}"}).table_name("t", {"server_id": 1})


def test_options_without_meaning_here_are_accepted_and_listed() -> None:
    no_effect = {
        "connection.provider": "org.hibernate.c3p0.internal.C3P0ConnectionProvider",
        "connection.pool.min_size": "5",
        "connection.pool.max_size": "32",
        "connection.pool.acquire_increment": "32",
        "connection.pool.timeout": "1800",
        "connection.restart.on.errors": "true",
        "hibernate.c3p0.idle_test_period": "300",
        "dialect.postgres.postgis.schema": "public",
        "dialect.sqlserver.identity.insert": "false",
        "quote.identifiers": "true",
        "use.reduction.buffer": "true",
        "collection.table.format": "${table}",
    }
    debezium(**no_effect)
    assert all(DebeziumSinkConfig.has_no_effect(name) for name in no_effect)
    page = (Path(__file__).resolve().parents[1] / "docs" / "sink.md").read_text(encoding="utf-8")
    for name in DebeziumSinkConfig.NO_EFFECT:
        assert f"`{name}`" in page


@pytest.mark.parametrize(
    ("options", "field", "expected"),
    [
        ({"pk.mode": "record_key"}, "pk.mode", "not an option this connector supports"),
        ({"auto.create": "true"}, "auto.create", "not an option this connector supports"),
        ({"primary.key.mode": "record_header"}, "primary.key.mode", "record_header` is not supported here"),
        ({"delete.enabled": "true"}, "delete.enabled", "requires primary.key.mode=record_key or record_value"),
        ({"insert.mode": "upsert"}, "primary.key.mode", "insert.mode=upsert needs a primary key"),
        ({"schema.evolution": "advanced"}, "schema.evolution", "expected one of none, basic"),
        ({"field.include.list": "a:b:c"}, "field.include.list", "expected field or topic:field entries"),
        ({"collection.naming.strategy": "com.example.Naming"}, "collection.naming.strategy", "expected io.debezium"),
        ({"column.naming.strategy": "com.example.Naming"}, "column.naming.strategy", "expected io.debezium"),
        ({"cloud.events.schema.name.pattern": ".*"}, "cloud.events.schema.name.pattern", "CloudEvents records"),
        ({"collection.name.format": "x" * 70}, "collection.name.format", "expected 1 to 64 characters"),
        ({"use.time.zone": "Mars/Olympus"}, "use.time.zone", "expected an IANA time zone"),
        ({"batch.size": "0"}, "batch.size", "expected an integer from 1 to 2147483647"),
        ({"topics": "", "topics.regex": ""}, "topics", "exactly one of topics or topics.regex"),
    ],
)
def test_bad_debezium_sink_options_are_named(options: dict[str, str], field: str, expected: str) -> None:
    with pytest.raises(ConnectorConfigError) as raised:
        debezium(**options)
    assert raised.value.field_name == field
    assert expected in str(raised.value)


def test_connection_username_is_required() -> None:
    body = {k: v for k, v in BASE.items() if k != "connection.username"}
    with pytest.raises(ConnectorConfigError, match="required option is missing") as raised:
        parse_connector({"name": "x", "config": body}, environ=ENV)
    assert raised.value.field_name == "connection.username"


def test_docs_list_every_debezium_sink_option() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "sink.md").read_text(encoding="utf-8")
    section = page[page.index("### Debezium's JDBC sink") :]
    assert [name for name in options_of(DebeziumSinkConfig) if f"`{name}`" not in section] == []


# --- ExtractNewRecordState ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "on_delete", "keep_tombstones", "rewrite"),
    [
        ({}, OnDelete.NULL_VALUE, False, False),  # Debezium 3.x's default: tombstone
        ({"delete.tombstone.handling.mode": "drop"}, OnDelete.DROP, False, False),
        ({"delete.tombstone.handling.mode": "tombstone"}, OnDelete.NULL_VALUE, False, False),
        ({"delete.tombstone.handling.mode": "rewrite"}, OnDelete.REWRITE, False, True),
        ({"delete.tombstone.handling.mode": "rewrite-with-tombstone"}, OnDelete.REWRITE, True, True),
        ({"delete.tombstone.handling.mode": "delete-to-tombstone"}, OnDelete.TOMBSTONE, False, False),
        # Debezium 2.x's options, read by its LegacyDeleteHandlingStrategy (defaults drop and true).
        ({"delete.handling.mode": "drop"}, OnDelete.DROP, False, False),
        ({"drop.tombstones": "false"}, OnDelete.DROP, True, False),
        ({"delete.handling.mode": "none"}, OnDelete.NULL_VALUE, False, False),
        ({"delete.handling.mode": "none", "drop.tombstones": "false"}, OnDelete.NULL_VALUE, True, False),
        ({"delete.handling.mode": "rewrite"}, OnDelete.REWRITE, False, True),
        ({"delete.handling.mode": "rewrite", "drop.tombstones": "false"}, OnDelete.REWRITE, True, True),
    ],
)
def test_unwrap_delete_handling_modes(
    options: dict[str, str], on_delete: OnDelete, keep_tombstones: bool, rewrite: bool
) -> None:
    config = jdbc_with_unwrap(**{f"transforms.unwrap.{k}": v for k, v in options.items()})
    (unwrap,) = config.transform_chain
    assert (unwrap.on_delete, unwrap.keep_tombstones, unwrap.rewrite) == (on_delete, keep_tombstones, rewrite)


def test_unwrap_added_fields_and_headers_as_debezium_names_them() -> None:
    config = jdbc_with_unwrap(
        **{
            "transforms.unwrap.add.fields": "op,table,source.ts_ms,ts_ms:EVENT_TS,id",
            "transforms.unwrap.add.headers": "db",
            "transforms.unwrap.add.headers.prefix": "cdc_",
        }
    )
    (unwrap,) = config.transform_chain
    assert unwrap.add_fields == (
        AddedField(None, "op", "__op"),
        AddedField("source", "table", "__table"),
        AddedField("source", "ts_ms", "__source_ts_ms"),
        AddedField(None, "ts_ms", "__EVENT_TS"),
        AddedField("transaction", "id", "__id"),
    )
    assert unwrap.add_headers == (AddedField("source", "db", "cdc_db"),)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"transforms.unwrap.type": "io.debezium.transforms.ByLogicalTableRouter"}, "is not supported here"),
        ({"transforms.unwrap.route.by.field": "table"}, "transforms.unwrap.route.by.field: not an option"),
        ({"transforms.unwrap.drop.fields.header.name": "h"}, "transforms.unwrap.drop.fields.header.name: not an"),
        ({"transforms.unwrap.delete.tombstone.handling.mode": "keep"}, "expected one of drop, tombstone, rewrite"),
        ({"transforms.unwrap.delete.handling.mode": "rewrite-with-tombstone"}, "expected one of drop, rewrite, none"),
        (
            {"transforms.unwrap.delete.tombstone.handling.mode": "drop", "transforms.unwrap.drop.tombstones": "true"},
            "delete.tombstone.handling.mode replaces delete.handling.mode and drop.tombstones",
        ),
        ({"transforms.unwrap.add.fields": "a:b:c"}, "transforms.unwrap.add.fields: expected [struct.]field"),
        ({"transforms.other.type": "x"}, "transforms.other.type: names no transform listed in transforms"),
    ],
)
def test_bad_transform_options_are_named(options: dict[str, str], expected: str) -> None:
    with pytest.raises(ConnectorConfigError) as raised:
        jdbc_with_unwrap(**options)
    assert raised.value.field_name == "transforms"
    assert expected in str(raised.value)


def test_debezium_sink_takes_the_same_transforms() -> None:
    config = debezium(
        transforms="unwrap",
        **{
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
        },
    )
    assert config.transform_chain[0].on_delete is OnDelete.REWRITE


def test_a_debezium_sink_body_becomes_assets_a_job_and_a_lag_sensor(tmp_path: Path) -> None:
    from dagster import AssetKey

    from mungmo_pipelines.core.config.loader import load_connectors
    from mungmo_pipelines.definitions import build_definitions

    body = {"name": "cdc-sink", "config": {**BASE, "collection.name.format": "${source.table}"}}
    (tmp_path / "cdc-sink.json").write_text(json.dumps(body))
    connectors = load_connectors(tmp_path, ENV)
    assert [type(sink) for sink in connectors.sinks] == [DebeziumSinkConfig]
    defs = build_definitions(connectors)
    graph = defs.resolve_asset_graph()
    table = AssetKey(["mungmoMember", "test001"])  # ${source.table} of mungmo.mungMo.test001
    assert graph.get(table).parent_keys == {AssetKey(["kafka", "mungmo.mungMo.test001"])}
    assert "cdc_sink" in {job.name for job in defs.resolve_all_job_defs()}
    assert "cdc_sink_lag_sensor" in {sensor.name for sensor in defs.sensors or ()}
