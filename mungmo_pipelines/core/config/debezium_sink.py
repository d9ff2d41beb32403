"""Debezium's ``io.debezium.connector.jdbc.JdbcSinkConnector`` body (Debezium 3.5): its options,
defaults and cross-option rules, mapped onto the attributes the sink runtime reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from mungmo_pipelines.core.config.options import REQUIRED, Bool, Choice, Csv, Int, Kind, Text, TimeZone, option
from mungmo_pipelines.core.config.sink import InsertMode, PkMode, SinkConfig

DEBEZIUM_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
TOPIC_PLACEHOLDER = "${topic}"
# ${source.<field>}: a string field of the change event's source block (db, table, name…).
SOURCE_PLACEHOLDER = re.compile(r"\$\{source\.(.*?)\}")


class SchemaEvolution(StrEnum):
    NONE = "none"
    BASIC = "basic"


class PrimaryKeyMode(StrEnum):
    """Debezium's ``primary.key.mode``; ``record_header`` is refused (headers are not read here)."""

    NONE = "none"
    KAFKA = "kafka"
    RECORD_KEY = "record_key"
    RECORD_VALUE = "record_value"


@dataclass(frozen=True)
class OnlyDefault(Kind[str]):
    """An option whose one accepted value is Debezium's default (a class name this project implements)."""

    value: str
    why: str

    def parse(self, text: str) -> str:
        if text.strip() != self.value:
            raise ValueError(f"expected {self.value} ({self.why}), got {text!r}")
        return self.value


class FieldList(Kind[tuple[tuple[str | None, str], ...]]):
    """``field.include.list``: ``field`` or ``topic:field`` entries, matched exactly (as Debezium's
    ``FieldFilterFactory`` does, its docs' "regular expressions" notwithstanding)."""

    def parse(self, text: str) -> tuple[tuple[str | None, str], ...]:
        entries: list[tuple[str | None, str]] = []
        for entry in (part.strip() for part in text.split(",") if part.strip()):
            parts = [part.strip() for part in entry.split(":")]
            if len(parts) == 1:
                entries.append((None, parts[0]))
            elif len(parts) == 2 and all(parts):
                entries.append((parts[0], parts[1]))
            else:
                raise ValueError(f"expected field or topic:field entries, got {entry!r}")
        return tuple(entries)

    def show(self, value: tuple[tuple[str | None, str], ...]) -> str:
        return ",".join(field if topic is None else f"{topic}:{field}" for topic, field in value)


_NO_POOL = "one connection per run here, no pool"
_OTHER_DIALECT = "for another database's dialect; this sink writes MariaDB"


