"""Neighbourhood verification (동네인증) expiry: a verification is cancelled 30 days after it was granted.

The rule, exactly: a member is expired by a run whose cut-off time is ``as_of`` when
``verified = 1`` and ``verified_at <= as_of - ttl`` (``ttl`` = 30 days of 24 h by default). So a
verification granted at 09:00:00 on 1 May is cancelled by the 09:00 tick of 31 May (its age is
exactly 30 days) and still valid at 08:59:59. ``as_of`` is the schedule tick's own time, so a
late or replayed run does what its tick meant.

How it changes the table: in chunks of at most ``chunk_size`` members, each its own short
``READ COMMITTED`` transaction that locks the chunk's rows through the verification index
(``SELECT ... ORDER BY verified_at LIMIT n FOR UPDATE``), clears the flag, sets ``updated_at``
to the database's clock (so a ``timestamp+incrementing`` source picks the change up) and writes
one event per member into an outbox table in the same database. Rerunning a tick changes
nothing: expired members no longer match.

Events: after each chunk commits, the outbox is published to Kafka in one Kafka transaction per
batch and only then deleted. A publish failure fails the run and leaves the rows in the outbox;
the next run publishes them before anything else. So no event is lost, and a duplicate happens
only when the process dies between Kafka's commit and the outbox delete; each event carries a
stable ``event_id`` (``<member id>:<verified_at as epoch milliseconds>``) to dedupe on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Connection, Engine, bindparam, text

from mungmo_pipelines.core.kafka_io import KafkaSettings, ensure_topic
from mungmo_pipelines.core.named_lock import LockLost, NamedLock
from mungmo_pipelines.core.source import quote

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
        return f"ix_{self.name}_verification_expiry"[:64]

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
    return (
        f"CREATE TABLE IF NOT EXISTS {q(table.name)} ("
        f"{q(table.id_column)} BIGINT NOT NULL AUTO_INCREMENT, "
        "`nickname` VARCHAR(50) NOT NULL, "
        "`neighbourhood` VARCHAR(100) NULL, "
        f"{q(table.verified_column)} TINYINT(1) NOT NULL DEFAULT 0, "
        f"{q(table.verified_at_column)} DATETIME(3) NULL, "
        f"{q(table.updated_at_column)} DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
        "ON UPDATE CURRENT_TIMESTAMP(3), "
        f"PRIMARY KEY ({q(table.id_column)}), "
        f"KEY {q(table.index_name)} ({q(table.verified_column)}, {q(table.verified_at_column)})"
        ") DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
    )


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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class EventPublishError(RuntimeError):
    """Kafka refused a batch of events; they stay in the outbox for the next run."""


class ExpiryEvents:
    """The Kafka side: one transactional producer for the run, one Kafka transaction per outbox batch.

    ``transactional_id`` must be the same for every run of one expiry job, so a zombie producer
    of an earlier run is fenced off.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, transactional_id: str, send_timeout_s: float = 60.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.transactional_id = transactional_id
        self.send_timeout_s = send_timeout_s
        self._producer: KafkaProducer | None = None

    def __enter__(self) -> ExpiryEvents:
        ensure_topic(self.kafka, self.topic)
        self._producer = self.kafka.producer(transactional_id=self.transactional_id, acks="all", linger_ms=5)
        try:
            self._producer.init_transactions()
        except BaseException:
            self._producer.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=self.send_timeout_s)
        except KafkaError:
            if exc_type is None:
                raise  # otherwise the error already propagating says more than a failed close

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("ExpiryEvents.publish outside its `with` block")
        try:
            producer.begin_transaction()
            futures = [producer.send(self.topic, key=key, value=value) for key, value in records]
            producer.flush(timeout=self.send_timeout_s)
            for future in futures:
                future.get(timeout=self.send_timeout_s)  # raises the broker's error for a refused record
            producer.commit_transaction()  # only once every record is in: kafka-python waits forever otherwise
        except Exception as error:
            try:
                producer.abort_transaction()
            except Exception as abort_error:
                error.add_note(f"aborting the Kafka transaction failed too: {abort_error!r}")
            raise EventPublishError(
                f"publishing {len(records)} expiry events to topic {self.topic!r} failed ({error!r}); "
                "they stay in the outbox and the next run publishes them"
            ) from error


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


class MembersTableError(ValueError):
    """The configured table or columns do not exist; the message names the setting."""


def check_schema(conn: Connection, table: MembersTable) -> str | None:
    """Fail on a missing table or column; return the index starting with (verified, verified_at), if any."""
    columns = {
        row[0].lower()
        for row in conn.execute(
            text(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": table.name},
        )
    }
    database = conn.execute(text("SELECT DATABASE()")).scalar()
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
    rows = conn.execute(
        text(
            "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND SEQ_IN_INDEX <= 2 "
            "ORDER BY INDEX_NAME, SEQ_IN_INDEX"
        ),
        {"t": table.name},
    ).all()
    leading: dict[str, list[str]] = {}
    for index, _, column in rows:
        leading.setdefault(index, []).append(column.lower())
    wanted = [table.verified_column.lower(), table.verified_at_column.lower()]
    return next((index for index, cols in leading.items() if cols == wanted), None)


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
