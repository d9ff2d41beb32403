"""Resuming: from every position a change carries (by GTID and by file/pos), after the dump thread
is killed, and from a purged position. Each row must arrive exactly once."""

from __future__ import annotations

import threading

import pytest

from mungmo_pipelines.core.mariadb.binlog import (
    BinlogPosition,
    BinlogReader,
    PositionUnavailable,
    RowChange,
    TransactionCommit,
)
from tests.support.binlog import (
    connect,
    head,
    only_databases,
    purge_binary_logs_to,
    read_changes,
    replica_settings,
    rows_of,
)


def _write_transactions(database: str) -> None:
    """A multi-event transaction over two tables (several rows events), a DDL, single-row ones."""
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO a SELECT seq, REPEAT('가', 120) FROM seq_1_to_60")
        cursor.execute("INSERT INTO b VALUES (1, 'one'), (2, 'two')")
        cursor.execute("UPDATE a SET note = 'short' WHERE id <= 30")
        cursor.execute("DELETE FROM b WHERE id = 1")
        cursor.execute("COMMIT")
        cursor.execute("ALTER TABLE b ADD COLUMN extra INT")
        cursor.execute("INSERT INTO b VALUES (3, 'three', 3)")
        cursor.execute("UPDATE b SET extra = 4 WHERE id = 3")
    connection.close()


def _identity(change: RowChange) -> tuple:
    return (change.table.name, change.operation, change.before, change.after)


@pytest.fixture
def written(sandbox):
    database = sandbox.database("resume")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE a (id INT PRIMARY KEY, note VARCHAR(200))")
        cursor.execute("CREATE TABLE b (id INT PRIMARY KEY, name VARCHAR(20))")
    connection.close()
    start = head()
    _write_transactions(database)
    return database, start


def test_resuming_from_every_position_gives_each_row_exactly_once(written):
    database, start = written
    changes = read_changes(start, [database])
    expected = [_identity(c) for c in rows_of(changes)]
    events = {c.source.event_index for c in rows_of(changes) if c.gtid == rows_of(changes)[0].gtid}
    assert len(events) >= 4, "the first transaction should span several rows events"
    settings = replica_settings()
    for index, change in enumerate(changes):
        delivered = [_identity(c) for c in rows_of(changes[: index + 1])]
        position = change.position
        for by_gtid in (True, False):
            resumed = rows_of(read_changes(position, [database], by_gtid=by_gtid, settings=settings))
            assert delivered + [_identity(c) for c in resumed] == expected, (index, by_gtid, position)


def test_debezium_offsets_without_the_transaction_gtid_resume_the_same(written):
    """Debezium's MariaDB offsets carry gtids, file, pos, event and row, not the transaction's GTID."""
    database, start = written
    changes = read_changes(start, [database])
    rows = rows_of(changes)
    expected = [_identity(c) for c in rows]
    for row_index in (0, 25, len(rows) // 2, len(rows) - 1):
        offset = rows[row_index].position.as_offset()
        assert {"file", "pos", "gtids", "event", "row", "transaction_gtid"} <= set(offset)
        del offset["transaction_gtid"]
        resumed = rows_of(read_changes(BinlogPosition.from_offset(offset), [database]))
        assert expected[: row_index + 1] + [_identity(c) for c in resumed] == expected


@pytest.mark.parametrize("by_gtid", [True, False], ids=["by-gtid", "by-file-pos"])
def test_a_killed_dump_resumes_after_the_last_delivered_change_not_from_the_start(written, by_gtid):
    """python-mysql-replication's auto-reconnect replays from the position it was started at."""
    database, start = written
    expected = [_identity(c) for c in rows_of(read_changes(start, [database]))]
    reader = BinlogReader(replica_settings(), start, include=lambda db, table: db == database, by_gtid=by_gtid)
    stream = iter(reader)
    delivered: list[RowChange] = []
    while len(delivered) < 5:
        change = next(stream)
        if isinstance(change, RowChange) and change.table.database == database:
            delivered.append(change)
    assert reader._dump is not None
    thread_id = reader._dump.connection.thread_id()
    admin = connect()
    with admin.cursor() as cursor:
        cursor.execute(f"KILL {thread_id}")
    # A transaction written after the kill, so the reader has to come back to see it.
    later = threading.Timer(1.0, lambda: _insert(database, "INSERT INTO b VALUES (99, 'after kill', NULL)"))
    later.start()
    for change in stream:
        if isinstance(change, RowChange) and change.table.database == database:
            delivered.append(change)
            if change.after is not None and change.after[0] == 99:
                break
    reader.close()
    later.join()
    admin.close()
    assert reader.connections >= 2
    assert [_identity(c) for c in delivered] == [*expected, ("b", "insert", None, (99, "after kill", None))]


def _insert(database: str, statement: str) -> None:
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(statement)
    connection.close()


def test_a_purged_position_gives_a_clear_error(sandbox):
    database = sandbox.database("purged")
    _insert(database, "CREATE TABLE t (id INT PRIMARY KEY)")
    old = head()
    _insert(database, "INSERT INTO t VALUES (1)")
    admin = connect()
    with admin.cursor() as cursor:
        cursor.execute("FLUSH BINARY LOGS")
        _insert(database, "INSERT INTO t VALUES (2)")
        cursor.execute("SHOW MASTER STATUS")
        (current,) = cursor.fetchone()[:1]
    admin.close()
    purge_binary_logs_to(current)
    for by_gtid in (True, False):
        with pytest.raises(PositionUnavailable, match=r"purged.*new snapshot"):
            read_changes(old, [database], by_gtid=by_gtid)
    # The position written after the purge point still reads.
    fresh = head()
    _insert(database, "INSERT INTO t VALUES (3)")
    changes = read_changes(fresh, [database])
    assert [c.after for c in rows_of(changes)] == [(3,)]
    assert isinstance(only_databases(changes, [database])[-1], TransactionCommit)


def test_resuming_by_gtid_with_several_replication_domains(sandbox):
    """The GTID state holds one GTID per domain; transactions of domain 7 between those of domain 0."""
    database = sandbox.database("domains")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, domain INT)")
        start = head()
        for step in range(6):
            domain = 7 if step % 2 else 0
            cursor.execute(f"SET SESSION gtid_domain_id = {domain}")
            cursor.execute("BEGIN")
            cursor.execute(f"INSERT INTO t VALUES ({step * 10}, {domain}), ({step * 10 + 1}, {domain})")
            cursor.execute(f"INSERT INTO t VALUES ({step * 10 + 2}, {domain})")
            cursor.execute("COMMIT")
        cursor.execute("SET SESSION gtid_domain_id = 0")
    connection.close()
    changes = read_changes(start, [database])
    expected = [_identity(c) for c in rows_of(changes)]
    assert len(expected) == 18
    assert {g.domain for g in changes[-1].position.gtids.gtids} >= {0, 7}
    for index, change in enumerate(changes):
        delivered = [_identity(c) for c in rows_of(changes[: index + 1])]
        resumed = rows_of(read_changes(change.position, [database]))
        assert delivered + [_identity(c) for c in resumed] == expected, (index, change.position)
