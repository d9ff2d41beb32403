"""What every sink connector class gives the sink runtime.

Confluent's ``JdbcSinkConnector`` and Debezium's ``JdbcSinkConnector`` name their options
differently (``pk.mode`` / ``primary.key.mode``, ``auto.create`` + ``auto.evolve`` /
``schema.evolution``, ``max.retries`` / ``flush.max.retries``) but mean the same few things.
``SinkConfig`` declares those things as attributes; each class maps its own options onto them
(an option field of the same name, or a property), so one runtime (``core/sink``) runs both.
Kafka Connect's own sink options (``topics``, ``errors.*``, ``transforms``) are declared here once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from mungmo_pipelines.core.config.base import JdbcConnectorConfig
from mungmo_pipelines.core.config.options import Bool, Choice, Csv, Regex, Short, Text, option, option_group
from mungmo_pipelines.core.config.transforms import ExtractNewRecordState, parse_transforms
from mungmo_pipelines.core.mariadb.dialect import identifier_problem


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
class SinkConfig(JdbcConnectorConfig):
    """A validated sink connector body, as the sink runtime reads it.

    The properties below are what each connector class supplies under its own option names;
    a subclass overrides them with option fields (which must have defaults) or properties.
    """

    # The class's names for the table naming format and the primary key options, for messages.
    TABLE_FORMAT_OPTION: ClassVar[str]
    PK_MODE_OPTION: ClassVar[str]
    PK_FIELDS_OPTION: ClassVar[str]
    AUTO_CREATE_OFF: ClassVar[str]  # the setting that keeps tables from being created, and from evolving
    AUTO_EVOLVE_OFF: ClassVar[str]

    topics: tuple[str, ...] = option("topics", Csv(), (), "topics to read (this or topics.regex)")
    topics_regex: str = option(
        "topics.regex",
        Regex(),
        "",
        "topics to read, as a regular expression matched against the broker's topics at each run (internal `__` "
        "topics and the connector's own dead-letter topic excluded)",
    )
    insert_mode: InsertMode = option(
        "insert.mode",
        Choice(InsertMode),
        InsertMode.INSERT,
        "`insert`, `upsert` (`INSERT … ON DUPLICATE KEY UPDATE`), `update` (`UPDATE … WHERE key`)",
    )
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
    transforms: tuple[str, ...] = option(
        "transforms",
        Csv(),
        (),
        "aliases of single message transforms applied to each record before it is written; the one type "
        'supported is `io.debezium.transforms.ExtractNewRecordState` (see "Debezium change events")',
    )
    transform_options: tuple[tuple[str, str], ...] = option_group(
        "transforms.", "`transforms.<alias>.type` and the transform's options"
    )
    upsert_allow_other_unique_keys: bool = option(
        "upsert.allow.other.unique.keys",
        Bool(),
        False,
        '**this project\'s own**: let upserts run on tables with unique keys besides the primary key (see "Upserts")',
    )
    consistency_blocking: bool = option(
        "mungmo.consistency.blocking",
        Bool(),
        False,
        "**this project's own**: the consistency checks of this sink's tables are blocking: a failed check fails "
        "the run that wrote the tables, or ran the check (docs/consistency.md)",
    )

    # --- what each connector class supplies -------------------------------------------------

    @property
    def pk_mode(self) -> PkMode:
        raise NotImplementedError

    @property
    def pk_fields(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def delete_enabled(self) -> bool:
        raise NotImplementedError

    @property
    def truncate_enabled(self) -> bool:
        """Whether a Debezium truncate event (``op=t``) empties the table."""
        raise NotImplementedError

    @property
    def reads_change_events(self) -> bool:
        """Whether record values may be Debezium change events, read as such (Debezium's sink)."""
        raise NotImplementedError

    @property
    def auto_create(self) -> bool:
        raise NotImplementedError

    @property
    def auto_evolve(self) -> bool:
        raise NotImplementedError

    @property
    def batch_size(self) -> int:
        raise NotImplementedError

    @property
    def max_retries(self) -> int:
        raise NotImplementedError

    @property
    def retry_backoff_ms(self) -> int:
        raise NotImplementedError

    @property
    def table_format(self) -> str:
        raise NotImplementedError

    def table_for(self, topic: str) -> str:
        """The target table of ``topic``'s records (for Debezium's sink, as far as the topic tells)."""
        raise NotImplementedError

    @property
    def table_from_events(self) -> bool:
        """Whether table names come from each change event's ``source`` block, not from the topic alone."""
        return False

    def table_name(self, topic: str, source: dict[str, Any] | None) -> str:
        """The table of a record of ``topic`` whose change event has the ``source`` block given."""
        return self.table_for(topic)

    def field_written(self, topic: str, field_name: str, in_key: bool) -> bool:
        """Whether a record field becomes a column (``fields.whitelist``, ``field.include.list``…)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------

    def validate(self) -> None:
        if bool(self.topics) == bool(self.topics_regex):
            raise self.fail("topics", "expected exactly one of topics or topics.regex")
        for topic in self.topics:
            self.check_topic("topics", topic)
        if self.dlq_topic:
            self.check_topic("errors.deadletterqueue.topic.name", self.dlq_topic)
        if self.errors_tolerance is ErrorsTolerance.ALL and not self.dlq_topic:
            raise self.fail(
                "errors.deadletterqueue.topic.name",
                "required when errors.tolerance=all: a bad record must go somewhere, never vanish",
            )
        if self.dlq_topic in self.topics:
            raise self.fail("errors.deadletterqueue.topic.name", "expected a topic this connector does not read")
        for topic in self.topics:
            problem = self.table_problem(topic)
            if problem:
                raise self.fail(self.TABLE_FORMAT_OPTION, problem)
        try:
            self.transform_chain  # noqa: B018 - parsed now, so a bad transform fails at load
        except ValueError as err:
            raise self.fail("transforms", str(err)) from None

    @functools.cached_property
    def transform_chain(self) -> tuple[ExtractNewRecordState, ...]:
        return parse_transforms(self.transforms, self.transform_options)

    @property
    def consumer_group(self) -> str:
        """Kafka Connect's group for a sink connector, so lag tools keep working."""
        return f"connect-{self.name}"

    def table_problem(self, topic: str) -> str | None:
        """Why ``topic``'s table name cannot be a MariaDB table, or ``None``."""
        table = self.table_for(topic)
        problem = identifier_problem(table)
        if problem is None:
            return None
        made = f"makes table name {table!r} for topic {topic!r}"
        return f"{self.TABLE_FORMAT_OPTION} {self.table_format!r} {made}: {problem}"

    def reads_topic(self, topic: str) -> bool:
        if topic in self.topics:
            return True
        return bool(self.topics_regex) and re.fullmatch(self.topics_regex, topic) is not None
