"""Sink connector bodies: every JDBC sink option by its Kafka Connect name and default, the rest refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.options import options_of
from mungmo_pipelines.core.errors import ConnectorConfigError

SINK_OPTIONS = options_of(JdbcSinkConfig)

BASE = {
    "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
    "connection.url": "jdbc:mysql://localhost:3306/mungmoMember",
    "topics": "my_topic_test001",
}


def sink(**options: str) -> JdbcSinkConfig:
    parsed = parse_connector({"name": "s", "config": {**BASE, **options}}, environ={})
    assert isinstance(parsed, JdbcSinkConfig)
    return parsed


def test_jdbc_sink_defaults() -> None:
    config = sink()
    assert (config.table_name_format, config.insert_mode, config.pk_mode, config.pk_fields) == (
        "${topic}",
        "insert",
        "none",
        (),
    )
    assert (config.auto_create, config.auto_evolve, config.delete_enabled, config.fields_whitelist) == (
        False,
        False,
        False,
        (),
    )
    assert (config.batch_size, config.max_retries, config.retry_backoff_ms) == (3000, 10, 3000)
    assert (config.errors_tolerance, config.dlq_topic, config.dlq_context_headers) == ("none", "", True)
    assert (config.errors_log, config.errors_log_messages, config.upsert_allow_other_unique_keys) == (
        False,
        False,
        False,
    )


def test_every_documented_sink_option_is_accepted() -> None:
    names = {
        "topics",
        "topics.regex",
        "table.name.format",
        "insert.mode",
        "pk.mode",
        "pk.fields",
        "fields.whitelist",
        "auto.create",
        "auto.evolve",
        "delete.enabled",
        "batch.size",
        "max.retries",
        "retry.backoff.ms",
        "errors.tolerance",
        "errors.deadletterqueue.topic.name",
    }
    assert names <= set(SINK_OPTIONS)
    config = sink(
        **{
            "table.name.format": "copy_${topic}",
            "insert.mode": "upsert",
            "pk.mode": "record_value",
            "pk.fields": "seq, member_name",
            "fields.whitelist": "pet_name",
            "auto.create": "true",
            "auto.evolve": "true",
            "batch.size": "500",
            "max.retries": "0",
            "retry.backoff.ms": "10",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "dlq",
            "errors.deadletterqueue.context.headers.enable": "false",
            "errors.log.enable": "true",
            "errors.log.include.messages": "true",
            "upsert.allow.other.unique.keys": "true",
        }
    )
    assert config.table_for("t") == "copy_t" and config.pk_fields == ("seq", "member_name")
    assert (config.batch_size, config.max_retries, config.retry_backoff_ms, config.dlq_topic) == (500, 0, 10, "dlq")
    assert config.upsert_allow_other_unique_keys and config.errors_log and not config.dlq_context_headers


@pytest.mark.parametrize(
    ("options", "field", "expected"),
    [
        ({"quote.sql.identifiers": "never"}, "quote.sql.identifiers", "not an option this connector supports"),
        ({"consumer.override.max.poll.records": "10"}, "consumer.override.max.poll.records", "not an option"),
        ({"transforms": "unwrap"}, "transforms", "transforms.unwrap.type: required"),
        (
            {"transforms": "route", "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter"},
            "transforms",
            "'org.apache.kafka.connect.transforms.RegexRouter' is not supported here",
        ),
        ({"transforms.unwrap.type": "x"}, "transforms", "transforms.unwrap.type: names no transform listed"),
        ({"insert.mode": "merge"}, "insert.mode", "expected one of insert, upsert, update"),
        ({"pk.mode": "record_value", "insert.mode": "update", "topics": ""}, "topics", "exactly one of"),
        ({"table.name.format": "x" * 65}, "table.name.format", "expected 1 to 64 characters"),
        (
            {"errors.tolerance": "all", "errors.deadletterqueue.topic.name": "my_topic_test001"},
            "errors.deadletterqueue.topic.name",
            "a topic this connector does not read",
        ),
        ({"topics.regex": "("}, "topics.regex", "expected a regular expression"),
    ],
)
def test_bad_sink_options_are_named(options: dict, field: str, expected: str) -> None:
    with pytest.raises(ConnectorConfigError) as raised:
        sink(**options)
    assert raised.value.field_name == field
    assert expected in str(raised.value)


def test_docs_list_every_sink_option() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "sink.md").read_text(encoding="utf-8")
    section = page[page.index("## Sink options") :]
    assert [name for name in SINK_OPTIONS if f"`{name}`" not in section] == []
