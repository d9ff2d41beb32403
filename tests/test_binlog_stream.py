"""Transactions, DDL mid-stream, compressed events and what the reader refuses, on the real server."""

from __future__ import annotations

import pytest

from mungmo_pipelines.core.mariadb.binlog import (
    BinlogReader,
    Heartbeat,
    Statement,
    TransactionBegin,
    TransactionCommit,
    UnsupportedBinlogEvent,
)
from tests.support.binlog import connect, global_setting, head, read_changes, replica_settings, rows_of


def _set_global(name: str, value: str) -> str:
    connection = connect()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT @@global.{name}")
        (old,) = cursor.fetchone()
        cursor.execute(f"SET GLOBAL {name} = {value}")
    connection.close()
    return str(old)


def test_a_transaction_of_several_tables_arrives_whole_with_its_commit(sandbox):
    database = sandbox.database("trx")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE members (id INT PRIMARY KEY, name VARCHAR(20))")
        cursor.execute("CREATE TABLE pets (id INT PRIMARY KEY, member_id INT, name VARCHAR(20))")
        start = head()
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO members VALUES (1, '김민지'), (2, '이서준')")
        cursor.execute("INSERT INTO pets VALUES (10, 1, '초코')")
        cursor.execute("UPDATE members SET name = '박지우' WHERE id = 2")
        cursor.execute("DELETE FROM pets WHERE id = 10")
        cursor.execute("COMMIT")
    connection.close()

    changes = read_changes(start, [database])
    assert [type(c).__name__ for c in changes] == ["TransactionBegin"] + ["RowChange"] * 5 + ["TransactionCommit"]
    begin, commit = changes[0], changes[-1]
    rows = rows_of(changes)
    assert [(r.table.name, r.operation, r.before, r.after) for r in rows] == [
        ("members", "insert", None, (1, "김민지")),
        ("members", "insert", None, (2, "이서준")),
        ("pets", "insert", None, (10, 1, "초코")),
        ("members", "update", (2, "이서준"), (2, "박지우")),
        ("pets", "delete", (10, 1, "초코"), None),
    ]
    assert {r.gtid for r in rows} == {begin.gtid} == {commit.gtid}
    assert commit.xid is not None
    assert commit.position.gtids.domain(begin.gtid.domain) == begin.gtid
    assert commit.position.file == commit.file and commit.position.pos == commit.next_pos
    assert not commit.position.inside_transaction
    # Each rows event knows its place: file, positions, index in the transaction, row in the event.
    assert [r.row for r in rows] == [0, 1, 0, 0, 0]
    indexes = [r.source.event_index for r in rows]
    assert indexes == sorted(indexes) and indexes[0] >= 2  # GTID, ANNOTATE_ROWS and TABLE_MAP come first
    assert rows[0].source.query == "INSERT INTO members VALUES (1, '김민지'), (2, '이서준')"
    assert rows[3].source.query == "UPDATE members SET name = '박지우' WHERE id = 2"
    assert all(r.source.pos < r.source.next_pos <= commit.pos for r in rows)
    assert begin.transaction.pos < rows[0].source.pos
    assert all(r.source.server_id == begin.server_id and r.source.timestamp > 0 for r in rows)


