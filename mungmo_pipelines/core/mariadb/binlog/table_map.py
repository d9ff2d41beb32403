"""TABLE_MAP events: a table's shape as the binlog describes it, with ``binlog_row_metadata=FULL``.

The table map says each column's storage type and its metadata (lengths, precision, fsp); FULL
row metadata adds names, signedness, collations, ENUM/SET labels, geometry types and the primary
key, which is everything a row image needs to be decoded and a :class:`TableSchema` to be filled,
without asking the live table (which may have changed since the event was written).
"""

from __future__ import annotations

from dataclasses import dataclass

from mungmo_pipelines.core.mariadb.binlog.charsets import Charset, Collations
from mungmo_pipelines.core.mariadb.binlog.wire import BinlogFormatError, packed_int
from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema

# Column types as the binlog writes them (MYSQL_TYPE_*).
DECIMAL_OLD, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24 = range(10)
DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT, TIMESTAMP2, DATETIME2, TIME2 = range(10, 20)
BLOB_COMPRESSED, VARCHAR_COMPRESSED = 140, 141
JSON, NEWDECIMAL, ENUM, SET, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = range(245, 256)

# Optional metadata fields (binlog_row_metadata).
SIGNEDNESS, DEFAULT_CHARSET, COLUMN_CHARSET, COLUMN_NAME, SET_STR_VALUE, ENUM_STR_VALUE = range(1, 7)
GEOMETRY_TYPE, SIMPLE_PRIMARY_KEY, PRIMARY_KEY_WITH_PREFIX = 7, 8, 9
ENUM_AND_SET_DEFAULT_CHARSET, ENUM_AND_SET_COLUMN_CHARSET = 10, 11

_NUMERIC = frozenset((TINY, SHORT, INT24, LONG, LONGLONG, NEWDECIMAL, FLOAT, DOUBLE))
_CHARACTER = frozenset((STRING, VAR_STRING, VARCHAR, BLOB, GEOMETRY))
_ONE_BYTE_METADATA = frozenset((FLOAT, DOUBLE, BLOB, GEOMETRY, JSON, TIMESTAMP2, DATETIME2, TIME2, BLOB_COMPRESSED))
_TWO_BYTE_METADATA = frozenset((VARCHAR, VAR_STRING, BIT, NEWDECIMAL, STRING, ENUM, SET, VARCHAR_COMPRESSED))
_GEOMETRY_NAMES = (
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection",
)  # fmt: skip
_INTEGERS = {TINY: ("tinyint", 3), SHORT: ("smallint", 5), INT24: ("mediumint", 7), LONG: ("int", 10)}
_BLOB_SIZES = {1: ("tiny", 255), 2: ("", 65535), 3: ("medium", 16777215), 4: ("long", 4294967295)}


class UnsupportedTable(ValueError):
    """A table map this reader cannot decode rows for (named in the message, with the fix)."""


@dataclass(frozen=True)
class ColumnFormat:
    """How one column's values are stored in a row image.

    ``kind`` is the storage type (ENUM and SET resolved from a STRING's real type); ``length``
    is its metadata: bytes of a length prefix, a max byte length, bits, pack length or fsp.
    """

    kind: int
    length: int = 0
    precision: int = 0
    scale: int = 0
    unsigned: bool = False
    charset: Charset | None = None
    labels: tuple[str, ...] = ()
    nullable: bool = True


@dataclass(frozen=True)
class TableMap:
    """A decoded TABLE_MAP: the table's schema and the storage format of each of its columns.

    The table id is left out: the server numbers open tables, so one shape can have several ids
    over time and a reader keeps the id -> table map mapping per stream (``table_id_of``).
    """

    schema: TableSchema
    formats: tuple[ColumnFormat, ...]

    @property
    def database(self) -> str:
        return self.schema.database

    @property
    def name(self) -> str:
        return self.schema.name


@dataclass
class _Optional:
    """The optional metadata fields of one table map, as read."""

    unsigned: list[bool]
    collations: list[int]
    enum_set_collations: list[int]
    names: list[str]
    set_labels: list[list[bytes]]
    enum_labels: list[list[bytes]]
    geometry_types: list[int]
    primary_key: list[int]


