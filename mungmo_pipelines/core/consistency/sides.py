"""The two ends of a comparison: one read-only connection each, with the session settings the
canonical expressions rely on, and a way to run a query on both at once.

Every session gets an empty ``sql_mode`` (no ``PAD_CHAR_TO_FULL_LENGTH``, so CHAR values read
without their pad, as every reader of the source sees them; no ``TIME_ROUND_FRACTIONAL``, so
casting to fewer fraction digits truncates, as the pipelines do) and ``time_zone`` = the check's
zone (TIMESTAMP columns then read as the wall-clock time the sink wrote). The two sides may be on
different servers; each is set up on its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pymysql
from sqlalchemy import Engine

from mungmo_pipelines.core.consistency.expressions import session_zone
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.mariadb.dialect import UNKNOWN_TIME_ZONE
from mungmo_pipelines.core.mariadb.session import Cursor, connect

Rows = list[tuple[Any, ...]]


class Side:
    """One end: its role ("source" or "target"), its connection and how many queries it ran."""

    def __init__(self, role: str, engine: Engine, zone: str) -> None:
        self.role = role
        # The engine's URL, its TLS included (PyMySQL's default charset is utf8mb4).
        self._conn = connect(engine, autocommit=True)
        self.queries = 0
        self.seconds = 0.0
        try:
            self.query("SET SESSION sql_mode = '', time_zone = %s", (session_zone(zone),))
            self.query("SET SESSION TRANSACTION READ ONLY")
        except pymysql.err.OperationalError as err:
            self.close()
            if err.args[0] == UNKNOWN_TIME_ZONE:
                raise ConsistencyError(
                    f"the {role} server does not know time zone {zone!r}: load its time zone tables "
                    "(mariadb-tzinfo-to-sql) or compare in UTC"
                ) from None
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        started = time.perf_counter()
        with self._conn.cursor() as cursor:
            cursor.execute(sql, tuple(params) or None)
            rows = list(cursor.fetchall())
        self.queries += 1
        self.seconds += time.perf_counter() - started
        return rows

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """A cursor of this side's session, for the shared catalog readers."""
        with self._conn.cursor() as cursor:
            yield cursor
        self.queries += 1

    def check_zone_conversion(self, zone_from: str, zone_to: str) -> None:
        """CONVERT_TZ returns NULL for a zone the server does not know, which would read as a difference
        on every row; fail with the reason instead."""
        (converted,) = self.query(
            "SELECT CONVERT_TZ('2000-01-01 00:00:00', %s, %s)", (session_zone(zone_from), session_zone(zone_to))
        )[0]
        if converted is None:
            raise ConsistencyError(
                f"the {self.role} server cannot convert between time zones {zone_from!r} and {zone_to!r}: "
                "load its time zone tables (mariadb-tzinfo-to-sql)"
            )

    def close(self) -> None:
        self._conn.close()


class Sides:
    """Source and target, queried at the same time when a step needs both."""

    def __init__(self, source: Side, target: Side) -> None:
        self.source = source
        self.target = target
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="consistency")

    def of(self, role: str) -> Side:
        return self.source if role == "source" else self.target

    def both(
        self, source_query: tuple[str, Sequence[Any]], target_query: tuple[str, Sequence[Any]]
    ) -> tuple[Rows, Rows]:
        """Both queries at once (each side on its own connection); the wall time is the slower one's."""
        target_rows = self._pool.submit(self.target.query, *target_query)
        source_rows = self.source.query(*source_query)
        return source_rows, target_rows.result()

    @property
    def queries(self) -> int:
        return self.source.queries + self.target.queries

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.source.close()
        self.target.close()