@dataclass(frozen=True, kw_only=True)
class DebeziumSinkConfig(SinkConfig):
    """A validated Debezium ``JdbcSinkConnector`` body."""

    TABLE_FORMAT_OPTION: ClassVar[str] = "collection.name.format"
    PK_MODE_OPTION: ClassVar[str] = "primary.key.mode"
    PK_FIELDS_OPTION: ClassVar[str] = "primary.key.fields"
    AUTO_CREATE_OFF: ClassVar[str] = "schema.evolution=none"
    AUTO_EVOLVE_OFF: ClassVar[str] = "schema.evolution=none"
    NO_EFFECT: ClassVar[dict[str, str]] = {
        "connection.provider": _NO_POOL,
        "connection.pool.min_size": _NO_POOL,
        "connection.pool.max_size": _NO_POOL,
        "connection.pool.acquire_increment": _NO_POOL,
        "connection.pool.timeout": _NO_POOL,
        "connection.restart.on.errors": "a transient error (lost connection, deadlock) always retries the batch on a "
        "new connection here, up to `flush.max.retries`",
        "hibernate.*": "there is no Hibernate here: statements are MariaDB's own",
        "dialect.*": _OTHER_DIALECT,
        "quote.identifiers": "identifiers are always quoted here (as with `true`); names that need no quotes are the "
        "same either way",
        "use.reduction.buffer": "each batch is one transaction whose end state is the same with or without merging "
        "changes to one key",
        "collection.table.format": "declared by Debezium 3.5 but read by none of its code",
    }

    connection_user: str | None = option("connection.username", Text(), REQUIRED, "database user")
    db_timezone: str = option(
        "use.time.zone",
        TimeZone(),
        "UTC",
        "zone of the session: `ZonedTimestamp` values (TIMESTAMP columns) are written as the same instant; "
        "`Timestamp`/`MicroTimestamp` (DATETIME) keep their wall time whatever the zone, as in Debezium",
        aliases=("database.time_zone",),
    )
    collection_name_format: str = option(
        "collection.name.format",
        Text(),
        TOPIC_PLACEHOLDER,
        "the target table: `${topic}` is the topic with `.` replaced by `_`; `${source.db}`, `${source.table}` (any "
        "string field of the event's `source` block) are taken from each change event",
        aliases=("table.name.format",),
    )
    collection_naming_strategy: str = option(
        "collection.naming.strategy",
        OnlyDefault("io.debezium.sink.naming.DefaultCollectionNamingStrategy", "the naming this project implements"),
        "io.debezium.sink.naming.DefaultCollectionNamingStrategy",
        "how `collection.name.format` is read; only Debezium's default",
        aliases=("table.naming.strategy",),
    )
    column_naming_strategy: str = option(
        "column.naming.strategy",
        OnlyDefault("io.debezium.connector.jdbc.naming.DefaultColumnNamingStrategy", "columns named as the fields"),
        "io.debezium.connector.jdbc.naming.DefaultColumnNamingStrategy",
        "column names are the field names; only Debezium's default",
    )
    primary_key_mode: PrimaryKeyMode = option(
        "primary.key.mode",
        Choice(PrimaryKeyMode),
        PrimaryKeyMode.NONE,
        "`none`, `kafka` (`__connect_topic`, `__connect_partition`, `__connect_offset`), `record_key` (the event "
        "key), `record_value` (`primary.key.fields` of the row); `record_header` is not supported here",
    )
    primary_key_fields: tuple[str, ...] = option(
        "primary.key.fields",
        Csv(),
        (),
        "the key's fields (all of the key, or for `record_value` all of the row, when empty)",
    )
    delete_enabled: bool = option(
        "delete.enabled",
        Bool(),
        False,
        "delete events (`op=d`) and tombstones delete the row; off, they are skipped; needs `primary.key.mode` "
        "`record_key` or `record_value`",
    )
    truncate_enabled: bool = option(
        "truncate.enabled", Bool(), False, "truncate events (`op=t`) empty the table; off, they are skipped"
    )
    schema_evolution: SchemaEvolution = option(
        "schema.evolution",
        Choice(SchemaEvolution),
        SchemaEvolution.NONE,
        "`basic` creates missing tables and adds columns for new fields (what `auto.create` and `auto.evolve` do in "
        "the JDBC sink); `none` writes into tables as they are",
    )
    field_include_list: tuple[tuple[str | None, str], ...] = option(
        "field.include.list", FieldList(), (), "fields to write, as `field` or `topic:field` (all when empty)"
    )
    field_exclude_list: tuple[tuple[str | None, str], ...] = option(
        "field.exclude.list",
        FieldList(),
        (),
        "fields not to write, as `field` or `topic:field`; wins over the include list",
    )
    batch_size: int = option(
        "batch.size", Int(1), 500, "records per database transaction, written with multi-row statements"
    )
    max_retries: int = option(
        "flush.max.retries",
        Int(0),
        5,
        "retries of a batch after a transient database error (deadlock, lock wait timeout, lost connection), whole, "
        "on a new connection",
    )
    retry_backoff_ms: int = option("flush.retry.delay.ms", Int(0), 1000, "wait between those retries")
    cloud_events_schema_name_pattern: str = option(
        "cloud.events.schema.name.pattern",
        OnlyDefault(r".*CloudEvents\.Envelope$", "CloudEvents records are not read here"),
        r".*CloudEvents\.Envelope$",
        "only Debezium's default",
    )

    @property
    def pk_mode(self) -> PkMode:
        return PkMode(self.primary_key_mode.value)

    @property
    def pk_fields(self) -> tuple[str, ...]:
        """``primary.key.fields``; Debezium ignores them with ``kafka``, whose columns have fixed names."""
        return () if self.primary_key_mode is PrimaryKeyMode.KAFKA else self.primary_key_fields

    @property
    def auto_create(self) -> bool:
        return self.schema_evolution is SchemaEvolution.BASIC

    @property
    def auto_evolve(self) -> bool:
        return self.schema_evolution is SchemaEvolution.BASIC

    @property
    def reads_change_events(self) -> bool:
        return True

    @property
    def table_format(self) -> str:
        return self.collection_name_format

    @property
    def table_from_events(self) -> bool:
        return SOURCE_PLACEHOLDER.search(self.collection_name_format) is not None

    def validate(self) -> None:
        super().validate()
        keyed = (PrimaryKeyMode.RECORD_KEY, PrimaryKeyMode.RECORD_VALUE)
        if self.delete_enabled and self.primary_key_mode not in keyed:
            raise self.fail(
                "delete.enabled",
                "requires primary.key.mode=record_key or record_value (a delete needs a key to delete by)",
            )
        if self.insert_mode in (InsertMode.UPSERT, InsertMode.UPDATE) and self.primary_key_mode is PrimaryKeyMode.NONE:
            raise self.fail(
                "primary.key.mode",
                f"insert.mode={self.insert_mode} needs a primary key: expected kafka, record_key or record_value",
            )

    def table_name(self, topic: str, source: dict[str, Any] | None) -> str:
        """``collection.name.format`` for a record of ``topic`` whose event has the ``source`` block given.

        Raises ``ValueError`` when a ``${source.<field>}`` is not a string field of ``source``.
        """
        table = self.collection_name_format.replace(TOPIC_PLACEHOLDER, topic.replace(".", "_"))

        def field(match: re.Match[str]) -> str:
            value = (source or {}).get(match[1])
            if not isinstance(value, str):
                raise ValueError(
                    f"collection.name.format {self.collection_name_format!r}: the event's source block has no "
                    f"string field {match[1]!r}"
                )
            return value

        return SOURCE_PLACEHOLDER.sub(field, table)

    def table_for(self, topic: str) -> str:
        """The table of ``topic``: ``${source.db}``/``${source.table}`` are read from the topic's last two
        names, as Debezium's MariaDB connector names topics ``<topic.prefix>.<db>.<table>``."""
        *_, db, table = ["", "", *topic.split(".")]
        return self.table_name(topic, {"db": db, "table": table})

    def table_problem(self, topic: str) -> str | None:
        if self.table_from_events:
            return None  # known per event, checked when one arrives
        return super().table_problem(topic)

    def field_written(self, topic: str, field_name: str, in_key: bool) -> bool:
        """Debezium's field filter: the exclude list if given, else the include list, else every field."""
        entries = self.field_exclude_list or self.field_include_list
        if not entries:
            return True
        listed = any(name == field_name and entry_topic in (None, topic) for entry_topic, name in entries)
        return not listed if self.field_exclude_list else listed
