"""One expiry run: chunks of due members expired in short transactions, their events through the outbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text

from mungmo_pipelines.core.errors import LockLost
from mungmo_pipelines.core.expiry.events import ExpiryEvents
from mungmo_pipelines.core.expiry.members import MembersTable, check_schema, ensure_outbox, event_id
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.mariadb.lock import NamedLock


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass
class ExpiryResult:
    as_of: datetime
    cutoff: datetime
    expired: int = 0
    chunks: int = 0
    events_published: int = 0
    events_from_earlier_runs: int = 0
    db_seconds: float = 0.0
    publish_seconds: float = 0.0
    seconds: float = 0.0
    verification_index: str | None = None


class VerificationExpiry:
    """One expiry run against one members table and one event topic."""

    def __init__(self, engine: Engine, table: MembersTable, events: ExpiryEvents, chunk_size: int = 1000) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size: expected at least 1, got {chunk_size}")
        self.engine = engine
        self.table = table
        self.events = events
        self.chunk_size = chunk_size
        q = quote
        self._probe = text(
            f"SELECT {q(table.id_column)}, {q(table.verified_at_column)} FROM {q(table.name)} "
            f"WHERE {q(table.verified_column)} = 1 AND {q(table.verified_at_column)} <= :cutoff "
            f"ORDER BY {q(table.verified_at_column)} LIMIT :limit FOR UPDATE"
        )
        self._expire = text(
            f"UPDATE {q(table.name)} SET {q(table.verified_column)} = 0, {q(table.updated_at_column)} = :now "
            f"WHERE {q(table.id_column)} IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        self._record = text(
            f"INSERT INTO {q(table.outbox_table)} (event_id, event_key, event_value) VALUES (:id, :key, :value) "
            "ON DUPLICATE KEY UPDATE event_id = event_id"
        )
        self._pending = text(f"SELECT seq, event_key, event_value FROM {q(table.outbox_table)} ORDER BY seq LIMIT :n")
        self._published = text(f"DELETE FROM {q(table.outbox_table)} WHERE seq IN :seqs").bindparams(
            bindparam("seqs", expanding=True)
        )

    def probe_sql(self) -> str:
        """The chunk query, for EXPLAIN."""
        return str(self._probe)

    def run(self, as_of: datetime, lock: NamedLock | None = None) -> ExpiryResult:
        """Expire everything due at ``as_of``.

        Under ``lock``, the lease is renewed before every transaction, and the work connection gets
        the lease as its ``wait_timeout`` too: a holder frozen mid-transaction loses its row locks
        together with the named lock, instead of blocking the next run on them.
        """
        started = time.monotonic()
        result = ExpiryResult(as_of=as_of, cutoff=self.table.cutoff(as_of))
        renew = lock.keep_alive if lock else (lambda: None)
        with self.engine.connect().execution_options(isolation_level="READ COMMITTED") as conn:
            try:
                if lock:
                    conn.exec_driver_sql(f"SET SESSION wait_timeout = {int(lock.lease_seconds)}")
                    conn.commit()
                self._run(conn, result, renew)
            except Exception as error:
                # A holder frozen past its lease fails on whatever it touches first; the cause is the lease.
                lost = lock.lost() if lock and not isinstance(error, LockLost) else None
                if lost is not None:
                    raise lost from error
                raise
            finally:
                conn.invalidate()  # its session settings end with the run rather than go back to the pool
        result.seconds = time.monotonic() - started
        return result

    def _run(self, conn: Connection, result: ExpiryResult, renew: Callable[[], None]) -> None:
        with conn.begin():
            result.verification_index = check_schema(conn, self.table)
            ensure_outbox(conn, self.table)
        renew()
        result.events_from_earlier_runs = self._publish_outbox(conn, result, renew)
        while True:
            renew()
            chunk_started = time.monotonic()
            expired = self._expire_chunk(conn, result.as_of)
            result.db_seconds += time.monotonic() - chunk_started
            if expired:
                result.expired += expired
                result.chunks += 1
                self._publish_outbox(conn, result, renew)
            if expired < self.chunk_size:
                return

    def _expire_chunk(self, conn: Connection, as_of: datetime) -> int:
        """One short transaction: lock up to ``chunk_size`` due members, expire them, record their events."""
        table = self.table
        with conn.begin():
            due = conn.execute(
                self._probe, {"cutoff": table.to_db(table.cutoff(as_of)), "limit": self.chunk_size}
            ).all()
            if not due:
                return 0
            now_utc = conn.execute(text("SELECT UTC_TIMESTAMP(3)")).scalar_one().replace(tzinfo=UTC)
            conn.execute(self._expire, {"now": table.to_db(now_utc), "ids": [member_id for member_id, _ in due]})
            conn.execute(self._record, [self._event(member_id, granted, now_utc, as_of) for member_id, granted in due])
        return len(due)

    def _event(self, member_id: Any, verified_at: datetime, expired_at: datetime, as_of: datetime) -> dict[str, Any]:
        granted = self.table.from_db(verified_at)
        identifier = event_id(member_id, granted)
        value = {
            "event_id": identifier,
            "member_id": member_id,
            "verified_at": _iso(granted),
            "expired_at": _iso(expired_at),
            "tick": _iso(as_of),
        }
        return {
            "id": identifier,
            "key": str(member_id).encode(),
            "value": json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
        }

    def _publish_outbox(self, conn: Connection, result: ExpiryResult, renew: Callable[[], None]) -> int:
        """Publish every pending event in batches of ``chunk_size``, deleting each batch once Kafka committed it."""
        published = 0
        while True:
            db_started = time.monotonic()
            with conn.begin():
                batch = conn.execute(self._pending, {"n": self.chunk_size}).all()
            result.db_seconds += time.monotonic() - db_started
            if not batch:
                return published
            publish_started = time.monotonic()
            self.events.publish([(bytes(key), bytes(value)) for _, key, value in batch])
            result.publish_seconds += time.monotonic() - publish_started
            db_started = time.monotonic()
            with conn.begin():
                conn.execute(self._published, {"seqs": [seq for seq, _, _ in batch]})
            result.db_seconds += time.monotonic() - db_started
            published += len(batch)
            result.events_published += len(batch)
            renew()
