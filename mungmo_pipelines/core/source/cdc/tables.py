"""The captured tables: which they are, the columns kept of each, their encoders and key-ordered reads.

Snapshot reads (initial and incremental) and streamed rows of one table shape share a
:class:`CapturedTable`: the table's schema after ``column.include.list``/``exclude.list``, the
positions of the kept columns in a full row, and the Debezium encoder for that shape.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.connect.debezium import ChangeEventEncoder
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.mariadb.columns import TableSchema
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.mariadb.select_values import changed_columns
from mungmo_pipelines.core.mariadb.session import Cursor

Row = Sequence[Any]
Key = tuple[Any, ...]


def qualified(database: str, table: str) -> str:
    return f"{database}.{table}"


def list_captured_tables(cursor: Cursor, config: DebeziumSourceConfig) -> list[tuple[str, str]]:
    """Every base table the connector captures, by database then name (code-point order, the same every run)."""
    cursor.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'")
    return sorted((str(db), str(name)) for db, name in cursor.fetchall() if config.captures(str(db), str(name)))


@dataclass(frozen=True)
class CapturedTable:
    """One table shape as records carry it: kept columns, their positions in a full row, the encoder."""

    full: TableSchema
    schema: TableSchema
    kept: tuple[int, ...] | None  # None: every column is kept
    encoder: ChangeEventEncoder

    @property
    def name(self) -> str:
        return qualified(self.schema.database, self.schema.name)

    @property
    def topic(self) -> str:
        return self.encoder.topic

    def project(self, row: Row) -> Row:
        kept = self.kept
        return row if kept is None else tuple(row[i] for i in kept)

    @functools.cached_property
    def key_positions(self) -> tuple[int, ...]:
        """Positions of the primary-key columns in a projected row (a table without a key: all)."""
        names = [c.name for c in self.schema.columns]
        return tuple(names.index(k) for k in self.schema.primary_key) or tuple(range(len(names)))

    def key_of(self, row: Row) -> Key:
        """The primary-key values of a projected row (a table without a key: the whole row)."""
        return tuple(row[i] for i in self.key_positions)

    def select_sql(self) -> str:
        return ", ".join(quote(c.name) for c in self.schema.columns)

    def from_sql(self) -> str:
        return f"{quote(self.schema.database)}.{quote(self.schema.name)}"

    def order_sql(self, descending: bool = False) -> str:
        direction = " DESC" if descending else ""
        return ", ".join(quote(k) + direction for k in self.schema.primary_key)

    def after_key_sql(self, key: Key) -> tuple[str, list[Any]]:
        """``(a > x) OR (a = x AND b > y) ...``: rows after ``key`` in primary-key order, as a range
        condition the optimizer reads from the index (a row comparison ``(a, b) > (x, y)`` may scan)."""
        return _compare_sql(self.schema.primary_key, key, ">")

    def up_to_key_sql(self, key: Key) -> tuple[str, list[Any]]:
        """Rows up to and including ``key`` in primary-key order."""
        condition, params = _compare_sql(self.schema.primary_key, key, "<")
        equal = " AND ".join(f"{quote(k)} = %s" for k in self.schema.primary_key)
        return f"({condition}) OR ({equal})", [*params, *key]


def _compare_sql(columns: Sequence[str], key: Key, operator: str) -> tuple[str, list[Any]]:
    if len(columns) != len(key):
        raise ValueError(f"a key of {len(key)} values for primary key {list(columns)}")
    clauses, params = [], []
    for i, column in enumerate(columns):
        equal = [f"{quote(c)} = %s" for c in columns[:i]]
        clauses.append("(" + " AND ".join([*equal, f"{quote(column)} {operator} %s"]) + ")")
        params += [*key[:i], key[i]]
    return " OR ".join(clauses), params


class TableShapes:
    """Encoders per table shape, built once: from a binlog table map (by its object) or the catalog."""

    CACHE_LIMIT = 4096

    def __init__(self, config: DebeziumSourceConfig, run_id: str, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.run_id = run_id
        self.clock = clock
        self._keep = config.column_filter()
        # id(table map schema) -> (the schema, kept alive so its id is not reused; the captured table)
        self._by_object: dict[int, tuple[TableSchema, CapturedTable]] = {}

    def captured(self, full: TableSchema) -> CapturedTable:
        """The captured table for a full schema (a table map's, completed, or the catalog's)."""
        found = self._by_object.get(id(full))
        if found is not None:
            return found[1]
        kept: tuple[int, ...] | None = None
        schema = full
        if self._keep is not None:
            keep = self._keep
            positions = tuple(i for i, c in enumerate(full.columns) if keep(full.database, full.name, c.name))
            if len(positions) != len(full.columns):
                kept = positions
                names = {full.columns[i].name for i in positions}
                schema = replace(
                    full,
                    columns=tuple(full.columns[i] for i in positions),
                    primary_key=tuple(k for k in full.primary_key if k in names),
                )
        try:
            encoder = ChangeEventEncoder(schema, self.config.record_options, run_id=self.run_id, clock=self.clock)
        except ValueError as err:
            raise SourceError(f"connector {self.config.name!r}, table {full.database}.{full.name}: {err}") from err
        table = CapturedTable(full, schema, kept, encoder)
        if len(self._by_object) >= self.CACHE_LIMIT:
            self._by_object.clear()
        self._by_object[id(full)] = (full, table)
        return table


def select_row_converter(schema: TableSchema) -> Callable[[Row], Row]:
    """A ``SELECT`` row (text protocol, session time zone UTC) to the value contract, touching only
    the columns whose values differ (BIT, FLOAT, temporal types)."""
    changed = changed_columns(schema)
    if not changed:
        return lambda row: row

    def convert(row: Row) -> Row:
        values = list(row)
        for i, function in changed:
            value = values[i]
            if value is not None:
                values[i] = function(value)
        return values

    return convert
