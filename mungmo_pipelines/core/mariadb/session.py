"""Database sessions: the DB-API shapes the core relies on, and raw PyMySQL connections from an engine.

Hot paths (the sink's writer, the source's streaming reads) use PyMySQL connections directly,
not SQLAlchemy's, to control session settings and client flags; :class:`Cursor` types them
without ``Any``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import pymysql
import pymysql.cursors
from sqlalchemy import Connection, Engine, make_url
from sqlalchemy.pool import PoolProxiedConnection

from mungmo_pipelines.core.mariadb.connection import pymysql_arguments
from mungmo_pipelines.core.settings import mariadb_admin_url

Row = tuple[Any, ...]


class Cursor(Protocol):
    """The part of a DB-API cursor the core uses (PyMySQL's, or SQLAlchemy's raw one)."""

    def execute(self, query: str, args: Any = ..., /) -> Any: ...

    def executemany(self, query: str, args: Any, /) -> Any: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> Sequence[Row]: ...

    def close(self) -> None: ...


class DbConnection(Protocol):
    """The part of a DB-API connection the core uses (a PyMySQL connection, or a pooled raw one).

    Its cursors are closed with ``contextlib.closing``: SQLAlchemy's pooled cursors are no context managers.
    """

    def cursor(self) -> Cursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


def fetch_one(cursor: Cursor) -> Row:
    """The row a statement that always returns one row returned (``SELECT COUNT(*)``, ``SELECT @@x``)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row


@contextmanager
def dbapi_cursor(conn: Connection) -> Iterator[Cursor]:
    """A DB-API cursor on an SQLAlchemy connection's own session."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # a checked-out connection always has one
    cursor = dbapi.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def close_streaming(cursor: pymysql.cursors.SSCursor) -> None:
    """Close a server-side cursor, or, when its connection was lost, only forget it.

    Closing reads the rest of the result from the socket; PyMySQL has already dropped the socket
    of a lost connection, and its ``close()`` (and its result's ``__del__``) then fail with
    ``AttributeError: 'NoneType' object has no attribute 'read'``, hiding the database's own error.
    """
    connection = cursor.connection
    if connection is not None and connection.open:
        cursor.close()
        return
    result = cursor._result  # type: ignore[attr-defined]  # PyMySQL's unbuffered result: no public accessor
    if result is not None:
        result.unbuffered_active = False
    cursor.connection = None  # type: ignore[assignment]


def release(connection: PoolProxiedConnection) -> None:
    """Return a pooled connection, or discard it when it was lost (its reset would fail and log a traceback)."""
    dbapi = connection.dbapi_connection
    if isinstance(dbapi, pymysql.Connection) and not dbapi.open:
        connection.invalidate()
    else:
        connection.close()


def connect(engine: Engine, **options: Any) -> pymysql.Connection:
    """A new PyMySQL connection to ``engine``'s database (and with its URL's TLS), ``options`` overriding the engine's.

    ``client_flag`` given here replaces the engine's flags (SQLAlchemy sets ``CLIENT.FOUND_ROWS``,
    which callers that count changed rows must not have).
    """
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    return pymysql.connect(*args, **pymysql_arguments({**kwargs, **options}))


def admin_connection(database: str | None = None, **options: Any) -> pymysql.Connection:
    """A new PyMySQL connection as ``MUNGMO_MARIADB_ADMIN_URL``'s account (set-up, benches and tests),
    autocommit and utf8mb4 unless ``options`` say otherwise."""
    url = make_url(mariadb_admin_url())
    arguments = {"autocommit": True, "charset": "utf8mb4", **options}
    return pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "", database=database,
        **arguments,
    )  # fmt: skip


def engine_client_flags(engine: Engine) -> int:
    """The client flags SQLAlchemy's dialect gives connections of ``engine``."""
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    return int(kwargs.get("client_flag", 0))
