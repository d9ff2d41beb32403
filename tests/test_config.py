"""Connector bodies in Kafka Connect's format: the seed pair loads, bad input is named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS, JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS, JdbcSourceConfig
from mungmo_pipelines.core.config.loader import load_connectors, parse_connector
from mungmo_pipelines.core.config.providers import format_properties, read_properties
from mungmo_pipelines.core.errors import ConnectorConfigError, ConnectorLoadErrors
from tests.support.seed import COMMITTED_SINK as SEED_SINK
from tests.support.seed import COMMITTED_SOURCE as SEED_SOURCE
from tests.support.seed import ENV

ROOT = Path(__file__).resolve().parents[1]


def test_committed_connector_files_are_the_seed_bodies() -> None:
    files = {p.name: json.loads(p.read_text()) for p in (ROOT / "connectors").glob("*.json")}
    assert files["test-connect-mungmo-test001.json"] == SEED_SOURCE
    assert files["my-sink-connect-member-test001.json"] == SEED_SINK


def test_seed_pair_loads_with_kafka_connect_defaults() -> None:
    connectors = load_connectors(ROOT / "connectors", ENV)
    (source,) = [s for s in connectors.sources if s.name == SEED_SOURCE["name"]]
    (sink,) = [s for s in connectors.sinks if s.name == SEED_SINK["name"]]
    assert isinstance(source, JdbcSourceConfig) and isinstance(sink, JdbcSinkConfig)
    assert (source.mode, source.incrementing_column, source.table_whitelist) == ("incrementing", "seq", ("test001",))
    assert source.topic_for("test001") == "my_topic_test001"
    assert (source.batch_max_rows, source.poll_interval_ms, source.db_timezone) == (100, 5000, "UTC")
    assert sink.topics == ("my_topic_test001",)
    assert (sink.auto_create, sink.auto_evolve, sink.delete_enabled) == (True, True, False)
    assert (sink.insert_mode, sink.pk_mode, sink.batch_size) == ("insert", "none", 3000)
    assert sink.table_for("my_topic_test001") == "my_topic_test001"
    assert sink.consumer_group == "connect-my-sink-connect-member-test001"
    assert connectors.warnings == ()


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_jdbc_urls_map_to_pymysql(scheme: str) -> None:
    body = json.loads(json.dumps(SEED_SOURCE))
    body["config"]["connection.url"] = f"jdbc:{scheme}://db.internal:3307/mungMo?useSSL=false"
    source = parse_connector(body, environ=ENV)
    url = source.connection.sqlalchemy_url()
    assert url.render_as_string(hide_password=False) == (
        "mysql+pymysql://mungmo:s3cr3t-pw@db.internal:3307/mungMo?charset=utf8mb4&tls_mode=DISABLED"
    )


def test_password_never_shows_in_reprs() -> None:
    source = parse_connector(SEED_SOURCE, environ=ENV)
    assert "s3cr3t-pw" not in repr(source)
    assert "s3cr3t-pw" not in str(source.connection.sqlalchemy_url())


def _broken(body: dict, **changes: object) -> dict:
    copy = json.loads(json.dumps(body))
    for key, value in changes.items():
        key = key.replace("_", ".")
        if value is None:
            copy["config"].pop(key)
        else:
            copy["config"][key] = value
    return copy


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        (_broken(SEED_SOURCE, **{"connector.class": "com.example.Nope"}), "connector.class", JDBC_SOURCE_CLASS),
        (_broken(SEED_SOURCE, mode="sometimes"), "mode", "expected one of bulk, incrementing, timestamp"),
        (_broken(SEED_SOURCE, mode=None), "mode", "required option is missing"),
        (_broken(SEED_SOURCE, **{"topic.prefix": None}), "topic.prefix", "required option is missing"),
        (_broken(SEED_SOURCE, **{"connection.url": "jdbc:postgresql://x/y"}), "connection.url", "jdbc:mysql://"),
        (_broken(SEED_SOURCE, **{"batch.max.rows": "many"}), "batch.max.rows", "expected an integer"),
        (_broken(SEED_SOURCE, **{"transforms": "unwrap"}), "transforms", "not an option this connector supports"),
        (_broken(SEED_SOURCE, **{"db.timezone": "Mars/Olympus"}), "db.timezone", "IANA time zone"),
        (_broken(SEED_SOURCE, mode="timestamp"), "timestamp.column.name", "required when mode is timestamp"),
        (_broken(SEED_SINK, topics=None), "topics", "exactly one of topics or topics.regex"),
        (_broken(SEED_SINK, **{"delete.enabled": "true"}), "delete.enabled", "pk.mode=record_key"),
        (_broken(SEED_SINK, **{"insert.mode": "upsert"}), "pk.mode", "needs a primary key"),
        (_broken(SEED_SINK, **{"auto.create": "yes"}), "auto.create", "expected true or false"),
        (
            _broken(SEED_SINK, **{"errors.tolerance": "all"}),
            "errors.deadletterqueue.topic.name",
            "required when errors.tolerance=all",
        ),
        (
            _broken(SEED_SINK, **{"value.converter": "io.confluent.connect.avro.AvroConverter"}),
            "value.converter",
            "JsonConverter",
        ),
    ],
)
def test_bad_field_is_named_with_what_was_expected(body: dict, field: str, expected: str) -> None:
    with pytest.raises(ConnectorConfigError) as raised:
        parse_connector(body, origin="connectors/x.json", environ=ENV)
    message = str(raised.value)
    assert message.startswith(f"connector {body['name']!r} (connectors/x.json): field {field!r}: ")
    assert expected in message
    assert raised.value.field_name == field


def test_missing_environment_variable_is_named_not_its_value() -> None:
    with pytest.raises(
        ConnectorConfigError, match=r"field 'connection.password': environment variable MUNGMO_DB_PASSWORD is not set"
    ):
        parse_connector(SEED_SOURCE, environ={})


def test_sink_class_mismatch_and_orphan_topics_are_reported(tmp_path: Path) -> None:
    (tmp_path / "source.json").write_text(json.dumps(SEED_SOURCE))
    orphan = _broken(SEED_SINK, topics="somebody_elses_topic")
    (tmp_path / "sink.json").write_text(json.dumps(orphan))
    connectors = load_connectors(tmp_path, ENV)
    assert connectors.warnings == (
        "connector 'my-sink-connect-member-test001': topic 'somebody_elses_topic' is produced by no source "
        "connector in this directory",
    )


def test_a_bad_file_is_left_out_and_named_while_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps(SEED_SOURCE))
    (tmp_path / "bad.json").write_text(json.dumps(_broken(SEED_SINK, **{"batch.size": "0"})))
    (tmp_path / "broken.json").write_text("{not json")
    connectors = load_connectors(tmp_path, ENV)
    assert [c.name for c in connectors.all()] == [SEED_SOURCE["name"]]
    bad, broken = connectors.errors
    assert (bad.connector, bad.field_name, bad.origin) == (SEED_SINK["name"], "batch.size", str(tmp_path / "bad.json"))
    assert "expected an integer from 1 to 2147483647, got 0" in str(bad)
    assert (broken.connector, broken.origin) == ("broken", str(tmp_path / "broken.json"))
    with pytest.raises(
        ConnectorLoadErrors, match=re.escape("field 'batch.size': expected an integer from 1 to 2147483647, got 0")
    ):
        load_connectors(tmp_path, ENV, strict=True)


def test_duplicate_names_leave_both_files_out_each_naming_the_other(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(SEED_SOURCE))
    (tmp_path / "b.json").write_text(json.dumps(SEED_SOURCE))
    (tmp_path / "sink.json").write_text(json.dumps(SEED_SINK))
    connectors = load_connectors(tmp_path, ENV)
    assert [c.name for c in connectors.all()] == [SEED_SINK["name"]]
    first, second = connectors.errors
    assert str(tmp_path / "b.json") in str(first) and first.origin == str(tmp_path / "a.json")
    assert str(tmp_path / "a.json") in str(second) and second.origin == str(tmp_path / "b.json")
    assert "already used by" in str(first)


def test_names_that_make_one_job_name_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps({**SEED_SOURCE, "name": "dup-name"}))
    (tmp_path / "two.json").write_text(json.dumps({**SEED_SOURCE, "name": "dup_name"}))
    connectors = load_connectors(tmp_path, ENV)
    assert connectors.all() == ()
    messages = [str(e) for e in connectors.errors]
    assert all(str(tmp_path / "one.json") in m and str(tmp_path / "two.json") in m for m in messages), messages
    assert all("make the same job name 'dup_name'" in m for m in messages)


def test_file_references_resolve_from_a_properties_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.properties"
    properties = {"seed.connection.password": "p=ss: w#rd \\ \u00e9 멍", "other key": " leading"}
    secrets.write_text("# comment\n! another\n" + format_properties(properties) + "continued=a\\\n  b\n")
    assert read_properties(secrets) == {**properties, "continued": "ab"}
    body = _broken(SEED_SOURCE, **{"connection.password": f"${{file:{secrets}:seed.connection.password}}"})
    config = parse_connector(body, environ=ENV)
    assert config.connection_password.reveal() == properties["seed.connection.password"]
    with pytest.raises(ConnectorConfigError, match="has no key 'missing'"):
        parse_connector(_broken(SEED_SOURCE, **{"connection.password": f"${{file:{secrets}:missing}}"}), environ=ENV)
    with pytest.raises(ConnectorConfigError, match="cannot read properties file"):
        parse_connector(_broken(SEED_SOURCE, **{"connection.password": "${file:/no/such/file:k}"}), environ=ENV)


def test_sink_connector_class_short_name_is_accepted() -> None:
    body = _broken(SEED_SINK, **{"connector.class": "JdbcSinkConnector"})
    assert parse_connector(body, environ=ENV).name == SEED_SINK["name"]
    assert JDBC_SINK_CLASS.endswith("JdbcSinkConnector")


def test_a_cdc_source_left_at_include_schema_changes_true_is_warned_about(tmp_path: Path) -> None:
    """Debezium's default is true; nothing is produced for it here, so the load says so (not silently)."""
    body = {
        "name": "cdc",
        "config": {
            "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
            "database.hostname": "localhost",
            "database.user": "mungmo",
            "database.server.id": "184054",
            "topic.prefix": "mungmo",
        },
    }
    (tmp_path / "cdc.json").write_text(json.dumps(body))
    assert load_connectors(tmp_path, ENV).warnings == (
        "connector 'cdc': include.schema.changes is true (Debezium's default), but schema-change records are not "
        "produced here (docs/cdc.md); set it to false to say so",
    )
    body["config"]["include.schema.changes"] = "false"
    (tmp_path / "cdc.json").write_text(json.dumps(body))
    assert load_connectors(tmp_path, ENV).warnings == ()
    # The committed CDC source says false: loading connectors/ warns of nothing.
    assert load_connectors(ROOT / "connectors", ENV).warnings == ()
