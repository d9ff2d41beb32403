"""A MariaDB named lock (``GET_LOCK``): one run of a thing at a time, whoever starts it.

Two holders use it. The verification expiry holds :class:`NamedLock` on its own connection for
the whole run (ShedLock's role): whoever starts the job (the daemon, the UI, ``dagster job
launch``, ``dagster job execute``, another deployment), only one holder of the name gets past
``acquire``. The server drops the lock when the holding session ends, so a holder killed with
``kill -9`` frees it as soon as the server sees the connection close. The session's
``wait_timeout`` is the lease (ShedLock's ``lockAtMostFor``): a holder that stops calling
:meth:`NamedLock.keep_alive` for that long (a hung or frozen process) loses its connection and
with it the lock, and its next ``keep_alive`` raises :class:`LockLost` instead of letting it
carry on unguarded. The sink takes the same kind of lock with :func:`get_lock` on its writer
connection, waiting for a previous run of the connector to end.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from mungmo_pipelines.core.errors import LockLost, MungmoError
from mungmo_pipelines.core.mariadb.dialect import MAX_LOCK_NAME_LENGTH
from mungmo_pipelines.core.mariadb.session import Cursor, dbapi_cursor, fetch_one


def lock_name(*parts: str) -> str:
    """``parts`` joined by ``:``; names longer than MariaDB's 64 characters keep a hash of the rest."""
    name = ":".join(parts)
    if len(name) <= MAX_LOCK_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_LOCK_NAME_LENGTH - len(digest) - 1]}~{digest}"


def get_lock(cursor: Cursor, name: str, wait_s: float) -> bool:
    """Take ``name`` for this session, waiting up to ``wait_s``; ``False`` if another session kept it."""
    if len(name) > MAX_LOCK_NAME_LENGTH:
        raise ValueError(
            f"lock name {name!r} is longer than {MAX_LOCK_NAME_LENGTH} characters; build it with lock_name()"
        )
    cursor.execute("SELECT GET_LOCK(%s, %s)", (name, wait_s))
    return bool(fetch_one(cursor)[0] == 1)


@dataclass(frozen=True)
class LockHolder:
    """The session holding a lock, as far as this account may see it in the process list."""

    connection_id: int
    account: str | None = None
    state: str | None = None

    def describe(self) -> str:
        return f"connection {self.connection_id}" + (f" ({self.account}, {self.state})" if self.account else "")


class LockHeldElsewhere(MungmoError):
    """Another session holds the lock: the caller should skip, as ShedLock does."""

    def __init__(self, name: str, holder: LockHolder | None) -> None:
        who = holder.describe() if holder else "a session that released it just now"
        super().__init__(f"lock {name!r} held by {who}")
        self.name = name
        self.holder = holder


class NamedLock:
    """A held ``GET_LOCK``; use :meth:`acquire` and then as a context manager."""

    def __init__(self, name: str, connection: Connection, lease_seconds: int) -> None:
        self.name = name
        self.lease_seconds = lease_seconds
        self._connection = connection
        self.connection_id: int = connection.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        self.acquired_at = datetime.now(UTC)
        self.released_at: datetime | None = None
        self._lost: LockLost | None = None

    @classmethod
    def acquire(cls, engine: Engine, name: str, lease_seconds: int) -> NamedLock:
        """Take the lock without waiting, or raise :class:`LockHeldElsewhere` naming the holder."""
        if lease_seconds < 1:
            raise ValueError(f"lock lease for {name!r}: expected at least 1 second, got {lease_seconds}")
        connection = engine.connect()
        try:
            connection.exec_driver_sql(f"SET SESSION wait_timeout = {int(lease_seconds)}")
            with dbapi_cursor(connection) as cursor:
                got = get_lock(cursor, name, 0)
            if got:
                connection.commit()  # end the implicit transaction; the lock belongs to the session
                return cls(name, connection, lease_seconds)
            holder = _holder(connection, name)
        except BaseException:
            _discard(connection)
            raise
        _discard(connection)
        raise LockHeldElsewhere(name, holder)

    def keep_alive(self) -> None:
        """Renew the lease; raise :class:`LockLost` if this session no longer holds the lock."""
        lost = self.lost()
        if lost is not None:
            raise lost

    def lost(self) -> LockLost | None:
        """Renew the lease and return ``None``, or say why this session no longer holds the lock."""
        if self._lost is None:
            try:
                mine = self._connection.execute(
                    text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"), {"name": self.name}
                ).scalar()
                self._connection.commit()
            except SQLAlchemyError as error:
                self._lost = LockLost(
                    f"lock {self.name!r}: connection {self.connection_id} is gone (idle longer than the "
                    f"{self.lease_seconds} s lease, or the server dropped it), so another run may hold it now"
                )
                self._lost.__cause__ = error
            else:
                if mine != 1:
                    self._lost = LockLost(f"lock {self.name!r} is no longer held by connection {self.connection_id}")
        return self._lost

    def hold(self, seconds: float) -> None:
        """Keep the lock ``seconds`` longer, renewing the lease every second."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            self.keep_alive()

    def release(self) -> None:
        if self.released_at is not None:
            return
        try:
            if self._lost is None:  # once lost, the connection is gone and the lock with it
                self._connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self.name})
        except SQLAlchemyError:
            pass  # the connection went away just now: the server released the lock with it
        finally:
            self.released_at = datetime.now(UTC)
            _discard(self._connection)  # closing the session releases the lock whatever happened above

    def __enter__(self) -> NamedLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_holder(engine: Engine, name: str) -> LockHolder | None:
    """Who holds ``name`` now, or ``None`` when it is free."""
    with engine.connect() as connection:
        return _holder(connection, name)


def _holder(connection: Connection, name: str) -> LockHolder | None:
    holder_id = connection.execute(text("SELECT IS_USED_LOCK(:name)"), {"name": name}).scalar()
    if holder_id is None:
        return None
    row = connection.execute(
        text("SELECT CONCAT(USER, '@', HOST), COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID = :id"),
        {"id": holder_id},
    ).first()
    if row is None:  # another account's session: PROCESSLIST shows it only with the PROCESS privilege
        return LockHolder(int(holder_id))
    return LockHolder(int(holder_id), row[0], f"{row[1]} for {row[2]} s")


def _discard(connection: Connection) -> None:
    """Close the physical connection instead of pooling it: its session state (lock, wait_timeout) ends."""
    connection.invalidate()
    connection.close()
