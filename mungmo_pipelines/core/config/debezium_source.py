"""Debezium's MariaDB source body (``io.debezium.connector.mariadb.MariaDbConnector``, and
``io.debezium.connector.mysql.MySqlConnector`` pointed at MariaDB): its options, defaults and rules.

Option names and defaults are Debezium 3.5's (``MariaDbConnectorConfig``, ``BinlogConnectorConfig``,
``RelationalDatabaseConnectorConfig``, ``CommonConnectorConfig``). Three kinds of option:

- **supported**: declared below with :func:`option`; they do here what they do in Debezium;
- **accepted without effect** (``NO_EFFECT``): options of Debezium or Kafka Connect that
  have no meaning for this runtime (the schema history, queues between threads, JMX metrics,
  keep-alive threads...), each with the reason the docs print;
- **refused**: every other name, and the supported options' values this project does not
  implement (a ``converters`` list, ``provide.transaction.metadata=true``...), named with what is
  expected, so a body never silently does less here than in Debezium.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.base import ConnectorConfig
from mungmo_pipelines.core.config.options import (
    JSON_CONVERTER,
    REQUIRED,
    Bool,
    Choice,
    ConverterClass,
    Int,
    Kind,
    Password,
    SchemasEnabled,
    Text,
    option,
    options_of,
)
from mungmo_pipelines.core.connect.debezium.options import (
    BIGINT_UNSIGNED_HANDLING_MODES,
    BINARY_HANDLING_MODES,
    DECIMAL_HANDLING_MODES,
    TIME_PRECISION_MODES,
    UNSIGNED_OVERFLOW_POLICIES,
    DebeziumOptions,
)
from mungmo_pipelines.core.connect.debezium.records import HEARTBEAT_TOPIC_PREFIX, data_topic
from mungmo_pipelines.core.kafka.transactions import BoundaryPolicy, TransactionBoundary
from mungmo_pipelines.core.mariadb.connection import JdbcConnection, Tls, read_truststore
from mungmo_pipelines.core.mariadb.connection import SslMode as TlsMode
from mungmo_pipelines.core.secret import Secret

MARIADB_CONNECTOR_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
MYSQL_CONNECTOR_CLASS = "io.debezium.connector.mysql.MySqlConnector"
# Databases Debezium leaves out with table.ignore.builtin=true (BinlogConnectorConfig.isBuiltInDatabase).
BUILTIN_DATABASES = frozenset({"mysql", "performance_schema", "sys", "information_schema"})
SIMPLE_HEADER_CONVERTER = "org.apache.kafka.connect.storage.SimpleHeaderConverter"


class SnapshotMode(StrEnum):
    """``snapshot.mode``: when a run copies the captured tables before streaming."""

    INITIAL = "initial"
    INITIAL_ONLY = "initial_only"
    NO_DATA = "no_data"
    SCHEMA_ONLY = "schema_only"  # no_data's name before Debezium 2.6
    WHEN_NEEDED = "when_needed"
    NEVER = "never"
    ALWAYS = "always"
    RECOVERY = "recovery"

    @property
    def copies_data(self) -> bool:
        return self in (SnapshotMode.INITIAL, SnapshotMode.INITIAL_ONLY, SnapshotMode.WHEN_NEEDED, SnapshotMode.ALWAYS)


class SnapshotLockingMode(StrEnum):
    MINIMAL = "minimal"
    EXTENDED = "extended"
    NONE = "none"


class SslMode(StrEnum):
    """``database.ssl.mode``: Debezium's MariaDB connector takes MariaDB Connector/J's names."""

    DISABLE = "disable"
    TRUST = "trust"  # TLS, the server's certificate not checked
    VERIFY_CA = "verify-ca"  # and signed by the truststore's CA (the system's CAs without one)
    VERIFY_FULL = "verify-full"  # and naming the host connected to


# Where a TLS failure's error message sends the reader.
TLS_OPTIONS = "database.ssl.mode and database.ssl.truststore"
# database.ssl.mode -> the connection's TLS (core/mariadb/connection.py)
_TLS_MODES = {
    SslMode.DISABLE: TlsMode.DISABLED,
    SslMode.TRUST: TlsMode.REQUIRED,
    SslMode.VERIFY_CA: TlsMode.VERIFY_CA,
    SslMode.VERIFY_FULL: TlsMode.VERIFY_IDENTITY,
}


class WatermarkStrategy(StrEnum):
    """``incremental.snapshot.watermarking.strategy``: how a chunk's window is closed in the signal table."""

    INSERT_INSERT = "insert_insert"
    INSERT_DELETE = "insert_delete"


