"""The members table: where verifications live, its reference schema, and the checks a run makes on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from mungmo_pipelines.core.errors import MembersTableError
from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.dialect import (
    MAX_IDENTIFIER_LENGTH,
    NO_SUCH_TABLE,
    UNKNOWN_COLUMN,
    UNKNOWN_DATABASE,
    error_code,
    quote,
)
from mungmo_pipelines.core.mariadb.session import dbapi_cursor

DEFAULT_TTL = timedelta(days=30)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class MembersTable:
    """Where verifications live, in the database the engine connects to; defaults are the reference schema.

    ``time_zone`` is the zone the DATETIME columns are written in (like the JDBC connectors'
    ``db.timezone``): the cut-off is converted to it, and ``updated_at`` is the server's UTC clock
    converted to it. ``outbox_table`` holds events not yet published; the job creates it.
    """

    name: str = "member"
    id_column: str = "id"
    verified_column: str = "neighbourhood_verified"
    verified_at_column: str = "neighbourhood_verified_at"
    updated_at_column: str = "updated_at"
    ttl: timedelta = DEFAULT_TTL
    time_zone: str = "UTC"
    outbox_table: str = "neighbourhood_verification_expiry_outbox"

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0):
            raise ValueError(f"ttl: expected a positive duration, got {self.ttl}")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r}: expected an IANA zone such as UTC or Asia/Seoul") from None

    @property
    def index_name(self) -> str:
        return f"ix_{self.name}_verification_expiry"[:MAX_IDENTIFIER_LENGTH]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def cutoff(self, as_of: datetime) -> datetime:
        """The latest ``verified_at`` that ``as_of`` expires (inclusive)."""
        if as_of.tzinfo is None:
            raise ValueError(f"as_of {as_of.isoformat()}: expected a time with a time zone")
        return as_of - self.ttl

    def to_db(self, moment: datetime) -> datetime:
        """An aware time as the naive DATETIME value the table stores for it."""
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def from_db(self, value: datetime) -> datetime:
        return value.replace(tzinfo=self.zone)


def members_table_ddl(table: MembersTable) -> str:
    """The reference members table, with the index the expiry's probe and chunks read through."""
    q = quote
    definitions = [
        f"{q(table.id_column)} BIGINT NOT NULL AUTO_INCREMENT",
        "`nickname` VARCHAR(50) NOT NULL",
        "`neighbourhood` VARCHAR(100) NULL",
        f"{q(table.verified_column)} TINYINT(1) NOT NULL DEFAULT 0",
        f"{q(table.verified_at_column)} DATETIME(3) NULL",
        f"{q(table.updated_at_column)} DATETIME(3) NOT NULL "
        "DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)",
        f"PRIMARY KEY ({q(table.id_column)})",
        f"KEY {q(table.index_name)} ({q(table.verified_column)}, {q(table.verified_at_column)})",
    ]
    return (
        f"CREATE TABLE IF NOT EXISTS {q(table.name)} (\n  "
        + ",\n  ".join(definitions)
        + "\n) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
    )


def members_schema_markdown() -> str:
    """The reference schema as ``docs/expiry.md`` shows it."""
    return f"```sql\n{members_table_ddl(MembersTable())};\n```"


