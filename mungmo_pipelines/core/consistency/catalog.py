"""Both tables of a comparison as ``information_schema`` describes them.

Columns come as the shared :class:`TableColumn`; the comparison also needs each column's
collation (key ranges must order strings the same way on both sides) and the unique keys (the
target must have an index on the key, or every chunk would scan the whole target).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


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


def describe_table(query: Query, database: str, table: str) -> TableDescription | None:
    """The table, or ``None`` when it does not exist."""
    rows = query(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, "
        "DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    if not rows:
        return None
    columns = tuple(
        TableColumn(
            name=r[0],
            data_type=r[1].lower(),
            column_type=r[2],
            nullable=r[3] == "YES",
            numeric_precision=r[4],
            numeric_scale=r[5],
            datetime_precision=r[6],
            character_maximum_length=r[7],
            charset=r[8],
            auto_increment="auto_increment" in (r[10] or "").lower(),
        )
        for r in rows
    )
    index_rows = query(
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
        "ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        (database, table),
    )
    indexes: dict[str, tuple[str, ...]] = {}
    for index, column in index_rows:
        indexes[index] = (*indexes.get(index, ()), column)
    primary = indexes.get("PRIMARY", ())
    return TableDescription(
        schema=TableSchema(database, table, columns, primary),
        collations={r[0]: r[9] for r in rows},
        unique_keys=tuple(indexes.values()),
    )
