"""One querier per JDBC source ``mode``: the SELECT after the stored offset, and the offset after a row.

Kafka Connect's ``BulkTableQuerier`` and ``TimestampIncrementingTableQuerier``, with the
no-skip gate (``gate.py``) in front of the incrementing and timestamp reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pymysql.cursors

from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig, SourceMode
from mungmo_pipelines.core.connect.schema import from_epoch_millis
from mungmo_pipelines.core.mariadb.session import Cursor, close_streaming, fetch_one
from mungmo_pipelines.core.source.gate import GapGate, observe_transactions
from mungmo_pipelines.core.source.offsets import GapHorizon, TimestampIncrementingOffset

if TYPE_CHECKING:
    from mungmo_pipelines.core.source.jdbc import TablePlan

Row = Sequence[Any]
Rows = Generator[Row, None, None]

# Rows held in memory per fetch from the server-side cursor, whatever batch.max.rows is: the option
# bounds a Kafka transaction (transaction.boundary=poll), not what the reader may buffer.
MAX_FETCH_ROWS = 1000


def fetch_rows(config: JdbcSourceConfig) -> int:
    """Rows per fetch: ``batch.max.rows``, at most :data:`MAX_FETCH_ROWS`."""
    return min(config.batch_max_rows, MAX_FETCH_ROWS)


def wall_clock(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """A UTC instant as the naive wall-clock value a DATETIME column in ``zone`` holds."""
    return instant.astimezone(zone).replace(tzinfo=None)


class Querier:
    """Reads one table from its stored offset; subclasses are the modes."""

    def __init__(self, config: JdbcSourceConfig, plan: TablePlan) -> None:
        self.config = config
        self.plan = plan
        self.start: TimestampIncrementingOffset | None = None

    def rows(self, cursor: Cursor, stored: dict[str, Any] | None) -> Rows:
        """The rows to deliver now, in offset order."""
        raise NotImplementedError

    def admit(self, row: Row) -> bool:
        """Whether ``row`` may be delivered; the first refused row ends the read."""
        return True

    def may_cut_between(self, last: Row, pending: Row | None) -> bool:
        """Whether a Kafka transaction may end after ``last`` and before ``pending``."""
        return True

    def offset_after(self, row: Row | None) -> TimestampIncrementingOffset | None:
        """The offset once ``row`` (the last delivered) is in Kafka; built only when committing."""
        return self.start

    def finish(self, last: Row | None) -> tuple[TimestampIncrementingOffset | None, str]:
        """The offset to store after the read, and what it held back (``""`` when nothing)."""
        return self.offset_after(last), ""

    def stream(self, cursor: Cursor, sql: str, params: Sequence[Any]) -> Rows:
        """Rows through a server-side cursor, fetched :func:`fetch_rows` at a time (bounded memory)."""
        connection = cursor.connection  # type: ignore[attr-defined]
        streaming = connection.cursor(pymysql.cursors.SSCursor)
        size = fetch_rows(self.config)
        try:
            streaming.execute(sql, params)
            while batch := streaming.fetchmany(size):
                yield from batch
        finally:
            close_streaming(streaming)


class BulkQuerier(Querier):
    """``bulk``: the whole table every run; no offset."""

    def rows(self, cursor: Cursor, stored: dict[str, Any] | None) -> Rows:
        return self.stream(cursor, f"SELECT * FROM {self.plan.from_sql}", ())


class IncrementingQuerier(Querier):
    """``incrementing``: rows after the offset in id order, gated so no id an open transaction may fill is passed."""

    gate: GapGate

    def rows(self, cursor: Cursor, stored: dict[str, Any] | None) -> Rows:
        plan = self.plan
        assert plan.incrementing is not None
        offset = self.start = TimestampIncrementingOffset.parse(stored)
        column = plan.column_sql(plan.incrementing)
        after = offset.incrementing if offset else None
        where, params = (f" WHERE {column} > %s", (after,)) if after is not None else ("", ())
        cursor.execute(f"SELECT MAX({column}), UTC_TIMESTAMP(6) FROM {plan.from_sql}{where}", params)
        newest, observed = fetch_one(cursor)
        candidate = GapHorizon(int(newest), observed.replace(tzinfo=dt.UTC)) if newest is not None else None
        open_transactions = observe_transactions(cursor, self.config.name)
        self.gate = GapGate(plan.incrementing, after, offset.horizon if offset else None, candidate, open_transactions)
        return self.stream(cursor, f"SELECT * FROM {plan.from_sql}{where} ORDER BY {column} ASC", params)

    def admit(self, row: Row) -> bool:
        return self.gate(row)

    def offset_after(self, row: Row | None) -> TimestampIncrementingOffset | None:
        if row is None:
            return self.start
        assert self.plan.incrementing is not None
        return replace(
            self.start or TimestampIncrementingOffset(), incrementing=int(row[self.plan.incrementing]), timestamp=None
        )

    def finish(self, last: Row | None) -> tuple[TimestampIncrementingOffset | None, str]:
        return self.gate.finish(self.offset_after(last))


class TimestampQuerier(Querier):
    """``timestamp``: rows after the offset's time and below the settled bound, in time order.

    The offset is a time, so a transaction boundary never falls between rows of the same time.
    """

    held_back = ""

    def rows(self, cursor: Cursor, stored: dict[str, Any] | None) -> Rows:
        config, plan = self.config, self.plan
        offset = TimestampIncrementingOffset.parse(stored)
        open_transactions = observe_transactions(cursor, config.name)
        if offset is None and config.timestamp_initial is not None:
            initial = open_transactions.now
            if config.timestamp_initial != -1:
                initial = from_epoch_millis(config.timestamp_initial)
            offset = TimestampIncrementingOffset(timestamp=initial)
        self.start = offset
        delay = dt.timedelta(milliseconds=config.timestamp_delay_interval_ms)
        bound = open_transactions.upper_bound(delay)
        if bound < open_transactions.now - delay:
            self.held_back = f"rows at or after {bound:%Y-%m-%d %H:%M:%S} UTC: {open_transactions.describe()}"
        ts = plan.timestamp_sql
        conditions = [f"{ts} < %s"]
        params: list[Any] = [wall_clock(bound, plan.timestamp_zone)]
        if offset is not None and offset.timestamp is not None:
            condition, values = self.after_offset(ts, wall_clock(offset.timestamp, plan.timestamp_zone), offset)
            conditions.append(condition)
            params += values
        sql = f"SELECT * FROM {plan.from_sql} WHERE {' AND '.join(conditions)} ORDER BY {self.order(ts)} ASC"
        return self.stream(cursor, sql, params)

    def after_offset(self, ts: str, begin: dt.datetime, offset: TimestampIncrementingOffset) -> tuple[str, list[Any]]:
        return f"{ts} > %s", [begin]

    def order(self, ts: str) -> str:
        return ts

    def may_cut_between(self, last: Row, pending: Row | None) -> bool:
        return pending is None or self.plan.row_timestamp(pending) != self.plan.row_timestamp(last)

    def offset_after(self, row: Row | None) -> TimestampIncrementingOffset | None:
        if row is None:
            return self.start
        return replace(
            self.start or TimestampIncrementingOffset(), incrementing=None, timestamp=self.plan.row_timestamp(row)
        )

    def finish(self, last: Row | None) -> tuple[TimestampIncrementingOffset | None, str]:
        return self.offset_after(last), self.held_back


class TimestampIncrementingQuerier(TimestampQuerier):
    """``timestamp+incrementing``: rows after (time, id), in (time, id) order; a cut may fall anywhere."""

    def after_offset(self, ts: str, begin: dt.datetime, offset: TimestampIncrementingOffset) -> tuple[str, list[Any]]:
        assert self.plan.incrementing is not None
        column = self.plan.column_sql(self.plan.incrementing)
        if offset.incrementing is not None:
            return f"(({ts} = %s AND {column} > %s) OR {ts} > %s)", [begin, offset.incrementing, begin]
        return f"{ts} >= %s", [begin]

    def order(self, ts: str) -> str:
        assert self.plan.incrementing is not None
        return f"{ts}, {self.plan.column_sql(self.plan.incrementing)}"

    def may_cut_between(self, last: Row, pending: Row | None) -> bool:
        return True

    def offset_after(self, row: Row | None) -> TimestampIncrementingOffset | None:
        if row is None:
            return self.start
        assert self.plan.incrementing is not None
        return replace(
            self.start or TimestampIncrementingOffset(),
            incrementing=int(row[self.plan.incrementing]),
            timestamp=self.plan.row_timestamp(row),
        )


QUERIERS: dict[SourceMode, type[Querier]] = {
    SourceMode.BULK: BulkQuerier,
    SourceMode.INCREMENTING: IncrementingQuerier,
    SourceMode.TIMESTAMP: TimestampQuerier,
    SourceMode.TIMESTAMP_INCREMENTING: TimestampIncrementingQuerier,
}


def querier_for(config: JdbcSourceConfig, plan: TablePlan) -> Querier:
    return QUERIERS[config.mode](config, plan)
