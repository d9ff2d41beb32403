"""The no-skip gate: offsets never pass a point that a still-open transaction could fill.

The JDBC source's known loss: it reads id 11, stores offset 11, and id 10 commits a moment
later below the offset. Here, before each read, the source looks at the server's open write
transactions (``information_schema.INNODB_TRX``, :func:`observe_transactions`). ``timestamp``
modes read only below the start of the oldest open writer (:meth:`OpenTransactions.upper_bound`);
``incrementing`` mode delivers the gap-free run of ids after its offset, and steps over a gap
only once every transaction that was open when the gap's ids were handed out has ended
(:class:`GapGate`). ``docs/source.md`` ("No row is ever skipped") has the reasoning and
``docs/decisions/innodb-trx-for-the-query-modes.md`` why this view.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pymysql

from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.mariadb.dialect import SPECIFIC_ACCESS_DENIED
from mungmo_pipelines.core.mariadb.session import Cursor, fetch_one
from mungmo_pipelines.core.source.offsets import GapHorizon, TimestampIncrementingOffset

_FRESH_TRX_ATTEMPTS = 30


@dataclass(frozen=True)
class OpenTransactions:
    """The server's write transactions as ``INNODB_TRX`` showed them after ``now`` (UTC).

    ``writer_starts`` are the start times (whole seconds, UTC) of transactions that have
    modified rows or are running a statement; idle transactions that wrote nothing cannot
    commit a row older than their next statement, so they do not hold anything back.
    """

    now: dt.datetime
    writer_starts: tuple[dt.datetime, ...]
    writer_threads: tuple[int, ...]

    @property
    def oldest_writer_start(self) -> dt.datetime | None:
        return min(self.writer_starts, default=None)

    def all_started_after(self, moment: dt.datetime) -> bool:
        """True when no writer open now can have started at or before ``moment``."""
        return all(start > moment for start in self.writer_starts)

    def upper_bound(self, delay: dt.timedelta) -> dt.datetime:
        """The instant below which every row that will ever commit is committed now.

        A row's timestamp comes from the clock while its transaction runs, so it is at least
        the transaction's start; ``timestamp.delay.interval.ms`` covers clocks that lag.
        """
        oldest = self.oldest_writer_start
        return (self.now if oldest is None else min(self.now, oldest)) - delay

    def describe(self) -> str:
        if not self.writer_starts:
            return "no open write transactions"
        return (
            f"{len(self.writer_starts)} open write transaction(s), oldest started "
            f"{self.oldest_writer_start:%Y-%m-%d %H:%M:%S} UTC (threads {', '.join(map(str, self.writer_threads))})"
        )


def observe_transactions(cursor: Cursor, connector: str) -> OpenTransactions:
    """Read ``INNODB_TRX`` so that it is known to reflect a moment after this call began.

    InnoDB serves ``INNODB_TRX`` from a cache refreshed at most every 0.1 s; the snapshot
    transaction opened here, after ``now`` was read, must appear in it, which proves the cache
    is newer than ``now``.
    """
    try:
        for _ in range(_FRESH_TRX_ATTEMPTS):
            cursor.execute("SELECT CONNECTION_ID(), UTC_TIMESTAMP(6)")
            own_thread, now = fetch_one(cursor)
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cursor.execute(
                "SELECT trx_mysql_thread_id, trx_started, trx_is_read_only, trx_autocommit_non_locking, "
                "trx_rows_modified, trx_query IS NOT NULL FROM information_schema.INNODB_TRX"
            )
            rows = cursor.fetchall()
            cursor.execute("COMMIT")
            if any(row[0] == own_thread for row in rows):
                writers = [
                    (row[1].replace(tzinfo=dt.UTC), row[0])
                    for row in rows
                    if row[0] != own_thread and not row[2] and not row[3] and (row[4] > 0 or row[5])
                ]
                return OpenTransactions(
                    now.replace(tzinfo=dt.UTC), tuple(w[0] for w in writers), tuple(w[1] for w in writers)
                )
            time.sleep(0.11)
    except pymysql.err.OperationalError as err:
        if err.args[0] == SPECIFIC_ACCESS_DENIED:
            raise SourceError(
                f"connector {connector!r}: the database user needs the PROCESS privilege to read "
                "information_schema.INNODB_TRX, which is how the source avoids skipping rows that commit out "
                "of order (GRANT PROCESS ON *.* TO <user>)"
            ) from None
        raise
    raise SourceError(f"connector {connector!r}: information_schema.INNODB_TRX did not refresh after 3 s")


class GapGate:
    """Lets rows through while they continue the gap-free run of ids, or lie below a settled horizon.

    A horizon (``M``, ``t``) says every id up to ``M`` was handed out before ``t``; once no write
    transaction that started at or before ``t`` is open any more, each id up to ``M`` that is
    still missing was rolled back or deleted, so the gap can be stepped over.
    """

    def __init__(
        self,
        position: int,
        last: int | None,
        stored: GapHorizon | None,
        candidate: GapHorizon | None,
        open_transactions: OpenTransactions,
    ) -> None:
        self.position = position
        self.last = last
        self.stored = stored
        self.candidate = candidate
        self.open_transactions = open_transactions
        settled = [h for h in (stored, candidate) if h is not None and open_transactions.all_started_after(h.observed)]
        self.settled_up_to = max((h.incrementing for h in settled), default=None)
        self.stopped_at: int | None = None

    def __call__(self, row: Sequence[Any]) -> bool:
        current = int(row[self.position])
        contiguous = self.last is not None and current == self.last + 1
        if contiguous or (self.settled_up_to is not None and current <= self.settled_up_to):
            self.last = current
            return True
        self.stopped_at = current
        return False

    def finish(self, offset: TimestampIncrementingOffset | None) -> tuple[TimestampIncrementingOffset | None, str]:
        """The offset to store (with a horizon to settle later when rows were held back), and what was held back."""
        if self.stopped_at is None:
            return (replace(offset, horizon=None) if offset is not None else None), ""
        stored_pending = self.stored is not None and not self.open_transactions.all_started_after(self.stored.observed)
        horizon = self.stored if stored_pending else self.candidate
        held_back = (
            f"ids after {self.last if self.last is not None else 'the start'} up to {self.stopped_at}: "
            f"a write transaction open since before the gap may still fill it ({self.open_transactions.describe()})"
        )
        return replace(offset or TimestampIncrementingOffset(), horizon=horizon), held_back