def parse_as_of(value: str) -> datetime:
    """An explicit cut-off time from run config: ISO-8601 with a UTC offset, never a naive time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"as_of {value!r}: expected an ISO-8601 time such as 2025-06-01T09:00:00+09:00") from None
    if moment.tzinfo is None:
        raise ValueError(
            f"as_of {value!r}: expected a UTC offset (e.g. {value}+09:00 for Seoul time); a naive time is ambiguous"
        )
    return moment


def event_id(member_id: Any, verified_at: datetime) -> str:
    """Stable per verification: a re-published event has the same id."""
    return f"{member_id}:{(verified_at - _EPOCH) // _MILLISECOND}"


def check_schema(conn: Connection, table: MembersTable) -> str | None:
    """Fail on a missing table or column; return the index starting with (verified, verified_at), if any."""
    with dbapi_cursor(conn) as cursor:
        columns = {column.name.lower() for column in catalog.table_columns(cursor, table.name)}
        database = catalog.current_database(cursor)
        indexes = catalog.table_indexes(cursor, table.name)
    if not columns:
        raise MembersTableError(f"members table {database}.{table.name} does not exist (setting 'table')")
    settings = {
        "id_column": table.id_column,
        "verified_column": table.verified_column,
        "verified_at_column": table.verified_at_column,
        "updated_at_column": table.updated_at_column,
    }
    missing = [f"{setting}={column!r}" for setting, column in settings.items() if column.lower() not in columns]
    if missing:
        raise MembersTableError(
            f"members table {database}.{table.name} has no column for {', '.join(missing)}; "
            f"its columns are {', '.join(sorted(columns))}"
        )
    wanted = [table.verified_column.lower(), table.verified_at_column.lower()]
    return next((index for index, cols in indexes.items() if [c.lower() for c in cols[:2]] == wanted), None)


def ensure_outbox(conn: Connection, table: MembersTable) -> None:
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {quote(table.outbox_table)} ("
        "seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "event_id VARCHAR(191) NOT NULL UNIQUE, "
        "event_key VARBINARY(255) NOT NULL, "
        "event_value BLOB NOT NULL, "
        "created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
        ") DEFAULT CHARSET=utf8mb4"
    )


def overdue_verifications(engine: Engine, table: MembersTable, as_of: datetime) -> tuple[int, datetime | None]:
    """How many members are still verified past ``as_of``'s cut-off, and the oldest such verification."""
    q = quote
    with engine.connect() as conn:
        count, oldest = conn.execute(
            text(
                f"SELECT COUNT(*), MIN({q(table.verified_at_column)}) FROM {q(table.name)} "
                f"WHERE {q(table.verified_column)} = 1 AND {q(table.verified_at_column)} <= :cutoff"
            ),
            {"cutoff": table.to_db(table.cutoff(as_of))},
        ).one()
    return int(count), table.from_db(oldest) if oldest is not None else None


@dataclass(frozen=True)
class DueProbe:
    """What a schedule tick learns before asking for a run: the oldest verification due, or why none can be."""

    oldest_due: datetime | None = None
    absent: str | None = None  # the members table or its database is not there yet: what to create


def probe_due(engine: Engine, table: MembersTable, as_of: datetime) -> DueProbe:
    """The oldest verification ``as_of`` expires, read from one entry of the (verified, verified_at) index.

    A missing database or table is an answer (nothing to expire yet, and what to create), not an
    error: a fresh deployment's schedule skips until the members table exists. A missing column
    is a misconfiguration and raises, naming the setting.
    """
    q = quote
    database = engine.url.database
    try:
        with engine.connect() as conn:
            oldest = conn.execute(
                text(
                    f"SELECT {q(table.verified_at_column)} FROM {q(table.name)} "
                    f"WHERE {q(table.verified_column)} = 1 AND {q(table.verified_at_column)} <= :cutoff "
                    f"ORDER BY {q(table.verified_at_column)} LIMIT 1"
                ),
                {"cutoff": table.to_db(table.cutoff(as_of))},
            ).scalar()
    except DBAPIError as err:
        code = error_code(err.orig) if err.orig is not None else None
        create = (
            "create it with the members schema of docs/expiry.md "
            f"(`make demo` creates a sample {database}.{table.name})"
        )
        if code == UNKNOWN_DATABASE:
            return DueProbe(absent=f"database {database} does not exist yet: {create}")
        if code == NO_SUCH_TABLE:
            return DueProbe(absent=f"members table {database}.{table.name} does not exist yet: {create}")
        if code == UNKNOWN_COLUMN:
            with engine.connect() as conn:
                check_schema(conn, table)  # raises naming the setting and the columns there are
        raise
    return DueProbe(oldest_due=table.from_db(oldest) if oldest is not None else None)
