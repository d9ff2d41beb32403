"""Confluent's ``JdbcSinkConnector`` body: its options, defaults and cross-option rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mungmo_pipelines.core.config.base import JdbcConnectorConfig
from mungmo_pipelines.core.config.options import Bool, Choice, Csv, Int, Regex, Short, Text, option
from mungmo_pipelines.core.mariadb.dialect import identifier_problem

JDBC_SINK_CLASS = "io.confluent.connect.jdbc.JdbcSinkConnector"
TOPIC_PLACEHOLDER = "${topic}"


class InsertMode(StrEnum):
    """How the sink writes a record's row."""

    INSERT = "insert"
    UPSERT = "upsert"
    UPDATE = "update"


class PkMode(StrEnum):
    """Where the sink takes a row's primary key from."""

    NONE = "none"
    KAFKA = "kafka"
    RECORD_KEY = "record_key"
    RECORD_VALUE = "record_value"


class ErrorsTolerance(StrEnum):
    NONE = "none"
    ALL = "all"


@dataclass(frozen=True, kw_only=True)
class JdbcSinkConfig(JdbcConnectorConfig):
    """A validated ``JdbcSinkConnector`` body."""

    topics: tuple[str, ...] = option("topics", Csv(), (), "topics to read (this or topics.regex)")
    topics_regex: str = option(
        "topics.regex",
        Regex(),
        "",
        "topics to read, as a regular expression matched against the broker's topics at each run (internal `__` "
        "topics and the connector's own dead-letter topic excluded)",
    )
    table_name_format: str = option(
        "table.name.format",
        Text(),
        TOPIC_PLACEHOLDER,
        "the target table in the connection's database; `${topic}` is replaced; the result must be 1 to 64 characters "
        "(checked at load for `topics`, at run time for `topics.regex`)",
    )
    insert_mode: InsertMode = option(
        "insert.mode",
        Choice(InsertMode),
        InsertMode.INSERT,
        "`insert`, `upsert` (`INSERT … ON DUPLICATE KEY UPDATE`), `update` (`UPDATE … WHERE key`)",
    )
    pk_mode: PkMode = option(
        "pk.mode",
        Choice(PkMode),
        PkMode.NONE,
        "where the primary key comes from: `none`, `kafka` (`__connect_topic`, `__connect_partition`, "
        "`__connect_offset`), `record_key` (struct or primitive key), `record_value`",
    )
    pk_fields: tuple[str, ...] = option(
        "pk.fields", Csv(), (), "primary key fields; for `kafka` three names or none, for a primitive key exactly one"
    )
    fields_whitelist: tuple[str, ...] = option(
        "fields.whitelist", Csv(), (), "value fields to write (all when empty); key columns are always written"
    )
    auto_create: bool = option(
        "auto.create", Bool(), False, "create missing tables: the primary key from `pk.mode`, InnoDB, utf8mb4"
    )
    auto_evolve: bool = option(
        "auto.evolve", Bool(), False, 'add columns for new fields; see "Types" for what stops a run'
    )
    delete_enabled: bool = option(
        "delete.enabled", Bool(), False, "tombstones delete rows; needs `pk.mode=record_key`, as in the JDBC sink"
    )
    batch_size: int = option(
        "batch.size",
        Int(1),
        3000,
        "records per database transaction, written with multi-row statements; a transaction also ends at 8 MiB of "
        "records, so memory stays bounded whatever the value",
    )
    max_retries: int = option(
        "max.retries",
        Int(0),
        10,
        "retries of a batch after a transient database error (deadlock, lock wait timeout, lost connection), whole, "
        "on a new connection",
    )
    retry_backoff_ms: int = option("retry.backoff.ms", Int(0), 3000, "wait between those retries")
    errors_tolerance: ErrorsTolerance = option(
        "errors.tolerance",
        Choice(ErrorsTolerance),
        ErrorsTolerance.NONE,
        "`none`: the run stops, naming the record; `all`: bad records go to the dead-letter topic",
    )
    dlq_topic: str = option(
        "errors.deadletterqueue.topic.name",
        Text(),
        "",
        "dead-letter topic, required with `errors.tolerance=all`; created if missing",
    )
    dlq_replication_factor: int = option(
        "errors.deadletterqueue.topic.replication.factor", Short(1), 1, "replication of the dead-letter topic"
    )
    dlq_context_headers: bool = option(
        "errors.deadletterqueue.context.headers.enable",
        Bool(),
        True,
        "`__connect.errors.*` headers name the failed record and the error (on by default here, off in Kafka "
        "Connect); off sends the record with its own headers only",
    )
    errors_log: bool = option("errors.log.enable", Bool(), False, "a warning per dead letter")
    errors_log_messages: bool = option(
        "errors.log.include.messages", Bool(), False, "with the record's key and value in it"
    )
    upsert_allow_other_unique_keys: bool = option(
        "upsert.allow.other.unique.keys",
        Bool(),
        False,
        '**this project\'s own**: let upserts run on tables with unique keys besides the primary key (see "Upserts")',
    )

    def validate(self) -> None:
        if bool(self.topics) == bool(self.topics_regex):
            raise self.fail("topics", "expected exactly one of topics or topics.regex")
        if self.delete_enabled and self.pk_mode is not PkMode.RECORD_KEY:
            raise self.fail("delete.enabled", "requires pk.mode=record_key (tombstones carry only the key)")
        if self.insert_mode in (InsertMode.UPSERT, InsertMode.UPDATE) and self.pk_mode is PkMode.NONE:
            raise self.fail(
                "pk.mode",
                f"insert.mode={self.insert_mode} needs a primary key: expected kafka, record_key or record_value",
            )
        if self.pk_mode is PkMode.KAFKA and self.pk_fields and len(self.pk_fields) != 3:
            raise self.fail("pk.fields", "with pk.mode=kafka expected three names (topic, partition, offset) or none")
        for topic in self.topics:
            self.check_topic("topics", topic)
        if self.dlq_topic:
            self.check_topic("errors.deadletterqueue.topic.name", self.dlq_topic)
        for topic in self.topics:
            problem = self.table_problem(topic)
            if problem:
                raise self.fail("table.name.format", problem)
        if self.errors_tolerance is ErrorsTolerance.ALL and not self.dlq_topic:
            raise self.fail(
                "errors.deadletterqueue.topic.name",
                "required when errors.tolerance=all: a bad record must go somewhere, never vanish",
            )
        if self.dlq_topic in self.topics:
            raise self.fail("errors.deadletterqueue.topic.name", "expected a topic this connector does not read")

    @property
    def consumer_group(self) -> str:
        """Kafka Connect's group for a sink connector, so lag tools keep working."""
        return f"connect-{self.name}"

    def table_for(self, topic: str) -> str:
        """The target table of ``topic``: ``table.name.format`` with ``${topic}`` replaced."""
        return self.table_name_format.replace(TOPIC_PLACEHOLDER, topic)

    def table_problem(self, topic: str) -> str | None:
        """Why ``topic``'s table name cannot be a MariaDB table, or ``None``."""
        table = self.table_for(topic)
        problem = identifier_problem(table)
        if problem is None:
            return None
        return f"{self.table_name_format!r} makes table name {table!r} for topic {topic!r}: {problem}"

    def reads_topic(self, topic: str) -> bool:
        if topic in self.topics:
            return True
        return bool(self.topics_regex) and re.fullmatch(self.topics_regex, topic) is not None