def test_rows_after_ddl_decode_with_the_new_shape_and_names(sandbox):
    """Also python-mysql-replication's use_column_name_cache trap: after ALTER ... FIRST the
    names must move with the values."""
    database = sandbox.database("ddl")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE walks (id INT PRIMARY KEY, pet VARCHAR(20), minutes INT)")
        start = head()
        steps = [
            ("INSERT INTO walks VALUES (1, '초코', 30)", {"id": 1, "pet": "초코", "minutes": 30}),
            ("ALTER TABLE walks ADD COLUMN place VARCHAR(30) NOT NULL DEFAULT '망원동'", None),
            ("INSERT INTO walks VALUES (2, '보리', 20, '성수동')",
             {"id": 2, "pet": "보리", "minutes": 20, "place": "성수동"}),
            ("ALTER TABLE walks DROP COLUMN minutes", None),
            ("INSERT INTO walks VALUES (3, '콩이', '서울숲')", {"id": 3, "pet": "콩이", "place": "서울숲"}),
            ("ALTER TABLE walks MODIFY COLUMN pet TEXT COLLATE utf8mb4_bin", None),
            ("INSERT INTO walks VALUES (4, 'cafe', 'x')", {"id": 4, "pet": "cafe", "place": "x"}),
            ("ALTER TABLE walks RENAME COLUMN pet TO pet_name", None),
            ("INSERT INTO walks VALUES (5, 'nabi', 'y')", {"id": 5, "pet_name": "nabi", "place": "y"}),
            ("ALTER TABLE walks ADD COLUMN walked_on DATE FIRST", None),
            ("INSERT INTO walks VALUES ('2026-01-02', 6, 'toto', 'z')",
             {"walked_on": __import__("datetime").date(2026, 1, 2), "id": 6, "pet_name": "toto", "place": "z"}),
            ("ALTER TABLE walks MODIFY COLUMN place VARCHAR(30) FIRST", None),
            ("UPDATE walks SET pet_name = 'TOTO' WHERE id = 6",
             {"place": "z", "walked_on": __import__("datetime").date(2026, 1, 2), "id": 6, "pet_name": "TOTO"}),
            ("CREATE TABLE visits (id INT PRIMARY KEY, note TEXT)", None),
            ("INSERT INTO visits VALUES (1, '첫 방문')", {"id": 1, "note": "첫 방문"}),
            ("DROP TABLE visits", None),
        ]  # fmt: skip
        for statement, _ in steps:
            cursor.execute(statement)
    connection.close()

    changes = read_changes(start, [database])
    expected = [values for _, values in steps if values is not None]
    assert [r.values() for r in rows_of(changes)] == expected
    statements = [c for c in changes if isinstance(c, Statement)]
    ddl = [s for s, values in steps if values is None]
    # The server writes DROP TABLE back in its own words.
    assert [s.query for s in statements] == [*ddl[:-1], "DROP TABLE `visits` /* generated by server */"]
    assert {s.database for s in statements} == {database}
    assert all(s.thread_id > 0 for s in statements)
    # A DDL statement is a transaction of its own: begin, statement, commit.
    first_ddl = changes.index(statements[0])
    assert isinstance(changes[first_ddl - 1], TransactionBegin) and changes[first_ddl - 1].transaction.standalone
    assert isinstance(changes[first_ddl + 1], TransactionCommit)
    assert rows_of(changes)[2].table.column("minutes") is None


def test_compressed_events_are_decompressed_not_dropped(sandbox):
    """python-mysql-replication skips MariaDB's compressed events without a word."""
    database = sandbox.database("compressed")
    connection = connect(database)
    old = _set_global("log_bin_compress", "ON")
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT) /* " + "padding " * 40 + "*/")
            start = head()
            cursor.execute("INSERT INTO notes SELECT seq, REPEAT('산책 기록 ', 50) FROM seq_1_to_20")
            cursor.execute("UPDATE notes SET body = CONCAT(body, '!') WHERE id <= 5")
            cursor.execute("DELETE FROM notes WHERE id > 15")
            cursor.execute("ALTER TABLE notes ADD COLUMN tag VARCHAR(10) /* " + "padding " * 40 + "*/")
            cursor.execute("SHOW BINLOG EVENTS IN %s FROM %s", (start.file, start.pos))
            kinds = {row[2] for row in cursor.fetchall()}
    finally:
        _set_global("log_bin_compress", old)
        connection.close()
    assert {"Write_rows_compressed_v1", "Update_rows_compressed_v1", "Delete_rows_compressed_v1"} <= kinds
    assert "Query_compressed" in kinds
    changes = read_changes(start, [database])
    rows = rows_of(changes)
    assert [r.operation for r in rows] == ["insert"] * 20 + ["update"] * 5 + ["delete"] * 5
    assert rows[0].after == (1, "산책 기록 " * 50)
    assert rows[20].after == (1, "산책 기록 " * 50 + "!")
    assert [c.query for c in changes if isinstance(c, Statement)][-1].startswith("ALTER TABLE notes ADD COLUMN tag")


