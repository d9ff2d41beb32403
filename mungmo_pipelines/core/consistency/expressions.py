"""Canonical column expressions: SQL that reads a source column and its target column as the same
bytes whenever the target holds what the pipeline carried.

A pipeline says per source column what its values travel as (a :class:`ValueForm`: a domain plus
the precision it keeps). Each side's expression is then chosen from that form and the column's own
type (:data:`RULES`), so the types the sink chose compare equal to the source's: a DATETIME(6)
read at the 3 fraction digits the JDBC source carries equals the sink's DATETIME(3), DECIMAL(5,2)
equals DECIMAL(10,4), TINYINT UNSIGNED equals SMALLINT, an ENUM equals the LONGTEXT holding its
label. Everything else is compared byte for byte: text as utf8mb4 bytes (never through a
collation, so ``'a'`` vs ``'A'`` and ``'a'`` vs ``'a '`` differ), NULL apart from ``''`` through
the NULL bitmap of the row expression.

JSON is compared as text: MariaDB stores JSON as LONGTEXT and both the JDBC source and Debezium
carry that text unchanged, so any byte difference in the target is one the pipeline did not make;
normalising (``JSON_NORMALIZE``) would hide such edits and costs a parse per row.

Besides the rules, a form may ask for adjustments (:data:`ADJUSTMENTS`): around the expression
(the source's zero dates carried as NULL, times of day only, trailing zero bytes dropped) or inside
it, on the column (Debezium's two-digit-year adjuster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from mungmo_pipelines.core.connect.schema import DATE, DECIMAL, TIME, TIMESTAMP, connect_kind
from mungmo_pipelines.core.connect.sink_types import string_literal
from mungmo_pipelines.core.connect.source_types import field_codec
from mungmo_pipelines.core.mariadb.columns import ResultColumn, TableColumn


class Domain(StrEnum):
    """What a value is once carried, whatever column holds it."""

    NUMBER = "number"  # exact: integers, DECIMAL, BIT, booleans
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    TEXT = "text"
    BYTES = "bytes"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"  # a wall-clock time
    INSTANT = "instant"  # a TIMESTAMP: compared as the wall-clock time in the check's zone


@dataclass(frozen=True)
class ValueForm:
    """What a pipeline carries for one source column."""

    domain: Domain
    # TIME, DATETIME, INSTANT: the fraction digits the values keep (JDBC: 3, Debezium: the column's).
    fraction_digits: int = 0
    # DATETIME: the zone the pipeline reads the source's wall-clock values in (the JDBC source's
    # db.timezone); converted to the check's zone when it differs. None: carried as they are.
    wall_zone: str | None = None
    # NUMBER held in a bytes column (BIT(n) carried as Connect bytes): the byte order.
    byte_order: str = "big"
    # BYTES: whether trailing 0x00 bytes survive (the binary log drops them from BINARY(n)).
    trailing_zero_bytes: bool = True
    # The source's zero dates (0000-00-00) are carried as NULL (Connector/J reads them so).
    zero_date_as_null: bool = False
    # DATE, DATETIME: the source's invalid dates (zero, or with month or day 0) carried as "null" or
    # as the "epoch" (1970-01-01), as Debezium carries them in nullable and NOT NULL columns.
    invalid_dates: str = ""
    # DATE, DATETIME: years 0-99 carried as 2000-2069 and 1970-1999 (Debezium's two-digit-year
    # adjuster; year 0 with a real month and day as its snapshot reads it: 2000, 2001 for DATETIME).
    two_digit_years: bool = False
    # TIME: only times of day (00:00:00 to 23:59:59.999999) are carried; others are NULL.
    time_of_day: bool = False
    # FLOAT32, FLOAT64: compared as the server prints the source column (FLOAT: 6 significant
    # digits; FLOAT(M,D), DOUBLE(M,D): rounded to ``fraction_digits`` = D places), the most a path of
    # the pipeline carries (Debezium's snapshots read the server's text; its stream every bit).
    printed: bool = False
    # NUMBER: BIGINT UNSIGNED values above 2^63-1 carried as the negative int64 they wrap to.
    wraps_to_signed: bool = False
    # BYTES: carried as text in a text column, encoded "base64", "base64-url-safe" or "hex".
    text_encoding: str = ""


@dataclass(frozen=True)
class SideExpression:
    """One column's canonical SQL on one side, and what ``ISNULL`` is asked of in the NULL bitmap
    (the bare column, unless the expression itself turns values into NULL)."""

    sql: str
    null_sql: str


class UncomparableColumn(ValueError):
    """A column whose type has no canonical expression for the form the pipeline carries."""


INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
BINARIES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
TEXTS = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json", "uuid", "inet4", "inet6"}
)
# Charsets whose bytes are already the utf8mb4 bytes of the text (no CONVERT needed).
_UTF8_BYTES = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})
_TEMPORALS = frozenset({"date", "datetime", "timestamp"})
_GEOMETRIES = frozenset(
    {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
     "geometrycollection"}
)  # fmt: skip


def _always(column: TableColumn, form: ValueForm) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """One row of the canonical-expression table: for columns of ``types`` carrying ``domain``
    (and matching ``when``), the expression ``template`` with ``{c}`` the column, ``{f}`` the
    carried fraction digits, ``{zone_from}``/``{zone_to}`` a wall-clock conversion."""

    domain: Domain
    types: frozenset[str]
    template: str
    side: str = "both"
    when: Callable[[TableColumn, ValueForm], bool] = _always
    condition: str = ""
    makes_nulls: bool = False


def _scaled(column: TableColumn, form: ValueForm) -> bool:
    return (column.numeric_scale or 0) > 0


def _little_endian(column: TableColumn, form: ValueForm) -> bool:
    return form.byte_order == "little"


def _utf8(column: TableColumn, form: ValueForm) -> bool:
    return (column.charset or "").lower() in _UTF8_BYTES


def _zone_converted(column: TableColumn, form: ValueForm) -> bool:
    return form.wall_zone is not None


def _printed(column: TableColumn, form: ValueForm) -> bool:
    return form.printed


def _wrapped(column: TableColumn, form: ValueForm) -> bool:
    return form.wraps_to_signed and column.unsigned


def _encoded(encoding: str) -> Callable[[TableColumn, ValueForm], bool]:
    return lambda column, form: form.text_encoding == encoding


# An ISO date or time as Debezium's isostring mode writes it (2026-01-02Z, 12:34:56.789Z) read back.
_ISO = "CAST(REPLACE({{c}}, 'Z', '') AS {t})"
_DECIMAL_TEXT = "TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {c}))"
_NUMBERS = frozenset({"float", "double", "decimal"}) | INTEGERS

RULES: tuple[Rule, ...] = (
    Rule(
        Domain.NUMBER,
        frozenset({"bigint"}),
        "CAST({c} AS SIGNED)",
        side="source",
        when=_wrapped,
        condition="unsigned, carried wrapped to int64",
    ),
    Rule(Domain.NUMBER, INTEGERS, "{c}"),
    Rule(Domain.NUMBER, frozenset({"decimal"}), _DECIMAL_TEXT, when=_scaled, condition="scale > 0"),
    Rule(Domain.NUMBER, frozenset({"decimal"}), "{c}", condition="scale 0"),
    Rule(Domain.NUMBER, frozenset({"bit", "year"}), "{c} + 0"),
    Rule(
        Domain.NUMBER,
        BINARIES,
        "CONV(HEX(REVERSE({c})), 16, 10)",
        when=_little_endian,
        condition="bytes little-endian",
    ),
    Rule(Domain.NUMBER, BINARIES, "CONV(HEX({c}), 16, 10)", condition="bytes big-endian"),
    Rule(
        Domain.FLOAT32,
        _NUMBERS,
        "CAST(CAST({c} AS FLOAT) AS CHAR)",
        when=_printed,
        condition="as the server prints FLOAT (6 significant digits)",
    ),
    Rule(Domain.FLOAT32, frozenset({"float"}), "CAST({c} AS DOUBLE)"),
    Rule(Domain.FLOAT32, frozenset({"double", "decimal"}) | INTEGERS, "CAST(CAST({c} AS FLOAT) AS DOUBLE)"),
    Rule(
        Domain.FLOAT64,
        _NUMBERS,
        "CAST(ROUND({c}, {f}) AS DOUBLE)",
        when=_printed,
        condition="as the server prints (M,D): {f} = D places",
    ),
    Rule(Domain.FLOAT64, frozenset({"double"}), "{c}"),
    Rule(Domain.FLOAT64, frozenset({"float", "decimal"}) | INTEGERS, "CAST({c} AS DOUBLE)"),
    Rule(Domain.TEXT, TEXTS, "CAST({c} AS BINARY)", when=_utf8, condition="utf8mb4/utf8mb3/ascii"),
    Rule(Domain.TEXT, TEXTS, "CAST(CONVERT({c} USING utf8mb4) AS BINARY)", condition="other charsets"),
    Rule(Domain.TEXT, BINARIES, "{c}"),
    Rule(Domain.TEXT, frozenset({"decimal"}), "CAST({c} AS BINARY)", condition="DECIMAL carried as its text"),
    Rule(Domain.BYTES, BINARIES, "{c}"),
    Rule(Domain.BYTES, TEXTS, "FROM_BASE64({c})", "target", _encoded("base64"), "base64 text", makes_nulls=True),
    Rule(
        Domain.BYTES,
        TEXTS,
        "FROM_BASE64(REPLACE(REPLACE({c}, '-', '+'), '_', '/'))",
        "target",
        _encoded("base64-url-safe"),
        "URL-safe base64 text",
        makes_nulls=True,
    ),
    Rule(Domain.BYTES, TEXTS, "UNHEX({c})", "target", _encoded("hex"), "hex text", makes_nulls=True),
    Rule(Domain.BYTES, _GEOMETRIES, "CAST({c} AS BINARY)"),
    Rule(Domain.DATE, frozenset({"date"}), "{c}"),
    Rule(Domain.DATE, frozenset({"year"}), "IF({c} = 0, NULL, MAKEDATE({c}, 1))", side="source", makes_nulls=True),
    Rule(Domain.DATE, TEXTS, _ISO.format(t="DATE"), "target", condition="ISO text", makes_nulls=True),
    Rule(Domain.TIME, frozenset({"time"}), "CAST({c} AS TIME({f}))"),
    Rule(Domain.TIME, TEXTS, _ISO.format(t="TIME({f})"), "target", condition="ISO text", makes_nulls=True),
    Rule(
        Domain.DATETIME,
        frozenset({"datetime", "timestamp"}),
        "CAST(CONVERT_TZ({c}, {zone_from}, {zone_to}) AS DATETIME({f}))",
        side="source",
        when=_zone_converted,
        condition="source wall times in another zone",
    ),
    Rule(Domain.DATETIME, frozenset({"datetime", "timestamp"}), "CAST({c} AS DATETIME({f}))"),
    Rule(
        Domain.DATETIME,
        TEXTS,
        "CAST(REPLACE(REPLACE({c}, 'T', ' '), 'Z', '') AS DATETIME({f}))",
        "target",
        condition="ISO text",
        makes_nulls=True,
    ),
    Rule(Domain.INSTANT, frozenset({"timestamp", "datetime"}), "CAST({c} AS DATETIME({f}))"),
)


@dataclass(frozen=True)
class Adjustment:
    """A change a form asks for beyond its rule: ``template`` wraps the rule's expression (``{e}``;
    ``{c}`` is the column, ``{epoch}`` the rule's expression of 1970-01-01) or, ``inner``, stands for the
    column inside it (``{zero_year}``: the year Debezium's snapshot reads year 0 as)."""

    types: frozenset[str]
    side: str
    when: Callable[[TableColumn, ValueForm], bool]
    template: str
    condition: str
    inner: bool = False
    makes_nulls: bool = False


_DATES = frozenset({"date", "datetime"})
_INVALID_DATE = "MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0"
ADJUSTMENTS: tuple[Adjustment, ...] = (
    Adjustment(
        _DATES,
        "source",
        lambda column, form: form.two_digit_years,
        "IF(YEAR({c}) < 100 AND MONTH({c}) > 0 AND DAYOFMONTH({c}) > 0, {c} + INTERVAL IF(YEAR({c}) = 0, "
        "{zero_year}, IF(YEAR({c}) < 70, 2000, 1900)) YEAR, {c})",
        "two-digit years adjusted",
        inner=True,
    ),
    Adjustment(
        _TEMPORALS,
        "source",
        lambda column, form: form.zero_date_as_null,
        "IF({c} = 0, NULL, {e})",
        "zero dates carried as NULL",
        makes_nulls=True,
    ),
    Adjustment(
        _DATES,
        "source",
        lambda column, form: form.invalid_dates == "null",
        f"IF({_INVALID_DATE}, NULL, {{e}})",
        "invalid dates carried as NULL",
        makes_nulls=True,
    ),
    Adjustment(
        _DATES,
        "source",
        lambda column, form: form.invalid_dates == "epoch",
        f"IF({_INVALID_DATE}, {{epoch}}, {{e}})",
        "invalid dates carried as the epoch",
    ),
    Adjustment(
        frozenset({"time"}),
        "source",
        lambda column, form: form.time_of_day,
        "IF({c} < '00:00:00' OR {c} >= '24:00:00', NULL, {e})",
        "times of day only",
        makes_nulls=True,
    ),
    Adjustment(
        BINARIES | TEXTS,
        "both",
        lambda column, form: form.domain == Domain.BYTES and not form.trailing_zero_bytes,
        "TRIM(TRAILING X'00' FROM {e})",
        "bytes: trailing zeros not carried, or a wider BINARY(m) target",
    ),
)
_EPOCH = {"date": "'1970-01-01'", "datetime": "'1970-01-01 00:00:00'"}
_ZERO_YEAR = {"date": 2000, "datetime": 2001}


def session_zone(zone: str) -> str:
    """The ``time_zone`` value for a zone name: UTC as an offset, which needs no time zone tables."""
    return "+00:00" if zone in ("UTC", "Etc/UTC") else zone


def compared_form(form: ValueForm, check_zone: str) -> ValueForm:
    """``form`` as compared in ``check_zone``: wall-clock times already in that zone need no conversion."""
    if form.wall_zone is not None and session_zone(form.wall_zone) == session_zone(check_zone):
        return replace(form, wall_zone=None)
    return form


def canonical(column: TableColumn, form: ValueForm, side: str, check_zone: str, column_sql: str) -> SideExpression:
    """The canonical expression of ``column`` (written as ``column_sql``) on ``side`` ("source"
    or "target"), for a value carried as ``form`` (see :func:`compared_form`) and compared in
    ``check_zone``."""
    rule = next(
        (
            r
            for r in RULES
            if r.domain == form.domain
            and column.data_type in r.types
            and r.side in ("both", side)
            and r.when(column, form)
        ),
        None,
    )
    if rule is None:
        raise UncomparableColumn(
            f"{side} column {column.name!r} ({column.column_type}) cannot hold a value carried as {form.domain}"
        )
    adjustments = [a for a in ADJUSTMENTS if column.data_type in a.types and a.side in ("both", side)]
    adjustments = [a for a in adjustments if a.when(column, form)]

    def expression(of: str) -> str:
        return rule.template.format(
            c=of,
            f=form.fraction_digits,
            zone_from=string_literal(session_zone(form.wall_zone or check_zone)),
            zone_to=string_literal(session_zone(check_zone)),
        )

    adjusted = column_sql
    for adjustment in (a for a in adjustments if a.inner):
        adjusted = adjustment.template.format(c=adjusted, zero_year=_ZERO_YEAR.get(column.data_type))
    sql = expression(adjusted)
    nulls_made = rule.makes_nulls
    for adjustment in (a for a in adjustments if not a.inner):
        epoch = expression(_EPOCH[column.data_type]) if "{epoch}" in adjustment.template else ""
        sql = adjustment.template.format(c=column_sql, e=sql, epoch=epoch)
        nulls_made = nulls_made or adjustment.makes_nulls
    return SideExpression(sql, sql if nulls_made else column_sql)


def jdbc_forms(db_timezone: str = "UTC") -> Callable[[TableColumn], ValueForm]:
    """What Confluent's JDBC source carries for each source column, read off the project's own
    source mapping (``SOURCE_TYPES``), with the source connector's ``db.timezone``."""

    def form_of(column: TableColumn) -> ValueForm:
        described = TableColumn(
            column.name,
            column.data_type,
            column.column_type,
            column.nullable,
            column.numeric_precision,
            column.numeric_scale,
        )
        kind = connect_kind(field_codec(ResultColumn.from_table_column(described)).schema)
        if kind in ("int8", "int16", "int32", "int64", "boolean", DECIMAL):
            return ValueForm(Domain.NUMBER)
        if kind == "float":
            return ValueForm(Domain.FLOAT32)
        if kind == "double":
            return ValueForm(Domain.FLOAT64)
        if kind == "string":
            return ValueForm(Domain.TEXT)
        if kind == "bytes":
            return ValueForm(Domain.NUMBER) if column.data_type == "bit" else ValueForm(Domain.BYTES)
        if kind == DATE:
            return ValueForm(Domain.DATE, zero_date_as_null=True)
        if kind == TIME:
            return ValueForm(Domain.TIME, fraction_digits=3)
        if kind == TIMESTAMP and column.data_type == "timestamp":
            return ValueForm(Domain.INSTANT, fraction_digits=3, zero_date_as_null=True)
        if kind == TIMESTAMP:
            return ValueForm(Domain.DATETIME, fraction_digits=3, wall_zone=db_timezone, zero_date_as_null=True)
        raise UncomparableColumn(f"column {column.name!r} ({column.column_type}) has no JDBC source mapping")

    return form_of


_TYPE_GROUPS = {
    "integer types": INTEGERS,
    "binary and blob types": BINARIES,
    "text types": TEXTS,
    "geometry types": _GEOMETRIES,
}


def _describe_types(types: frozenset[str]) -> str:
    parts = []
    rest = set(types)
    for name, group in _TYPE_GROUPS.items():
        if group <= rest:
            parts.append(name)
            rest -= group
    return ", ".join([*parts, *sorted(rest)])


def rules_markdown() -> str:
    """:data:`RULES` as a table (README, reports)."""
    lines = [
        "| carried as | column types | side | when | canonical expression |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule in RULES:
        lines.append(
            f"| {rule.domain} | {_describe_types(rule.types)} | {rule.side} | {rule.condition or '—'} "
            f"| `{rule.template}` |"
        )
    for adjustment in ADJUSTMENTS:
        where = "in" if adjustment.inner else "around"
        lines.append(
            f"| (adjusted {where} the expression) | {_describe_types(adjustment.types)} | {adjustment.side} "
            f"| {adjustment.condition} | `{adjustment.template.replace('{e}', '<expression>')}` |"
        )
    return "\n".join(lines)
