"""Both tables of a comparison as ``information_schema`` describes them.

Columns come as the shared :class:`TableColumn`; the comparison also needs each column's
collation (key ranges must order strings the same way on both sides) and the unique keys (the
target must have an index on the key, or every chunk would scan the whole target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema
from mungmo_pipelines.core.mariadb.session import Cursor


@dataclass(frozen=True)
class TableDescription:
    """A table's schema plus what ordering and indexing its key needs."""

    schema: TableSchema
    collations: dict[str, str | None]
    # Every unique index (the primary key first when there is one), as column-name tuples.
    unique_keys: tuple[tuple[str, ...], ...]

    @property
    def label(self) -> str:
        return f"{self.schema.database}.{self.schema.name}"

    def column(self, name: str) -> TableColumn | None:
        return self.schema.column(name)

    def has_unique_key(self, columns: Sequence[str]) -> bool:
        """Whether a unique index has exactly these columns in this order: key ranges then read one
        row per key through that index."""
        wanted = tuple(c.lower() for c in columns)
        return any(tuple(c.lower() for c in key) == wanted for key in self.unique_keys)


def describe_table(cursor: Cursor, database: str, table: str) -> TableDescription | None:
    """The table, or ``None`` when it does not exist."""
    columns = catalog.table_columns(cursor, table, database)
    if not columns:
        return None
    indexes = catalog.table_indexes(cursor, table, unique_only=True, database=database)
    return TableDescription(
        schema=TableSchema(database, table, columns, indexes.get("PRIMARY", ())),
        collations={column.name: column.collation for column in columns},
        unique_keys=tuple(indexes.values()),
    )
