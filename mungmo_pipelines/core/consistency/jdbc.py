"""A JDBC source and sink connector pair as a comparison: which tables, columns and key, in which
zone, carried how, and what the source's mode explains and its stored offset has sent.

Read off the connector bodies the way the connectors use them: the target table is the sink's
``table.name.format`` of the source's topic; the compared columns are the sink's
``fields.whitelist`` (all when empty) plus the key; the key is the sink's ``pk.fields`` for
``record_value``/``record_key`` (else the source's primary key: with ``pk.mode=kafka`` or ``none``
the target has no index on it, so the check falls back to counting and says why); wall-clock
times are compared in the sink's ``db.timezone`` and read in the source's.

What the source has sent is its stored offset, as its querier reads it: in incrementing mode the
rows with ids up to the offset; in timestamp modes the rows whose first non-NULL timestamp column
is at or before the offset's instant (and, in timestamp+incrementing, at that instant with ids up
to the offset's). Bulk mode stores no offset: any row may have changed since its last run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig, SourceMode
from mungmo_pipelines.core.connect.schema import EPOCH
from mungmo_pipelines.core.consistency.catalog import TableDescription
from mungmo_pipelines.core.consistency.expressions import jdbc_forms
from mungmo_pipelines.core.consistency.plan import TableSpec
from mungmo_pipelines.core.consistency.policy import ModePolicy
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.mariadb.columns import TableColumn
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.source.offsets import TimestampIncrementingOffset

EVERY_ROW = "TRUE"


def jdbc_table_spec(source: JdbcSourceConfig, sink: JdbcSinkConfig, table: str) -> TableSpec:
    """The comparison of ``table`` (a table the source copies) with the table the sink writes it to."""
    columns = {name: name for name in sink.fields_whitelist} if sink.fields_whitelist else None
    key = sink.pk_fields if sink.pk_mode in ("record_value", "record_key") else ()
    return TableSpec(
        source_database=source.connection.database,
        source_table=table,
        target_database=sink.connection.database,
        target_table=sink.table_for(source.topic_for(table)),
        columns=columns,
        key=tuple(key),
        zone=sink.db_timezone,
        forms=jdbc_forms(source.db_timezone),
    )


@dataclass(frozen=True)
class StoredOffsetRule:
    """The JDBC source's stored offset as a :class:`~mungmo_pipelines.core.consistency.policy.SentRule`."""

    mode: SourceMode
    incrementing_column: str  # "" = the table's AUTO_INCREMENT column, as the source resolves it
    timestamp_columns: tuple[str, ...]
    offset: TimestampIncrementingOffset | None
    source_zone: str  # the source's db.timezone: DATETIME columns hold wall-clock times in it

    def describe(self) -> str:
        if self.mode is SourceMode.BULK:
            return "bulk mode stores no offset: the row may have changed since the source's last run"
        if self.offset is None:
            return "the source has stored no offset yet: it has sent nothing"
        return f"beyond the source's stored offset ({self._offset_text()}): not sent yet"

    def _offset_text(self) -> str:
        assert self.offset is not None
        parts = []
        if self.offset.timestamp is not None:
            parts.append(f"{', '.join(self.timestamp_columns)} {self.offset.timestamp.isoformat()}")
        if self.offset.incrementing is not None:
            parts.append(f"{self.incrementing_column or 'id'} {self.offset.incrementing}")
        return ", ".join(parts)

    def unsent_sql(self, source: TableDescription) -> str:
        offset = self.offset
        if self.mode is SourceMode.BULK or offset is None:
            return EVERY_ROW
        after_id = ""
        if self.mode.uses_incrementing and offset.incrementing is not None:
            after_id = f"{quote(self._incrementing(source).name)} > {int(offset.incrementing)}"
        if not self.mode.uses_timestamp:
            return after_id or EVERY_ROW
        if offset.timestamp is None:
            return EVERY_ROW
        branches = []
        for name in self.timestamp_columns:
            column = _column(source, name, "timestamp column")
            after, at = self._time_tests(column, offset.timestamp)
            unsent = after
            if self.mode is SourceMode.TIMESTAMP_INCREMENTING:  # rows at the instant: those after its id
                unsent += f" OR ({at} AND {after_id})" if after_id else f" OR {at}"
            branches.append(f"WHEN {quote(column.name)} IS NOT NULL THEN {unsent}")
        # A row whose timestamp columns are all NULL is never selected by the source.
        return f"CASE {' '.join(branches)} ELSE TRUE END"

    def _incrementing(self, source: TableDescription) -> TableColumn:
        if self.incrementing_column:
            return _column(source, self.incrementing_column, "incrementing column")
        found = next((c for c in source.schema.columns if c.auto_increment), None)
        if found is None:
            raise ConsistencyError(
                f"source table {source.label} has no AUTO_INCREMENT column and the source names no "
                "incrementing.column.name"
            )
        return found

    def _time_tests(self, column: TableColumn, instant: dt.datetime) -> tuple[str, str]:
        """SQL for "after the offset's instant" and "at it" on ``column``.

        TIMESTAMP columns are compared as epoch seconds (``UNIX_TIMESTAMP`` reads their stored UTC
        value whatever the session's zone); DATETIME columns as the wall-clock time in the source's
        ``db.timezone``, as the source's querier compares them."""
        ref = quote(column.name)
        if column.data_type == "timestamp":
            micros = (instant - EPOCH) // dt.timedelta(microseconds=1)
            literal = f"{micros // 1_000_000}.{micros % 1_000_000:06}"
            return f"UNIX_TIMESTAMP({ref}) > {literal}", f"UNIX_TIMESTAMP({ref}) = {literal}"
        if column.data_type != "datetime":
            raise ConsistencyError(
                f"timestamp column {column.name!r} is {column.column_type}: expected DATETIME or TIMESTAMP"
            )
        wall = instant.astimezone(ZoneInfo(self.source_zone)).replace(tzinfo=None)
        literal = f"'{wall:%Y-%m-%d %H:%M:%S.%f}'"
        return f"{ref} > {literal}", f"{ref} = {literal}"


def _column(source: TableDescription, name: str, role: str) -> TableColumn:
    """``name`` in ``source``, case-insensitively when that is unambiguous (as the source resolves it)."""
    found = source.column(name)
    if found is None:
        folded = [c for c in source.schema.columns if c.name.lower() == name.lower()]
        found = folded[0] if len(folded) == 1 else None
    if found is None:
        raise ConsistencyError(f"{role} {name!r} is not a column of source table {source.label}")
    return found


def jdbc_policy(source: JdbcSourceConfig, offset: TimestampIncrementingOffset | None = None) -> ModePolicy:
    """The source's mode, and its stored ``offset`` (read from its offsets topic) as what it has sent."""
    return ModePolicy(
        str(source.mode),
        StoredOffsetRule(source.mode, source.incrementing_column, source.timestamp_columns, offset, source.db_timezone),
    )
