"""Confluent's ``JdbcSourceConnector`` body: its options, defaults and cross-option rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.base import JdbcConnectorConfig
from mungmo_pipelines.core.config.options import (
    REQUIRED,
    Bool,
    Choice,
    Csv,
    Int,
    Long,
    OptionalLong,
    Select,
    Short,
    Text,
    option,
)
from mungmo_pipelines.core.kafka.topics import topic_name_problem, topic_prefix_problem
from mungmo_pipelines.core.kafka.transactions import BoundaryPolicy, TransactionBoundary

JDBC_SOURCE_CLASS = "io.confluent.connect.jdbc.JdbcSourceConnector"


def bare_table(name: str) -> str:
    """A ``table.whitelist`` entry without its database qualifier (``db.table``, ```db`.`table```)."""
    return name.rpartition(".")[2].strip("`")


class SourceMode(StrEnum):
    """How the JDBC source finds new rows."""

    BULK = "bulk"
    INCREMENTING = "incrementing"
    TIMESTAMP = "timestamp"
    TIMESTAMP_INCREMENTING = "timestamp+incrementing"

    @property
    def uses_incrementing(self) -> bool:
        return self in (SourceMode.INCREMENTING, SourceMode.TIMESTAMP_INCREMENTING)

    @property
    def uses_timestamp(self) -> bool:
        return self in (SourceMode.TIMESTAMP, SourceMode.TIMESTAMP_INCREMENTING)


class NumericMapping(StrEnum):
    NONE = "none"
    PRECISION_ONLY = "precision_only"
    BEST_FIT = "best_fit"
    BEST_FIT_EAGER_DOUBLE = "best_fit_eager_double"


class TableTypes(StrEnum):
    TABLE = "table"


@dataclass(frozen=True, kw_only=True)
class JdbcSourceConfig(JdbcConnectorConfig):
    """A validated ``JdbcSourceConnector`` body."""

    mode: SourceMode = option("mode", Choice(SourceMode), REQUIRED, "how new rows are found")
    incrementing_column: str = option(
        "incrementing.column.name", Text(), "", "strictly increasing column (default: the AUTO_INCREMENT one)"
    )
    timestamp_columns: tuple[str, ...] = option(
        "timestamp.column.name", Csv(), (), "comma list; the first non-null one is the row's time"
    )
    table_whitelist: tuple[str, ...] = option("table.whitelist", Csv(), (), "tables to copy")
    table_blacklist: tuple[str, ...] = option("table.blacklist", Csv(), (), "tables not to copy")
    table_types: TableTypes = option("table.types", Choice(TableTypes), TableTypes.TABLE, "only base tables")
    query: str = option("query", Select(), "", "custom SELECT instead of tables")
    topic_prefix: str = option(
        "topic.prefix", Text(), REQUIRED, "topic = prefix + table (or the prefix alone with query)"
    )
    batch_max_rows: int = option(
        "batch.max.rows",
        Int(1),
        100,
        "rows per fetch, at most 1000 whatever the value (bounded memory), and per transaction with "
        "transaction.boundary=poll",
    )
    poll_interval_ms: int = option("poll.interval.ms", Int(1), 5000, "how often the sensor looks for new rows")
    timestamp_delay_interval_ms: int = option("timestamp.delay.interval.ms", Long(0), 0, "rows younger than this wait")
    timestamp_initial: int | None = option(
        "timestamp.initial", OptionalLong(), None, "first timestamp offset (ms since epoch, -1 = now)"
    )
    validate_non_null: bool = option("validate.non.null", Bool(), True, "offset columns must be NOT NULL")
    numeric_mapping: NumericMapping = option(
        "numeric.mapping",
        Choice(NumericMapping),
        NumericMapping.NONE,
        "NUMERIC mapping; no effect with MariaDB, whose DECIMAL is not JDBC NUMERIC",
    )
    transaction_boundary: TransactionBoundary = option(
        "transaction.boundary",
        Choice(TransactionBoundary),
        TransactionBoundary.INTERVAL,
        "when records and offsets commit: every batch.max.rows rows (poll) or every interval",
    )
    transaction_interval_ms: int = option(
        "transaction.boundary.interval.ms", Long(0), 1000, "commit interval with transaction.boundary=interval"
    )
    topic_partitions: int = option("topic.creation.default.partitions", Int(1), 1, "partitions of created topics")
    topic_replication_factor: int = option(
        "topic.creation.default.replication.factor", Short(1), 1, "replication of created topics"
    )
    offsets_topic: str = option(
        "offsets.storage.topic", Text(), settings.OFFSETS_TOPIC, "compacted topic holding source offsets"
    )

    def validate(self) -> None:
        mode = self.mode
        if mode.uses_incrementing and self.query and not self.incrementing_column:
            raise self.fail(
                "incrementing.column.name", f"required when mode is {mode} with a query (no table to look it up in)"
            )
        if mode.uses_timestamp and not self.timestamp_columns:
            raise self.fail("timestamp.column.name", f"required when mode is {mode}")
        if self.query:
            if self.table_whitelist or self.table_blacklist:
                raise self.fail("query", "expected either query or table.whitelist/table.blacklist, not both")
        elif self.table_whitelist and self.table_blacklist:
            raise self.fail("table.blacklist", "expected table.whitelist or table.blacklist, not both")
        self.check_topic("offsets.storage.topic", self.offsets_topic)
        self.validate_topics()

    def validate_topics(self) -> None:
        """The topics this connector writes are legal Kafka names: the query's, each whitelisted table's, or
        (tables found at run time) the prefix's characters with room for a table name."""
        if self.query:
            self.check_topic("topic.prefix", self.topic_prefix, "with query, the prefix is the topic: ")
        elif self.table_whitelist:
            for table in self.table_whitelist:
                made_from = f"topic.prefix {self.topic_prefix!r} + table {bare_table(table)!r}: "
                self.check_topic("topic.prefix", self.topic_for(bare_table(table)), made_from)
        else:
            problem = topic_prefix_problem(self.topic_prefix)
            if problem:
                raise self.fail("topic.prefix", problem)

    def table_topic_problem(self, table: str) -> str | None:
        """Why ``table``'s topic (``topic.prefix`` + table) cannot be a Kafka topic, or ``None``."""
        problem = topic_name_problem(self.topic_for(table))
        return f"topic.prefix {self.topic_prefix!r} + table {table!r}: {problem}" if problem else None

    @property
    def transactions(self) -> BoundaryPolicy:
        return BoundaryPolicy(self.transaction_boundary, self.batch_max_rows, self.transaction_interval_ms)

    def topic_for(self, table: str) -> str:
        return self.topic_prefix if self.query else f"{self.topic_prefix}{table}"

    def may_produce(self, topic: str) -> bool:
        if self.query:
            return topic == self.topic_prefix
        if self.table_whitelist:
            return topic in {self.topic_for(table) for table in self.table_whitelist}
        return topic.startswith(self.topic_prefix)