def split_regex_list(text: str) -> tuple[str, ...]:
    """Debezium's ``Strings.RegExSplitter``: commas separate, ``\\,`` is a literal comma, items are trimmed."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return tuple(p.strip().replace("\\,", ",") for p in parts if p.strip())


class RegexList(Kind[tuple[str, ...]]):
    """A comma list of regular expressions, each matched case-insensitively against the whole name."""

    def parse(self, text: str) -> tuple[str, ...]:
        patterns = split_regex_list(text)
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"expected regular expressions; {pattern!r}: {err}") from None
        return patterns

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value)


@dataclass(frozen=True)
class OneOf(Kind[str]):
    """One of fixed values, case-insensitively; ``why`` says why the others Debezium knows are refused."""

    values: tuple[str, ...]
    why: str = ""

    def parse(self, text: str) -> str:
        lowered = text.strip().lower()
        if lowered in self.values:
            return lowered
        because = f" ({self.why})" if self.why else ""
        raise ValueError(f"expected {' or '.join(self.values)}, got {text!r}{because}")


@dataclass(frozen=True)
class OnlyDefault(Kind[str]):
    """A Debezium option whose other values this project does not implement: only ``value`` (or empty)."""

    value: str
    why: str

    def parse(self, text: str) -> str:
        if text.strip().lower() not in ("", self.value.lower()):
            shown = repr(self.value) if self.value else "empty"
            raise ValueError(f"only {shown} is supported here, got {text!r}: {self.why}")
        return self.value

    def show(self, value: str) -> str:
        return value or "—"


class SkippedOperations(Kind[frozenset[str]]):
    """``skipped.operations``: a comma list of ``c``, ``u``, ``d``, ``t``, or ``none``."""

    def parse(self, text: str) -> frozenset[str]:
        items = {part.strip().lower() for part in text.split(",") if part.strip()}
        if items == {"none"}:
            return frozenset()
        unknown = sorted(items - {"c", "u", "d", "t"})
        if unknown:
            raise ValueError(f"expected a comma list of c, u, d, t, or none, got {unknown}")
        return frozenset(items)

    def show(self, value: frozenset[str]) -> str:
        return ",".join(sorted(value)) or "none"


class TopicPrefix(Kind[str]):
    """Debezium's ``topic.prefix`` rule: the characters a Kafka topic name may have."""

    def parse(self, text: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", text):
            raise ValueError(
                f"expected letters, digits, '.', '_' or '-' only (it starts every topic name), got {text!r}"
            )
        return text


class SignalTable(Kind[str]):
    """``signal.data.collection``: ``<database>.<table>``."""

    def parse(self, text: str) -> str:
        text = text.strip()
        if text and not re.fullmatch(r"[^.\s]+\.[^.\s]+", text):
            raise ValueError(f"expected <database>.<table>, got {text!r}")
        return text


class HeaderConverterClass(Kind[str]):
    def parse(self, text: str) -> str:
        if text != SIMPLE_HEADER_CONVERTER:
            raise ValueError(f"expected {SIMPLE_HEADER_CONVERTER} (Debezium's headers are written as its strings)")
        return text


# Accepted options without effect here: an exact name, or a prefix ending in ".", with the reason.
_NO_EFFECT: dict[str, str] = {
    "schema.history.internal.*": "no schema history is kept: with `binlog_row_metadata=FULL` every table map "
    "carries column names, types and the primary key, so rows decode without replaying DDL",
    "database.history.*": "the schema history's pre-2.0 name; no schema history is kept (see above)",
    "max.queue.size": "no queue between a reader thread and a poll loop: records go from the binlog to the producer",
    "max.queue.size.in.bytes": "as `max.queue.size`",
    "poll.dispatch.interval.ms": "as `max.queue.size`",
    "queue.provider.type": "as `max.queue.size`",
    "snapshot.lock.timeout.ms": "no locks are taken (`snapshot.locking.mode`)",
    "database.server.id.offset": "no second server id is needed: the snapshot reads with a plain connection",
    "database.query.timeout.ms": "statements run without a client-side timeout",
    "connect.keep.alive": "a run reconnects from its last position on its own; no keep-alive thread",
    "connect.keep.alive.interval.ms": "as `connect.keep.alive`",
    "use.nongraceful.disconnect": "as `connect.keep.alive`",
    "binlog.buffer.size": "no look-ahead buffer: transactions are kept whole by the Kafka transaction boundaries",
    "binlog.net.write.timeout": "the dump's net_write_timeout is 600 s",
    "binlog.net.read.timeout": "the dump's read timeout follows the heartbeat",
    "min.row.count.to.stream.results": "every snapshot read streams through a server-side cursor",
    "gtid.source.filter.dml.events": "`gtid.source.includes`/`excludes` are not supported (refused when set)",
    "resolve.create.table.like.schema": "table shapes come from the table maps, not from parsed DDL",
    "unavailable.value.placeholder": "`binlog_row_image=FULL` is required, so no value is ever unavailable",
    "retriable.restart.connector.wait.ms": "a failed run fails; Dagster's run retries restart it",
    "errors.max.retries": "as `retriable.restart.connector.wait.ms`",
    "errors.retry.timeout": "as `retriable.restart.connector.wait.ms`",
    "errors.retry.delay.max.ms": "as `retriable.restart.connector.wait.ms`",
    "errors.log.enable": "errors are in the run's log",
    "errors.log.include.messages": "errors are in the run's log",
    "errors.tolerance": "a source never drops a change; a record it cannot build stops the run, named",
    "statistics.metrics.enabled": "no JMX: each run's metadata (events by op, lag, snapshot progress) is in Dagster",
    "advanced.metrics.enable": "as `statistics.metrics.enabled`",
    "custom.metric.tags": "as `statistics.metrics.enabled`",
    "connection.validation.timeout.ms": "the server checks run at the start of each run",
    "executor.shutdown.timeout.ms": "no executor threads",
    "signal.poll.interval.ms": "only the source channel (the signal table, read from the binlog) is used",
    "signal.emit.failure.max.retries": "a failed window write fails the run, which resumes from its offset",
    "signal.emit.failure.backoff.ms": "as `signal.emit.failure.max.retries`",
    "guardrail.collections.max": "no limit on the number of captured tables",
    "guardrail.collections.limit.action": "as `guardrail.collections.max`",
    "offset.activity.monitor.interval.ms": "offsets are committed with the records",
    "openlineage.integration.*": "lineage is Dagster's asset graph",
    "topic.creation.enable": "topics are created when missing",
    "topic.creation.*": "topics are created with `topic.creation.default.partitions` and "
    "`topic.creation.default.replication.factor`; other topic settings are the broker's defaults",
    "exactly.once.support": "records and offsets always commit in one Kafka transaction",
    "exactly.once.source.support": "as `exactly.once.support`",
    "offsets.storage.replication.factor": "the offsets topic is created with the connector's replication factor",
    "producer.override.*": "the transactional producer's settings are fixed (`core/kafka/transactions.py`), "
    "but for `producer.override.compression.type`",
    "consumer.override.*": "a source has no consumer",
    "admin.override.*": "topics are created by the project's admin client",
    "config.action.reload": "connector bodies are read when the Dagster definitions load",
    "notification.sink.topic.name": "no notification channel is enabled (`notification.enabled.channels` is refused)",
    "snapshot.max.threads.multiplier": "one snapshot connection (`snapshot.max.threads`)",
    "legacy.snapshot.max.threads": "as `snapshot.max.threads.multiplier`",
}


def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    return lambda name: any(p.fullmatch(name) for p in compiled)


_NOT_TRANSFORMED = "records are Debezium's envelope as the connector writes it; transforms are not run here"


def only(name: str, value: str, why: str) -> str:
    """A Debezium option accepted only at ``value`` (its default): the other values are not implemented."""
    shown = f"`{value}`" if value else "empty"
    result: str = option(name, OnlyDefault(value, why), value, f"only {shown}: {why}")
    return result


@dataclass(frozen=True, kw_only=True)
class DebeziumSourceConfig(ConnectorConfig):
    """A validated Debezium MariaDB source body."""

    NO_EFFECT: ClassVar[dict[str, str]] = _NO_EFFECT

    # -- connection -------------------------------------------------------------------------
    hostname: str = option("database.hostname", Text(), REQUIRED, "the MariaDB server")
    port: int = option("database.port", Int(1, 65535), 3306, "its port")
    user: str = option(
        "database.user",
        Text(),
        REQUIRED,
        "needs REPLICATION SLAVE, BINLOG MONITOR and SELECT (and INSERT/DELETE on the signal table)",
    )
    password: Secret | None = option("database.password", Password(), None, "use ${env:NAME}")
    server_id: int = option(
        "database.server.id",
        Int(1, 4294967295),
        REQUIRED,
        "the replica id the binlog is read as: unique among the server and its replicas",
    )
    ssl_mode: SslMode = option(
        "database.ssl.mode",
        Choice(SslMode),
        SslMode.DISABLE,
        "TLS on every connection, the binlog's too: `disable`, `trust` (not checked), `verify-ca`, `verify-full`",
    )
    ssl_truststore: str = option(
        "database.ssl.truststore",
        Text(),
        "",
        "the CA to verify with: a PEM file or a PKCS12 truststore (not JKS); empty: the system's CAs",
    )
    ssl_truststore_password: Secret | None = option(
        "database.ssl.truststore.password", Password(), None, "a PKCS12 truststore's password"
    )
    connect_timeout_ms: int = option("connect.timeout.ms", Int(1), 30000, "connection timeout")
    initial_statements: str = option(
        "database.initial.statements",
        Text(),
        "",
        "`;`-separated statements run on each snapshot and control connection (not on the binlog connection)",
    )
    # -- what is captured -------------------------------------------------------------------
    database_include_list: tuple[str, ...] = option(
        "database.include.list", RegexList(), (), "databases to capture (regular expressions, whole name)"
    )
    database_exclude_list: tuple[str, ...] = option(
        "database.exclude.list", RegexList(), (), "databases not to capture"
    )
    table_include_list: tuple[str, ...] = option(
        "table.include.list", RegexList(), (), "tables to capture, matched against `<db>.<table>`"
    )
    table_exclude_list: tuple[str, ...] = option("table.exclude.list", RegexList(), (), "tables not to capture")
    column_include_list: tuple[str, ...] = option(
        "column.include.list", RegexList(), (), "columns to keep, matched against `<db>.<table>.<column>`"
    )
    column_exclude_list: tuple[str, ...] = option("column.exclude.list", RegexList(), (), "columns to leave out")
    table_ignore_builtin: bool = option(
        "table.ignore.builtin", Bool(), True, "leave out mysql, sys, performance_schema, information_schema"
    )
    # -- records ----------------------------------------------------------------------------
    topic_prefix: str = option("topic.prefix", TopicPrefix(), REQUIRED, "topics are `<topic.prefix>.<db>.<table>`")
    tombstones_on_delete: bool = option("tombstones.on.delete", Bool(), True, "a tombstone after each delete")
    decimal_handling_mode: str = option(
        "decimal.handling.mode", OneOf(DECIMAL_HANDLING_MODES), "precise", "DECIMAL as Decimal bytes, double or string"
    )
    time_precision_mode: str = option(
        "time.precision.mode",
        OneOf(TIME_PRECISION_MODES, "Debezium's MariaDB validator refuses adaptive"),
        "adaptive_time_microseconds",
        "temporal types' Connect types",
    )
    bigint_unsigned_handling_mode: str = option(
        "bigint.unsigned.handling.mode",
        OneOf(BIGINT_UNSIGNED_HANDLING_MODES),
        "long",
        "BIGINT UNSIGNED as int64 (`long`) or Decimal (`precise`); see `mungmo.bigint.unsigned.overflow`",
    )
    unsigned_overflow: str = option(
        "mungmo.bigint.unsigned.overflow",
        OneOf(UNSIGNED_OVERFLOW_POLICIES),
        "fail",
        "this project's: with `long`, a BIGINT UNSIGNED above 2^63-1 stops the run naming table and column "
        "(`fail`); `wrap` writes the negative number Debezium writes",
    )
    binary_handling_mode: str = option(
        "binary.handling.mode", OneOf(BINARY_HANDLING_MODES), "bytes", "binary columns as bytes, base64 or hex"
    )
    include_query: bool = option(
        "include.query", Bool(), False, "`source.query`: the statement behind the rows (ANNOTATE_ROWS)"
    )
    skipped_operations: frozenset[str] = option(
        "skipped.operations",
        SkippedOperations(),
        frozenset({"t"}),
        "operations not sent: c, u, d (t, truncate, must be among them: truncate events are not produced)",
    )
    skip_messages_without_change: bool = option(
        "skip.messages.without.change", Bool(), False, "skip updates that change no captured column"
    )
    include_schema_changes: bool = option(
        "include.schema.changes",
        Bool(),
        True,
        "accepted; schema-change records (`<topic.prefix>` topic) are not produced here (docs/cdc.md)",
    )
    heartbeat_interval_ms: int = option(
        "heartbeat.interval.ms", Int(0), 0, "a heartbeat record (and the offset) at most this often; 0: none"
    )
    heartbeat_topics_prefix: str = option(
        "heartbeat.topics.prefix", TopicPrefix(), HEARTBEAT_TOPIC_PREFIX, "heartbeats go to `<this>.<topic.prefix>`"
    )
    heartbeat_action_query: str = option(
        "heartbeat.action.query", Text(), "", "a statement run with each heartbeat (to keep an idle binlog moving)"
    )
    # -- snapshots --------------------------------------------------------------------------
    snapshot_mode: SnapshotMode = option(
        "snapshot.mode",
        Choice(SnapshotMode),
        SnapshotMode.INITIAL,
        "initial, initial_only, no_data (schema_only), when_needed, never, always, recovery (docs/cdc.md)",
    )
    snapshot_locking_mode: SnapshotLockingMode = option(
        "snapshot.locking.mode",
        Choice(SnapshotLockingMode),
        SnapshotLockingMode.MINIMAL,
        "accepted; no lock is taken: START TRANSACTION WITH CONSISTENT SNAPSHOT gives the position",
    )
    snapshot_include_collection_list: tuple[str, ...] = option(
        "snapshot.include.collection.list", RegexList(), (), "captured tables the snapshot copies (default: all)"
    )
    snapshot_fetch_size: int = option(
        "snapshot.fetch.size", Int(1), 1000, "rows per fetch of the snapshot's server-side cursor"
    )
    snapshot_delay_ms: int = option("snapshot.delay.ms", Int(0), 0, "wait before a snapshot starts")
    streaming_delay_ms: int = option("streaming.delay.ms", Int(0), 0, "wait before streaming starts")
    snapshot_max_threads: int = option(
        "snapshot.max.threads",
        Int(1, 1),
        1,
        "1: MariaDB cannot share a consistent snapshot between connections",
    )
    signal_data_collection: str = option(
        "signal.data.collection", SignalTable(), "", "the signal table `<db>.<table>` (execute-snapshot)"
    )
    signal_enabled_channels: str = option(
        "signal.enabled.channels", OneOf(("source",), "only the signal table is read"), "source", "signal channels"
    )
    incremental_snapshot_chunk_size: int = option(
        "incremental.snapshot.chunk.size", Int(1), 1024, "rows per incremental-snapshot chunk (window)"
    )
    watermarking_strategy: WatermarkStrategy = option(
        "incremental.snapshot.watermarking.strategy",
        Choice(WatermarkStrategy),
        WatermarkStrategy.INSERT_INSERT,
        "close a window by inserting a close row, or by deleting the open row",
    )
    incremental_snapshot_allow_schema_changes: bool = option(
        "incremental.snapshot.allow.schema.changes",
        Bool(),
        False,
        "accepted; a chunk whose table changes shape in its window is read again either way",
    )
    # -- delivery ---------------------------------------------------------------------------
    max_batch_size: int = option(
        "max.batch.size",
        Int(1),
        2048,
        "records per poll: with transaction.boundary=poll, a Kafka transaction ends at the first "
        "source-transaction end after this many",
    )
    poll_interval_ms: int = option("poll.interval.ms", Int(1), 500, "how often the sensor compares the binlog head")
    transaction_boundary: TransactionBoundary = option(
        "transaction.boundary",
        Choice(TransactionBoundary),
        TransactionBoundary.INTERVAL,
        "KIP-618: a Kafka transaction every `transaction.boundary.interval.ms` (interval; Kafka Connect's default "
        "is poll: every `max.batch.size` records), ending between source transactions",
    )
    transaction_interval_ms: int = option(
        "transaction.boundary.interval.ms", Int(1), 1000, "commit interval with transaction.boundary=interval"
    )
    run_duration_ms: int = option(
        "mungmo.streaming.duration.ms",
        Int(0),
        0,
        "this project's: 0 ends a run once it reached the binlog head it saw at its start; more keeps streaming "
        "while changes keep coming, up to this long",
    )
    run_idle_ms: int = option(
        "mungmo.streaming.idle.ms",
        Int(100),
        5000,
        "this project's: with `mungmo.streaming.duration.ms`, a run ends after this long without a change",
    )
    compression: str = option(
        "producer.override.compression.type",
        OneOf(("none", "gzip", "snappy", "lz4", "zstd")),
        "none",
        "Kafka Connect's producer override: every Debezium record repeats its schema (about 3.5 KB of 4 KB for a "
        "200-byte row), so lz4 cuts what the broker writes and speeds the source up (docs/performance.md); every "
        "consumer must read it: this project's sink does (`lz4` is a dependency), Java clients do, another "
        "kafka-python consumer needs the `lz4` package",
    )
    topic_partitions: int = option("topic.creation.default.partitions", Int(1), 1, "partitions of created topics")
    topic_replication_factor: int = option(
        "topic.creation.default.replication.factor", Int(1), 1, "replication of created topics"
    )
    offsets_topic: str = option(
        "offsets.storage.topic", Text(), settings.OFFSETS_TOPIC, "compacted topic holding source offsets"
    )
    tasks_max: int = option("tasks.max", Int(1), 1, "accepted; a run is one task, as Debezium's binlog connectors")
    key_converter: str = option("key.converter", ConverterClass(), JSON_CONVERTER, "must be JsonConverter")
    value_converter: str = option("value.converter", ConverterClass(), JSON_CONVERTER, "must be JsonConverter")
    key_schemas_enable: bool = option("key.converter.schemas.enable", SchemasEnabled(), True, "must be true")
    value_schemas_enable: bool = option("value.converter.schemas.enable", SchemasEnabled(), True, "must be true")
    header_converter: str = option(
        "header.converter", HeaderConverterClass(), SIMPLE_HEADER_CONVERTER, "must be SimpleHeaderConverter"
    )
    # -- Debezium options whose other values are not implemented -----------------------------
    snapshot_query_mode: str = only("snapshot.query.mode", "select_all", "no custom snapshot queries")
    snapshot_select_overrides: str = only(
        "snapshot.select.statement.overrides", "", "the snapshot reads whole tables in primary-key order"
    )
    snapshot_order_by_row_count: str = only(
        "snapshot.tables.order.by.row.count", "disabled", "tables are snapshotted in name order"
    )
    event_processing_failure: str = only("event.processing.failure.handling.mode", "fail", "a change is never skipped")
    event_deserialization_failure: str = only(
        "event.deserialization.failure.handling.mode", "fail", "a change is never skipped"
    )
    inconsistent_schema_handling: str = only("inconsistent.schema.handling.mode", "fail", "a change is never skipped")
    event_converting_failure: str = only(
        "event.converting.failure.handling.mode",
        "fail",
        "a value the record cannot hold stops the run, named (Debezium's default warns)",
    )
    provide_transaction_metadata: str = only(
        "provide.transaction.metadata", "false", "transaction metadata records are not produced"
    )
    enable_time_adjuster: str = only(
        "enable.time.adjuster", "true", "two-digit years are always adjusted, as by default"
    )
    include_schema_comments: str = only("include.schema.comments", "false", "field schemas carry no comments")
    schema_name_adjustment: str = only("schema.name.adjustment.mode", "none", "schema names are not adjusted")
    field_name_adjustment: str = only("field.name.adjustment.mode", "none", "field names are not adjusted")
    read_only: str = only("read.only", "false", "incremental snapshots write their windows to the signal table")
    converters: str = only("converters", "", "custom converters are Java classes")
    post_processors: str = only("post.processors", "", "post processors are Java classes")
    transforms: str = only("transforms", "", _NOT_TRANSFORMED)
    predicates: str = only("predicates", "", _NOT_TRANSFORMED)
    message_key_columns: str = only("message.key.columns", "", "keys are the primary key")
    propagate_column_source_type: str = only(
        "column.propagate.source.type", "", "field schemas carry no source-type parameters"
    )
    propagate_datatype_source_type: str = only(
        "datatype.propagate.source.type", "", "field schemas carry no source-type parameters"
    )
    gtid_source_includes: str = only("gtid.source.includes", "", "every GTID domain is read")
    gtid_source_excludes: str = only("gtid.source.excludes", "", "every GTID domain is read")
    gtid_ignore_on_recovery: str = only("gtid.ignore.on.recovery", "false", "positions resume by GTID")
    notification_channels: str = only("notification.enabled.channels", "", "no notifications are sent")
    topic_naming_strategy: str = only(
        "topic.naming.strategy",
        "io.debezium.schema.DefaultTopicNamingStrategy",
        "topics are `<topic.prefix>.<db>.<table>`",
    )
    sourceinfo_struct_maker: str = only(
        "sourceinfo.struct.maker",
        "io.debezium.connector.mariadb.MariaDbSourceInfoStructMaker",
        "the source block is MariaDB's",
    )

    def validate(self) -> None:
        declared = options_of(type(self))
        for include, exclude in (
            ("database.include.list", "database.exclude.list"),
            ("table.include.list", "table.exclude.list"),
            ("column.include.list", "column.exclude.list"),
        ):
            if getattr(self, declared[include].attribute) and getattr(self, declared[exclude].attribute):
                raise self.fail(exclude, f"expected {include} or {exclude}, not both (as Debezium)")
        if "t" not in self.skipped_operations:
            raise self.fail(
                "skipped.operations", "must include t: truncate events are not produced here (Debezium's default is t)"
            )
        try:
            self.record_options  # noqa: B018 - builds and checks the encoder's options
        except ValueError as err:
            raise self.fail(None, str(err)) from None
        if self.ssl_truststore:
            if self.ssl_mode not in (SslMode.VERIFY_CA, SslMode.VERIFY_FULL):
                raise self.fail(
                    "database.ssl.truststore",
                    f"a CA to verify the server with, but database.ssl.mode is {self.ssl_mode}: "
                    "expected verify-ca or verify-full",
                )
            try:
                self.tls  # noqa: B018 - reads the truststore
            except (OSError, ValueError) as err:
                raise self.fail("database.ssl.truststore", str(err)) from None

    # -- derived ----------------------------------------------------------------------------

    @functools.cached_property
    def record_options(self) -> DebeziumOptions:
        return DebeziumOptions(
            topic_prefix=self.topic_prefix,
            decimal_handling_mode=self.decimal_handling_mode,
            time_precision_mode=self.time_precision_mode,
            bigint_unsigned_handling_mode=self.bigint_unsigned_handling_mode,
            binary_handling_mode=self.binary_handling_mode,
            tombstones_on_delete=self.tombstones_on_delete,
            unsigned_overflow=self.unsigned_overflow,
        )

    @functools.cached_property
    def tls(self) -> Tls:
        """The TLS of every connection to the server: snapshot, control and binlog alike."""
        ca_file, ca_pem = (
            read_truststore(self.ssl_truststore, self.ssl_truststore_password) if self.ssl_truststore else (None, None)
        )
        return Tls(_TLS_MODES[self.ssl_mode], ca_file, ca_pem)

    @property
    def connection(self) -> JdbcConnection:
        """The server, as the Dagster layer's MariaDB resource points connections (no database)."""
        return JdbcConnection(self.hostname, self.port, "", self.user, self.password, self.tls)

    @property
    def transactions(self) -> BoundaryPolicy:
        return BoundaryPolicy(self.transaction_boundary, self.max_batch_size, self.transaction_interval_ms)

    @property
    def heartbeat_topic(self) -> str:
        return f"{self.heartbeat_topics_prefix}.{self.topic_prefix}"

    @property
    def signal_table(self) -> tuple[str, str] | None:
        if not self.signal_data_collection:
            return None
        database, _, table = self.signal_data_collection.partition(".")
        return database, table

    @functools.cached_property
    def _database_included(self) -> Callable[[str], bool]:
        include, exclude = _matcher(self.database_include_list), _matcher(self.database_exclude_list)
        if self.database_include_list:
            return include
        return lambda name: not exclude(name)

    @functools.cached_property
    def _table_included(self) -> Callable[[str], bool]:
        include, exclude = _matcher(self.table_include_list), _matcher(self.table_exclude_list)
        if self.table_include_list:
            return include
        return lambda name: not exclude(name)

    @functools.cached_property
    def _snapshot_included(self) -> Callable[[str], bool]:
        if not self.snapshot_include_collection_list:
            return lambda name: True
        return _matcher(self.snapshot_include_collection_list)

    def captures(self, database: str, table: str) -> bool:
        """Debezium's table filter: database and table lists, built-in databases, plus the signal table."""
        if self.signal_table == (database, table):
            return True
        if self.table_ignore_builtin and database.lower() in BUILTIN_DATABASES:
            return False
        return self._database_included(database) and self._table_included(f"{database}.{table}")

    def snapshots(self, database: str, table: str) -> bool:
        """Whether the initial snapshot copies a captured table (``snapshot.include.collection.list``)."""
        return self._snapshot_included(f"{database}.{table}")

    def column_filter(self) -> Callable[[str, str, str], bool] | None:
        """``(db, table, column) -> kept``, or ``None`` when every column is kept."""
        if self.column_include_list:
            include = _matcher(self.column_include_list)
            return lambda db, table, column: include(f"{db}.{table}.{column}")
        if self.column_exclude_list:
            exclude = _matcher(self.column_exclude_list)
            return lambda db, table, column: not exclude(f"{db}.{table}.{column}")
        return None

    def topic_for(self, table: str) -> str:
        """The topic of ``<db>.<table>``."""
        database, _, name = table.partition(".")
        return data_topic(self.topic_prefix, database, name)

    def may_produce(self, topic: str) -> bool:
        if topic == self.heartbeat_topic:
            return True
        prefix = self.topic_prefix + "."
        if not topic.startswith(prefix):
            return False
        database, dot, table = topic[len(prefix) :].partition(".")
        return bool(dot) and self.captures(database, table)
