"""Target tables: ``auto.create``, ``auto.evolve`` and the checks that keep writes lossless.

All DDL runs before a batch's transaction opens, because MariaDB commits any open
transaction on ``CREATE``/``ALTER``: rows written before an implicit commit would be durable
without the offsets that cover them. DDL here is idempotent, so a crash between it and the
batch's commit is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pymysql.connections import Connection as PyMySQLConnection

from mungmo_pipelines.core.config.sink import InsertMode, SinkConfig
from mungmo_pipelines.core.connect.schema import describe_connect
from mungmo_pipelines.core.connect.sink_types import column_ddl, column_holds, sink_type, value_literal
from mungmo_pipelines.core.errors import ConnectValueError, TableSchemaError, UnsupportedColumnType
from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.columns import TableColumn
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.sink.records import Shape

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
# Engines that roll back: rows and offsets must commit or vanish together.
TRANSACTIONAL_ENGINES = frozenset({"InnoDB", "ROCKSDB"})


def fillable(column: TableColumn) -> bool:
    """Whether an INSERT that leaves this column out still succeeds."""
    return column.nullable or column.default is not None or column.auto_increment or column.generated


@dataclass(frozen=True)
class TargetTable:
    """A table as ``information_schema`` describes it; column names are matched case-insensitively."""

    database: str
    name: str
    engine: str
    columns: dict[str, TableColumn]
    unique_keys: dict[str, tuple[str, ...]]

    def column(self, name: str) -> TableColumn | None:
        return self.columns.get(name.lower())

    def label(self) -> str:
        return f"{self.database}.{self.name}"


def describe_target(conn: PyMySQLConnection, table: str) -> TargetTable | None:
    with conn.cursor() as cursor:
        engine = catalog.table_engine(cursor, table)
        if engine is None:
            return None
        columns = {column.name.lower(): column for column in catalog.table_columns(cursor, table)}
        unique_keys = catalog.table_indexes(cursor, table, unique_only=True)
        database = catalog.current_database(cursor)
    return TargetTable(database, table, engine, columns, unique_keys)


def default_sql(schema: dict[str, Any], zone: dt.tzinfo) -> str:
    """`` DEFAULT <literal>`` for a field whose Connect schema has a default the column can take, else ``""``
    (Debezium gives a TIMESTAMP's ``CURRENT_TIMESTAMP`` the epoch, which no TIMESTAMP column holds)."""
    default = schema.get("default")
    if default is None:
        return ""
    default_ok = sink_type(schema).default_ok
    if default_ok is not None and not default_ok(default):
        return ""
    return f" DEFAULT {value_literal(schema, zone)(default)}"


def column_definition(schema: dict[str, Any], is_key: bool, zone: dt.tzinfo) -> str:
    nullable = bool(schema.get("optional", False)) and not is_key
    return (
        f"{quote(schema['field'])} {column_ddl(schema, is_key)} {'NULL' if nullable else 'NOT NULL'}"
        f"{'' if is_key else default_sql(schema, zone)}"
    )


class NarrowColumn(NamedTuple):
    position: int  # of the value in the shape's rows
    name: str
    column_type: str
    digits: int  # fractional-second digits the column keeps


def narrow_columns(target: TargetTable, shape: Shape) -> tuple[NarrowColumn, ...]:
    """Temporal columns that keep fewer fractional-second digits than the field's values carry: MariaDB
    drops the rest without a warning, even in strict mode, so the sink checks those values itself."""
    found = []
    for index, field in enumerate(shape.fields):
        digits = sink_type(field).fraction_digits
        column = target.column(field["field"])
        kept = column.datetime_precision if column is not None else None
        if digits and kept is not None and kept < digits:
            assert column is not None
            found.append(NarrowColumn(index, column.name, column.column_type.upper(), kept))
    return tuple(found)


class TableManager:
    """Makes target tables fit each record shape once per run, before any row of it is written."""

    def __init__(self, config: SinkConfig, zone: dt.tzinfo) -> None:
        self.config = config
        self.zone = zone
        self._tables: dict[str, TargetTable | None] = {}
        self._ready: set[Shape] = set()
        self._narrowed: dict[Shape, tuple[NarrowColumn, ...]] = {}

    def narrowed(self, shape: Shape) -> tuple[NarrowColumn, ...]:
        """The columns of a prepared shape with fewer fractional-second digits than its values can carry."""
        return self._narrowed.get(shape, ())

    def exists(self, table: str) -> bool:
        return self._tables.get(table) is not None

    def truncate(self, conn: PyMySQLConnection, table: str) -> bool:
        """``TRUNCATE TABLE`` (DDL: it commits); ``False`` when the table does not exist, so nothing to empty."""
        if self._describe(conn, table) is None:
            return False
        with conn.cursor() as cursor:
            cursor.execute(f"TRUNCATE TABLE {quote(table)}")
        return True

    def prepare(self, conn: PyMySQLConnection, shapes: Sequence[Shape]) -> None:
        """Create, evolve and check the tables of ``shapes`` (outside any transaction)."""
        for shape in shapes:
            if shape in self._ready:
                continue
            try:
                self._prepare(conn, shape)
            except (UnsupportedColumnType, ConnectValueError) as err:
                raise TableSchemaError(f"connector {self.config.name!r}: table {shape.table!r}: {err}") from None
            self._ready.add(shape)

    def _describe(self, conn: PyMySQLConnection, table: str, refresh: bool = False) -> TargetTable | None:
        if refresh or table not in self._tables:
            self._tables[table] = describe_target(conn, table)
        return self._tables[table]

    def _prepare(self, conn: PyMySQLConnection, shape: Shape) -> None:
        config = self.config
        target = self._describe(conn, shape.table)
        if target is None:
            if shape.delete:
                return  # nothing to delete from a table that does not exist yet
            if not config.auto_create:
                raise TableSchemaError(
                    f"connector {config.name!r}: table {config.connection.database}.{shape.table} does not exist "
                    f"and {config.AUTO_CREATE_OFF}"
                )
            definitions = [column_definition(f, f["field"] in shape.key_columns, self.zone) for f in shape.fields]
            if shape.key_columns:
                definitions.append(f"PRIMARY KEY ({', '.join(quote(k) for k in shape.key_columns)})")
            with conn.cursor() as cursor:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {quote(shape.table)} ({', '.join(definitions)}) {TABLE_OPTIONS}"
                )
            target = self._describe(conn, shape.table, refresh=True)
            assert target is not None
        if target.engine not in TRANSACTIONAL_ENGINES:
            raise TableSchemaError(
                f"connector {config.name!r}: table {target.label()} uses engine {target.engine or 'none (a view?)'}, "
                "which cannot roll back a batch, so rows could be written without the offsets that cover them; "
                "use InnoDB"
            )
        missing = [f for f in shape.fields if target.column(f["field"]) is None]
        if missing:
            self._evolve(conn, target, shape, missing)
            target = self._describe(conn, shape.table, refresh=True)
            assert target is not None
        self._check_types(target, shape)
        self._narrowed[shape] = () if shape.delete else narrow_columns(target, shape)
        if not shape.delete and config.insert_mode is not InsertMode.UPDATE:
            self._check_unwritten_columns(target, shape)
        if not shape.delete and config.insert_mode is InsertMode.UPSERT:
            self._check_upsert_keys(target, shape)

    def _evolve(
        self, conn: PyMySQLConnection, target: TargetTable, shape: Shape, missing: list[dict[str, Any]]
    ) -> None:
        config = self.config
        names = ", ".join(f["field"] for f in missing)
        if not config.auto_evolve:
            raise TableSchemaError(
                f"connector {config.name!r}: table {target.label()} lacks column(s) {names} that the records carry, "
                f"and {config.AUTO_EVOLVE_OFF}"
            )
        for field in missing:
            if field["field"] in shape.key_columns:
                raise TableSchemaError(
                    f"connector {config.name!r}: table {target.label()} lacks key column {field['field']!r} "
                    f"({describe_connect(field)}); the sink adds value columns, never primary-key columns"
                )
            if not field.get("optional", False) and field.get("default") is None:
                raise TableSchemaError(
                    f"connector {config.name!r}: table {target.label()}: cannot add column {field['field']!r} "
                    f"({column_ddl(field, False)} for {describe_connect(field)}): the field is required and has no "
                    "default, so existing rows would get a value the records never had"
                )
        additions = ", ".join(f"ADD COLUMN {column_definition(f, False, self.zone)}" for f in missing)
        with conn.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(shape.table)} {additions}")

    def _check_types(self, target: TargetTable, shape: Shape) -> None:
        for field in shape.fields:
            existing = target.column(field["field"])
            if existing is None:
                raise TableSchemaError(
                    f"connector {self.config.name!r}: table {target.label()} has no column {field['field']!r}"
                )
            try:
                holds = column_holds(field, existing)
            except UnsupportedColumnType:
                holds = False
            if not holds:
                raise TableSchemaError(
                    f"connector {self.config.name!r}: table {target.label()} column {existing.name!r} is "
                    f"{existing.column_type.upper()}, but the records now carry {describe_connect(field)} for "
                    f"it (which needs {column_ddl(field, field['field'] in shape.key_columns)}): a type change "
                    "auto.evolve does not make; alter the column yourself"
                )

    def _check_unwritten_columns(self, target: TargetTable, shape: Shape) -> None:
        written = {c.lower() for c in shape.columns}
        for name, existing in target.columns.items():
            if name not in written and not fillable(existing):
                raise TableSchemaError(
                    f"connector {self.config.name!r}: table {target.label()} column {existing.name!r} "
                    f"({existing.column_type.upper()} NOT NULL, no default) gets no value: the records carry "
                    "no such field (was it dropped?); make the column nullable or give it a default"
                )

    def _check_upsert_keys(self, target: TargetTable, shape: Shape) -> None:
        """``ON DUPLICATE KEY UPDATE`` matches any unique key, so only the primary key may be matchable."""
        config = self.config
        key = {c.lower() for c in shape.key_columns}
        written = {c.lower() for c in shape.columns}
        uniques = {name: {c.lower() for c in cols} for name, cols in target.unique_keys.items()}
        if not any(cols == key for cols in uniques.values()):
            raise TableSchemaError(
                f"connector {config.name!r}: insert.mode=upsert matches rows on ({', '.join(shape.key_columns)}), "
                f"but table {target.label()} has no PRIMARY KEY or UNIQUE index on exactly those columns, so every "
                "upsert would insert a new row"
            )
        # An index containing the whole key is only hit together with the key itself; one holding an
        # AUTO_INCREMENT column that the sink leaves to MariaDB always gets a fresh value.
        others = [
            name
            for name, cols in uniques.items()
            if not key <= cols
            and not any(target.columns[c].auto_increment and c not in written for c in cols if c in target.columns)
        ]
        if others and not config.upsert_allow_other_unique_keys:
            described = "; ".join(f"{name} ({', '.join(target.unique_keys[name])})" for name in sorted(others))
            raise TableSchemaError(
                f"connector {config.name!r}: table {target.label()} has unique key(s) besides the upsert key "
                f"({', '.join(shape.key_columns)}): {described}. MariaDB's ON DUPLICATE KEY UPDATE would overwrite "
                "whichever row such a key matches, which can be a different row than the record's; drop those "
                "keys or set upsert.allow.other.unique.keys=true to accept that"
            )