def table_id_of(body: bytes, start: int) -> int:
    return int.from_bytes(body[start : start + 6], "little")


def table_name_of(body: bytes, start: int) -> tuple[str, str]:
    """The database and table a TABLE_MAP event names, without parsing the rest."""
    p = start + 8
    database = body[p + 1 : p + 1 + body[p]].decode("utf-8")
    p += body[p] + 2
    return database, body[p + 1 : p + 1 + body[p]].decode("utf-8")


def parse_table_map(body: bytes, start: int, end: int, collations: Collations) -> TableMap:
    """Parses the event body ``body[start:end]`` (after the common header, before any checksum)."""
    p = start + 8
    db_len = body[p]
    database = body[p + 1 : p + 1 + db_len].decode("utf-8")
    p += db_len + 2
    name_len = body[p]
    table = body[p + 1 : p + 1 + name_len].decode("utf-8")
    p += name_len + 2
    count, p = packed_int(body, p)
    types = body[p : p + count]
    p += count
    metadata_len, p = packed_int(body, p)
    metadata = _column_metadata(types, body, p, p + metadata_len, f"{database}.{table}")
    p += metadata_len
    null_bits = int.from_bytes(body[p : p + (count + 7) // 8], "little")
    p += (count + 7) // 8
    optional = _read_optional(body, p, end, types, metadata)
    where = f"table {database}.{table}"
    if len(optional.names) != count:
        raise UnsupportedTable(
            f"{where}: the table map has no column names: the server writes them only with "
            "binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata = FULL; my.cnf: binlog_row_metadata=FULL)"
        )
    return _build(database, table, types, metadata, null_bits, optional, collations)


def _column_metadata(types: bytes, body: bytes, p: int, end: int, where: str) -> list[int]:
    metadata = []
    for kind in types:
        if kind in _ONE_BYTE_METADATA:
            metadata.append(body[p])
            p += 1
        elif kind in _TWO_BYTE_METADATA:
            # STRING, ENUM and SET keep (real type, length) high byte first; the others little-endian.
            if kind in (STRING, ENUM, SET):
                metadata.append((body[p] << 8) | body[p + 1])
            else:
                metadata.append(body[p] | (body[p + 1] << 8))
            p += 2
        else:
            metadata.append(0)
    if p != end:
        raise BinlogFormatError(f"table map of {where}: column metadata is {end - p} bytes longer than its types")
    return metadata


def _string_real_type(metadata: int) -> tuple[int, int]:
    """A STRING column's real type (STRING, ENUM or SET) and its byte length or pack length.

    Lengths above 255 borrow two bits of the type byte, inverted (MySQL's Field_string::save_field_metadata).
    """
    high, low = metadata >> 8, metadata & 0xFF
    if high & 0x30 != 0x30:
        return high | 0x30, low | (((high & 0x30) ^ 0x30) << 4)
    return high, low


def _real_type(kind: int, metadata: int) -> int:
    return _string_real_type(metadata)[0] if kind == STRING else kind


def _read_optional(body: bytes, p: int, end: int, types: bytes, metadata: list[int]) -> _Optional:
    found = _Optional([], [], [], [], [], [], [], [])
    real_types = [_real_type(kind, meta) for kind, meta in zip(types, metadata, strict=True)]
    numeric = sum(1 for t in real_types if t in _NUMERIC)
    character = sum(1 for t in real_types if t in _CHARACTER)
    enum_set = sum(1 for t in real_types if t in (ENUM, SET))
    while p < end:
        field = body[p]
        length, p = packed_int(body, p + 1)
        value_end = p + length
        if field == SIGNEDNESS:
            bits = int.from_bytes(body[p:value_end], "big")
            width = length * 8
            found.unsigned = [bool(bits >> (width - 1 - i) & 1) for i in range(numeric)]
        elif field in (DEFAULT_CHARSET, ENUM_AND_SET_DEFAULT_CHARSET):
            total = character if field == DEFAULT_CHARSET else enum_set
            default, q = packed_int(body, p)
            values = [default] * total
            while q < value_end:
                index, q = packed_int(body, q)
                values[index], q = packed_int(body, q)
            if field == DEFAULT_CHARSET:
                found.collations = values
            else:
                found.enum_set_collations = values
        elif field in (COLUMN_CHARSET, ENUM_AND_SET_COLUMN_CHARSET):
            values = _packed_ints(body, p, value_end)
            if field == COLUMN_CHARSET:
                found.collations = values
            else:
                found.enum_set_collations = values
        elif field == COLUMN_NAME:
            q = p
            while q < value_end:
                size, q = packed_int(body, q)
                found.names.append(body[q : q + size].decode("utf-8"))
                q += size
        elif field in (SET_STR_VALUE, ENUM_STR_VALUE):
            q = p
            target = found.set_labels if field == SET_STR_VALUE else found.enum_labels
            while q < value_end:
                members, q = packed_int(body, q)
                labels = []
                for _ in range(members):
                    size, q = packed_int(body, q)
                    labels.append(bytes(body[q : q + size]))
                    q += size
                target.append(labels)
        elif field == GEOMETRY_TYPE:
            found.geometry_types = _packed_ints(body, p, value_end)
        elif field == SIMPLE_PRIMARY_KEY:
            found.primary_key = _packed_ints(body, p, value_end)
        elif field == PRIMARY_KEY_WITH_PREFIX:
            found.primary_key = _packed_ints(body, p, value_end)[::2]
        p = value_end
    return found


def _packed_ints(body: bytes, p: int, end: int) -> list[int]:
    values = []
    while p < end:
        value, p = packed_int(body, p)
        values.append(value)
    return values


def _quoted(labels: tuple[str, ...]) -> str:
    return ",".join("'" + label.replace("'", "''") + "'" for label in labels)


def _build(
    database: str,
    table: str,
    types: bytes,
    metadata: list[int],
    null_bits: int,
    optional: _Optional,
    collations: Collations,
) -> TableMap:
    numeric = iter(optional.unsigned)
    character = iter(optional.collations)
    enum_set = iter(optional.enum_set_collations)
    enums, sets, geometries = iter(optional.enum_labels), iter(optional.set_labels), iter(optional.geometry_types)
    columns: list[TableColumn] = []
    formats: list[ColumnFormat] = []
    for index, (kind, meta) in enumerate(zip(types, metadata, strict=True)):
        name = optional.names[index]
        where = f"column {database}.{table}.{name}"
        nullable = bool(null_bits >> index & 1)
        real = _real_type(kind, meta)
        unsigned = next(numeric, False) if real in _NUMERIC else False
        charset = None
        if real in _CHARACTER:
            charset = collations.charset(next(character), where)
        elif real in (ENUM, SET):
            charset = collations.charset(next(enum_set), where)
        column, fmt = _describe(kind, real, meta, name, where, nullable, unsigned, charset, enums, sets, geometries)
        columns.append(column)
        formats.append(fmt)
    primary_key = tuple(columns[i].name for i in optional.primary_key)
    schema = TableSchema(database, table, tuple(columns), primary_key)
    return TableMap(schema, tuple(formats))


def _describe(
    kind: int,
    real: int,
    meta: int,
    name: str,
    where: str,
    nullable: bool,
    unsigned: bool,
    charset: Charset | None,
    enums: object,
    sets: object,
    geometries: object,
) -> tuple[TableColumn, ColumnFormat]:
    """The TableColumn (information_schema's words) and the storage format of one column."""
    sign = " unsigned" if unsigned else ""
    text_charset = None if charset is None or charset.binary else charset.name
    if real in _INTEGERS:
        data_type, digits = _INTEGERS[real]
        column = TableColumn(name, data_type, data_type + sign, nullable, digits, 0)
        return column, ColumnFormat(real, unsigned=unsigned, nullable=nullable)
    if real == LONGLONG:
        column = TableColumn(name, "bigint", "bigint" + sign, nullable, 20 if unsigned else 19, 0)
        return column, ColumnFormat(real, unsigned=unsigned, nullable=nullable)
    if real == NEWDECIMAL:
        precision, scale = meta & 0xFF, meta >> 8
        column = TableColumn(name, "decimal", f"decimal({precision},{scale}){sign}", nullable, precision, scale)
        return column, ColumnFormat(real, precision=precision, scale=scale, unsigned=unsigned, nullable=nullable)
    if real in (FLOAT, DOUBLE):
        data_type = "float" if real == FLOAT else "double"
        column = TableColumn(name, data_type, data_type + sign, nullable, 12 if real == FLOAT else 22)
        return column, ColumnFormat(real, unsigned=unsigned, nullable=nullable)
    if real == BIT:
        bits = (meta >> 8) * 8 + (meta & 0xFF)
        return TableColumn(name, "bit", f"bit({bits})", nullable, bits), ColumnFormat(real, bits, nullable=nullable)
    if real == YEAR:
        return TableColumn(name, "year", "year(4)", nullable), ColumnFormat(real, nullable=nullable)
    if real == DATE:
        return TableColumn(name, "date", "date", nullable), ColumnFormat(real, nullable=nullable)
    if real in (DATETIME2, TIMESTAMP2, TIME2):
        data_type = {DATETIME2: "datetime", TIMESTAMP2: "timestamp", TIME2: "time"}[real]
        column_type = f"{data_type}({meta})" if meta else data_type
        column = TableColumn(name, data_type, column_type, nullable, datetime_precision=meta)
        return column, ColumnFormat(real, meta, nullable=nullable)
    if real in (ENUM, SET):
        labels_source = enums if real == ENUM else sets
        raw = next(labels_source, None)  # type: ignore[call-overload]
        if raw is None:
            raise UnsupportedTable(f"{where}: the table map lacks the ENUM/SET labels (binlog_row_metadata=FULL)")
        assert charset is not None
        labels = tuple(label.decode(charset.codec or "utf-8", charset.errors) for label in raw)
        data_type = "enum" if real == ENUM else "set"
        column_type = f"{data_type}({_quoted(labels)})"
        column = TableColumn(name, data_type, column_type, nullable, charset=text_charset, labels=labels)
        return column, ColumnFormat(real, meta & 0xFF, charset=charset, labels=labels, nullable=nullable)
    if real == STRING:
        _, byte_length = _string_real_type(meta)
        assert charset is not None
        chars = byte_length // charset.max_bytes
        data_type = "binary" if charset.binary else "char"
        column = TableColumn(
            name, data_type, f"{data_type}({chars})", nullable, character_maximum_length=chars, charset=text_charset
        )
        return column, ColumnFormat(real, byte_length, charset=charset, nullable=nullable)
    if real in (VARCHAR, VAR_STRING):
        assert charset is not None
        chars = meta // charset.max_bytes
        data_type = "varbinary" if charset.binary else "varchar"
        column = TableColumn(
            name, data_type, f"{data_type}({chars})", nullable, character_maximum_length=chars, charset=text_charset
        )
        return column, ColumnFormat(VARCHAR, meta, charset=charset, nullable=nullable)
    if real in (BLOB, GEOMETRY):
        if real == GEOMETRY:
            data_type = _GEOMETRY_NAMES[next(geometries, 0)]  # type: ignore[call-overload]
            return TableColumn(name, data_type, data_type, nullable), ColumnFormat(BLOB, meta, nullable=nullable)
        assert charset is not None
        size, max_length = _BLOB_SIZES[meta]
        data_type = f"{size}blob" if charset.binary else f"{size}text"
        column = TableColumn(
            name, data_type, data_type, nullable, character_maximum_length=max_length, charset=text_charset
        )
        return column, ColumnFormat(BLOB, meta, charset=charset, nullable=nullable)
    raise UnsupportedTable(_unsupported_type(kind, where))


def _unsupported_type(kind: int, where: str) -> str:
    if kind in (BLOB_COMPRESSED, VARCHAR_COMPRESSED):
        return (
            f"{where} uses MariaDB column compression (the COMPRESSED attribute), which this binlog reader does "
            "not decode; remove it (ALTER TABLE ... MODIFY the column without COMPRESSED)"
        )
    if kind in (TIMESTAMP, DATETIME, TIME, NEWDATE):
        return (
            f"{where} is stored in the temporal format of MariaDB before 10.1 (binlog type {kind}); "
            "rebuild the table in the current format (SET GLOBAL mysql56_temporal_format=ON; ALTER TABLE ... FORCE)"
        )
    return f"{where} has binlog column type {kind}, which this reader does not know"
