"""A JDBC source and sink connector pair as a comparison: which tables, columns and key, in which
zone, carried how, and what the source's mode explains.

Read off the connector bodies the way the connectors use them: the target table is the sink's
``table.name.format`` of the source's topic; the compared columns are the sink's
``fields.whitelist`` (all when empty) plus the key; the key is the sink's ``pk.fields`` for
``record_value``/``record_key`` (else the source's primary key: with ``pk.mode=kafka`` or ``none``
the target has no index on it, so the check falls back to counting and says why); wall-clock
times are compared in the sink's ``db.timezone`` and read in the source's.
"""

from __future__ import annotations

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.consistency.expressions import jdbc_forms
from mungmo_pipelines.core.consistency.plan import TableSpec
from mungmo_pipelines.core.consistency.policy import ModePolicy
from mungmo_pipelines.core.source.offsets import TimestampIncrementingOffset


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


def jdbc_policy(
    source: JdbcSourceConfig, incrementing_column: str | None = None, offset: TimestampIncrementingOffset | None = None
) -> ModePolicy:
    """The source's mode; in incrementing mode also its column (as the source resolved it) and stored
    offset, so a row the source has not sent yet is in flight rather than missing.

    Timestamp modes get no offset rule: their offset is an instant, and after the check's wait for
    a fresh source run every row up to it has been sent, so a missing row then is a defect."""
    if source.mode == "incrementing":
        column = incrementing_column or source.incrementing_column or None
        return ModePolicy("incrementing", column, offset.incrementing if offset else None)
    return ModePolicy(source.mode)
