"""Helpers for the binlog reader tests: replica settings on the test server, reading what a
test's own databases changed, and a ``SELECT``'s values converted to the value contract."""

from __future__ import annotations

import datetime as dt
import itertools
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
from sqlalchemy import make_url

from mungmo_pipelines.core.mariadb.binlog import BinlogPosition, BinlogReader, ReplicaSettings, RowChange
from mungmo_pipelines.core.mariadb.binlog.changes import Change, Heartbeat
from mungmo_pipelines.core.mariadb.binlog.checks import head_position
from mungmo_pipelines.core.mariadb.columns import TableSchema
from mungmo_pipelines.core.mariadb.connection import SslMode, Tls
from mungmo_pipelines.core.mariadb.session import admin_connection
from mungmo_pipelines.core.mariadb.values import InvalidTemporal
from mungmo_pipelines.core.settings import mariadb_admin_url

# Each reader of a test run registers under its own id (the server ends an older dump of the same id).
_server_ids = itertools.count(3_000_000 + (id(object()) % 100_000) * 10)


def connect(database: str | None = None) -> pymysql.Connection:
    """An admin connection whose session reads TIMESTAMPs in UTC, as the binlog holds them."""
    return admin_connection(database, init_command="SET time_zone = '+00:00'")


@contextmanager
def global_setting(name: str, value: str) -> Iterator[None]:
    """The server's global ``name`` set to ``value`` (new sessions see it) until the block ends."""
    connection = connect()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT @@global.{name}")
        (old,) = cursor.fetchone()
        cursor.execute(f"SET GLOBAL {name} = {value}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET GLOBAL {name} = %s", (old,))
        connection.close()


def replica_settings(**overrides: Any) -> ReplicaSettings:
    url = make_url(mariadb_admin_url())
    options: dict[str, Any] = {"server_id": next(_server_ids), "heartbeat_seconds": 1.0, "tls": Tls(SslMode.DISABLED)}
    options.update(overrides)
    return ReplicaSettings(
        url.host or "127.0.0.1", url.port or 3306, url.username or "root", url.password or "", **options
    )


def head() -> BinlogPosition:
    connection = connect()
    try:
        return head_position(connection)
    finally:
        connection.close()


def read_changes(
    start: BinlogPosition, databases: list[str], by_gtid: bool = True, settings: ReplicaSettings | None = None
) -> list[Change]:
    """Everything from ``start`` to the binlog's end now: rows and statements of ``databases``, and
    the begin/commit of every transaction that touched them."""
    reader = BinlogReader(
        settings or replica_settings(),
        start,
        include=lambda db, table: db in databases,
        by_gtid=by_gtid,
        blocking=False,
    )
    return only_databases(list(reader), databases)


def only_databases(changes: list[Change], databases: list[str]) -> list[Change]:
    """Drops heartbeats and whole transactions with no rows or statements of ``databases``."""
    kept: list[Change] = []
    pending: list[Change] = []
    for change in changes:
        if isinstance(change, Heartbeat):
            continue
        pending.append(change)
        if type(change).__name__ == "TransactionCommit":
            if any(_ours(c, databases) for c in pending):
                kept += pending
            pending = []
    kept += [c for c in pending if _ours(c, databases)]
    return kept


def _ours(change: Change, databases: list[str]) -> bool:
    if isinstance(change, RowChange):
        return change.table.database in databases
    database = getattr(change, "database", None)
    query = getattr(change, "query", "")
    return database in databases or any(f"`{d}`" in query or d in query for d in databases)


def rows_of(changes: list[Change]) -> list[RowChange]:
    return [c for c in changes if isinstance(c, RowChange)]


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def contract_values(schema: TableSchema, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A PyMySQL ``SELECT`` row (session time zone UTC) as the value contract says the binlog gives it."""
    converted = []
    for column, value in zip(schema.columns, row, strict=True):
        kind = column.data_type
        if value is None:
            converted.append(None)
        elif kind == "bit":
            converted.append(int.from_bytes(value, "big"))
        elif kind == "float":
            converted.append(_float32(value))
        elif kind in ("date", "datetime", "timestamp") and isinstance(value, str):
            converted.append(InvalidTemporal(value))
        elif kind == "timestamp":
            converted.append(value.replace(tzinfo=dt.UTC))
        else:
            converted.append(value)
    return tuple(converted)


def purge_binary_logs_to(name: str, timeout_seconds: float = 10.0) -> None:
    """PURGE BINARY LOGS TO ``name``, waiting for the dump threads of readers that were just closed:
    the server keeps a file a dump thread still reads (it notices a closed reader at its next
    heartbeat) and only warns."""
    import time

    connection = connect()
    deadline = time.monotonic() + timeout_seconds
    try:
        with connection.cursor() as cursor:
            while True:
                cursor.execute("PURGE BINARY LOGS TO %s", (name,))
                cursor.execute("SHOW BINARY LOGS")
                if cursor.fetchone()[0] == name:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"binlogs before {name} are still in use after {timeout_seconds} s")
                time.sleep(0.2)
    finally:
        connection.close()