def test_partial_row_images_are_refused_by_name(sandbox):
    database = sandbox.database("minimal")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT)")
        cursor.execute("INSERT INTO t VALUES (1, 1, 1)")
        start = head()
        cursor.execute("SET SESSION binlog_row_image = MINIMAL")
        cursor.execute("UPDATE t SET a = 2 WHERE id = 1")
    connection.close()
    with pytest.raises(UnsupportedBinlogEvent, match=r"binlog_row_image=MINIMAL or NOBLOB.*binlog_row_image = FULL"):
        read_changes(start, [database])


def test_statement_logged_dml_is_refused_by_name(sandbox):
    database = sandbox.database("statement")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT)")
        start = head()
        cursor.execute("SET SESSION binlog_format = STATEMENT")
        cursor.execute("INSERT INTO t VALUES (1, 1)")
    connection.close()
    with pytest.raises(UnsupportedBinlogEvent, match=r"INSERT logged as a statement.*binlog_format=ROW"):
        read_changes(start, [database])


def test_xa_transactions_are_refused_by_name(sandbox):
    database = sandbox.database("xa")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        start = head()
        cursor.execute("XA START 'walk'")
        cursor.execute("INSERT INTO t VALUES (1)")
        cursor.execute("XA END 'walk'")
        cursor.execute("XA PREPARE 'walk'")
        cursor.execute("XA COMMIT 'walk'")
    connection.close()
    with pytest.raises(UnsupportedBinlogEvent, match="XA"):
        read_changes(start, [database])


@pytest.mark.stack
def test_an_idle_server_sends_heartbeats_carrying_the_head_position():
    start = head()
    reader = BinlogReader(replica_settings(heartbeat_seconds=0.5), start, include=lambda db, table: False)
    try:
        heartbeat = next(change for change in reader if isinstance(change, Heartbeat))
    finally:
        reader.close()
    assert heartbeat.position.file is not None and not heartbeat.position.inside_transaction
    now = head()
    assert (start.file, start.pos) <= (heartbeat.position.file, heartbeat.position.pos) <= (now.file, now.pos)


def test_tables_left_out_are_not_parsed_and_refused_types_are_named_where_included(sandbox):
    database = sandbox.database("excluded")
    other = sandbox.database("other")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE `{other}`.packed (id INT PRIMARY KEY, note TEXT COMPRESSED)")
        cursor.execute("CREATE TABLE kept (id INT PRIMARY KEY)")
        start = head()
        cursor.execute(f"INSERT INTO `{other}`.packed VALUES (1, 'x')")
        cursor.execute("INSERT INTO kept VALUES (1)")
    connection.close()
    assert [c.after for c in rows_of(read_changes(start, [database]))] == [(1,)]
    with pytest.raises(Exception, match=r"packed\.note uses MariaDB column compression.*without COMPRESSED"):
        read_changes(start, [database, other])


def test_an_event_above_16_mb_arrives_in_several_packets_and_is_joined(sandbox):
    database = sandbox.database("large")
    with global_setting("max_allowed_packet", "64 * 1024 * 1024"):
        connection = connect(database)  # new sessions take the new global value
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE blobs (id INT PRIMARY KEY, body LONGBLOB)")
            start = head()
            cursor.execute("INSERT INTO blobs VALUES (1, REPEAT(x'c0ffee', 6 * 1024 * 1024))")
        connection.close()
        (change,) = rows_of(read_changes(start, [database]))
    assert change.after[1] == b"\xc0\xff\xee" * 6 * 1024 * 1024
    assert change.source.next_pos - change.source.pos > 0xFFFFFF
