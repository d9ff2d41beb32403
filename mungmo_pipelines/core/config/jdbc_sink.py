"""Confluent's ``JdbcSinkConnector`` body: its options, defaults and cross-option rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mungmo_pipelines.core.config.options import Bool, Choice, Csv, Int, Text, option
from mungmo_pipelines.core.config.sink import ErrorsTolerance, InsertMode, PkMode, SinkConfig

JDBC_SINK_CLASS = "io.confluent.connect.jdbc.JdbcSinkConnector"
TOPIC_PLACEHOLDER = "${topic}"

__all__ = ["JDBC_SINK_CLASS", "ErrorsTolerance", "InsertMode", "JdbcSinkConfig", "PkMode"]


@dataclass(frozen=True, kw_only=True)
class JdbcSinkConfig(SinkConfig):
    """A validated ``JdbcSinkConnector`` body."""

    TABLE_FORMAT_OPTION: ClassVar[str] = "table.name.format"
    PK_MODE_OPTION: ClassVar[str] = "pk.mode"
    PK_FIELDS_OPTION: ClassVar[str] = "pk.fields"
    AUTO_CREATE_OFF: ClassVar[str] = "auto.create=false"
    AUTO_EVOLVE_OFF: ClassVar[str] = "auto.evolve=false"

    table_name_format: str = option(
        "table.name.format",
        Text(),
        TOPIC_PLACEHOLDER,
        "the target table in the connection's database; `${topic}` is replaced; the result must be 1 to 64 characters "
        "(checked at load for `topics`, at run time for `topics.regex`)",
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

    @property
    def truncate_enabled(self) -> bool:
        return False

    @property
    def reads_change_events(self) -> bool:
        return False

    @property
    def table_format(self) -> str:
        return self.table_name_format

    def validate(self) -> None:
        super().validate()
        if self.delete_enabled and self.pk_mode is not PkMode.RECORD_KEY:
            raise self.fail("delete.enabled", "requires pk.mode=record_key (tombstones carry only the key)")
        if self.insert_mode in (InsertMode.UPSERT, InsertMode.UPDATE) and self.pk_mode is PkMode.NONE:
            raise self.fail(
                "pk.mode",
                f"insert.mode={self.insert_mode} needs a primary key: expected kafka, record_key or record_value",
            )
        if self.pk_mode is PkMode.KAFKA and self.pk_fields and len(self.pk_fields) != 3:
            raise self.fail("pk.fields", "with pk.mode=kafka expected three names (topic, partition, offset) or none")

    def table_for(self, topic: str) -> str:
        """The target table of ``topic``: ``table.name.format`` with ``${topic}`` replaced."""
        return self.table_name_format.replace(TOPIC_PLACEHOLDER, topic)

    def field_written(self, topic: str, field_name: str, in_key: bool) -> bool:
        return in_key or not self.fields_whitelist or field_name in self.fields_whitelist
