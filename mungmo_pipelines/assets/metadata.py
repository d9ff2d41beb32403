"""The metadata Dagster's own integrations (dagster-sling, dagster-dlt) put on table assets.

``dagster/table_name``, ``dagster/column_schema`` and ``dagster/row_count`` through
``TableMetadataSet``, ``dagster/column_lineage`` from each column to the upstream column it is
copied from, owners from ``MUNGMO_ASSET_OWNERS``, and a freshness policy for target tables
derived from the producing source's ``poll.interval.ms``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from dagster import (
    AssetKey,
    FreshnessPolicy,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)
from dagster._core.definitions.metadata import TableMetadataSet  # as dagster-dlt and dagster-dbt import it

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.mariadb import columns

# A replicated table is written only when its source changed, so the windows are generous:
# WARN after 720 poll intervals without a write (an hour at Kafka Connect's default 5 s), FAIL
# after 24 times that (a day). Dagster refuses windows under a minute.
FRESHNESS_WARN_POLLS = 720
FRESHNESS_FAIL_POLLS = 24 * FRESHNESS_WARN_POLLS
MIN_FRESHNESS_WINDOW = timedelta(minutes=1)


def asset_owners() -> list[str]:
    """``MUNGMO_ASSET_OWNERS`` as Dagster owners; a malformed entry fails loading, naming the variable."""
    owners = [owner.strip() for owner in (settings.ASSET_OWNERS.get() or "").split(",") if owner.strip()]
    bad = [owner for owner in owners if not (owner.startswith("team:") and len(owner) > 5) and "@" not in owner]
    if bad:
        raise ValueError(
            f"{settings.ASSET_OWNERS.name}: expected comma-separated e-mail addresses or team:<name>, got {bad}"
        )
    return owners


def column_schema(schema: columns.TableSchema) -> TableSchema:
    """The table's columns as Dagster shows them: MariaDB's column type, nullability, the primary key."""
    single_key = len(schema.primary_key) == 1
    return TableSchema(
        columns=[
            TableColumn(
                name=column.name,
                type=column.column_type,
                constraints=TableColumnConstraints(
                    nullable=column.nullable,
                    unique=single_key and column.name == schema.primary_key[0],
                    other=["primary key"] if column.name in schema.primary_key else [],
                ),
            )
            for column in schema.columns
        ]
    )


def copied_columns(upstream: AssetKey, names: Iterable[str], upstream_names: Iterable[str]) -> TableColumnLineage:
    """Each of ``names`` copied from the same-named column of ``upstream`` (case-insensitively, as MariaDB)."""
    by_folded = {name.lower(): name for name in upstream_names}
    return TableColumnLineage(
        {
            name: [TableColumnDep(asset_key=upstream, column_name=by_folded[name.lower()])]
            for name in names
            if name.lower() in by_folded
        }
    )


def table_metadata(
    schema: columns.TableSchema, row_count: int | None = None, lineage: TableColumnLineage | None = None
) -> dict[str, Any]:
    return dict(
        TableMetadataSet(
            table_name=f"{schema.database}.{schema.name}",
            column_schema=column_schema(schema),
            row_count=row_count,
            column_lineage=lineage if lineage and lineage.deps_by_column else None,
        )
    )


def table_name_metadata(database: str, table: str) -> dict[str, Any]:
    """What is known of a table when the definitions load: its name."""
    return dict(TableMetadataSet(table_name=f"{database}.{table}"))


def target_freshness(poll_interval_ms: int) -> FreshnessPolicy:
    """A target table's freshness from the poll interval of the source that fills its topic."""
    poll = timedelta(milliseconds=poll_interval_ms)
    return FreshnessPolicy.time_window(
        fail_window=max(MIN_FRESHNESS_WINDOW * 2, poll * FRESHNESS_FAIL_POLLS),
        warn_window=max(MIN_FRESHNESS_WINDOW, poll * FRESHNESS_WARN_POLLS),
    )
