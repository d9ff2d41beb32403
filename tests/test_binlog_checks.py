"""Server checks fail with the setting and its fix on a server lacking it; head and lag reads.

Settings that change at run time are changed on the test server and restored; ``log_bin`` needs a
restart, so its test starts a throwaway mariadbd without a binary log on port 13307 (or
``MUNGMO_SCRATCH_MARIADB_PORT``) in a temporary directory and stops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pymysql
import pytest

from mungmo_pipelines.core.mariadb.binlog import BinlogPosition, BinlogReader, Gtid, GtidState
from mungmo_pipelines.core.mariadb.binlog.checks import (
    BinaryLog,
    ServerCheckFailed,
    binary_logs,
    bytes_behind,
    bytes_between,
    check_binary_log,
    check_grants,
    check_position_available,
    check_server,
    check_server_id,
)
from mungmo_pipelines.core.mariadb.binlog.schema import SchemaCompleter
from tests.support.binlog import (
    connect,
    global_setting,
    head,
    purge_binary_logs_to,
    read_changes,
    replica_settings,
    rows_of,
)


@pytest.mark.stack
@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [
        ("binlog_format", "MIXED", "SET GLOBAL binlog_format = ROW"),
        ("binlog_row_image", "MINIMAL", "SET GLOBAL binlog_row_image = FULL"),
        ("binlog_row_metadata", "MINIMAL", "SET GLOBAL binlog_row_metadata = FULL"),
    ],
)
def test_each_runtime_setting_fails_with_its_fix(name, value, fix):
    check_server(connect(), server_id=4_000_001)
    expected = rf"^{name}: is {value}.*Fix: {fix}; and {name}="
    # A new session sees the global value, as the reader's connection would.
    with global_setting(name, value), pytest.raises(ServerCheckFailed, match=expected) as failed:
        check_server(connect(), server_id=4_000_001)
    assert failed.value.setting == name


def test_table_maps_without_full_metadata_are_refused_by_name(sandbox):

    database = sandbox.database("metadata")
    start = head()
    with global_setting("binlog_row_metadata", "MINIMAL"):
        connection = connect(database)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            cursor.execute("INSERT INTO t VALUES (1)")
        connection.close()
    with pytest.raises(Exception, match=r"binlog_row_metadata=FULL"):
        read_changes(start, [database])


@pytest.fixture
def limited_user(sandbox):
    """A user with no replication grants, and one table it may not read."""
    database = sandbox.database("grants")
    name = f"mungmo_test_{uuid.uuid4().hex[:8]}"
    admin = connect(database)
    with admin.cursor() as cursor:
        cursor.execute("CREATE TABLE open_table (id INT PRIMARY KEY)")
        cursor.execute("CREATE TABLE closed_table (id INT PRIMARY KEY)")
        cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw'")
        cursor.execute(f"GRANT SELECT ON `{database}`.`open_table` TO '{name}'@'%'")
    port = admin.port
    yield database, name, lambda: pymysql.connect(host="127.0.0.1", port=port, user=name, password="pw")
    with admin.cursor() as cursor:
        cursor.execute(f"DROP USER '{name}'@'%'")
    admin.close()


def _grant(statement: str) -> None:
    admin = connect()
    with admin.cursor() as cursor:
        cursor.execute(statement)
    admin.close()


def test_each_missing_grant_fails_with_the_grant_statement(limited_user):
    database, name, login = limited_user
    with pytest.raises(ServerCheckFailed, match=rf"Fix: GRANT REPLICATION SLAVE ON \*\.\* TO '{name}'@'%';"):
        check_grants(login())
    _grant(f"GRANT REPLICATION SLAVE ON *.* TO '{name}'@'%'")
    with pytest.raises(ServerCheckFailed, match=rf"Fix: GRANT BINLOG MONITOR ON \*\.\* TO '{name}'@'%';"):
        check_grants(login())
    _grant(f"GRANT REPLICATION CLIENT ON *.* TO '{name}'@'%'")  # BINLOG MONITOR's old name
    check_grants(login(), [(database, "open_table")])
    with pytest.raises(
        ServerCheckFailed, match=rf"may not read {database}\.closed_table.*GRANT SELECT ON `{database}`"
    ):
        check_grants(login(), [(database, "open_table"), (database, "closed_table")])


@pytest.mark.stack
def test_server_id_must_differ_from_the_servers_and_a_running_readers():
    own = int(_scalar("SELECT @@server_id"))
    with pytest.raises(ServerCheckFailed, match=rf"database.server.id: {own} is the server's own server_id"):
        check_server_id(connect(), own)
    settings = replica_settings()
    reader = BinlogReader(settings, head())
    stream = iter(reader)
    next(stream)  # connected, registered, and a heartbeat (or a change) arrived
    try:
        with pytest.raises(
            ServerCheckFailed, match=rf"a connected replica already uses server id {settings.server_id}"
        ):
            check_server_id(connect(), settings.server_id)
    finally:
        reader.close()
    assert check_server_id(connect(), settings.server_id + 1) is True


def _scalar(sql: str):
    connection = connect()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        (value,) = cursor.fetchone()
    connection.close()
    return value


@pytest.mark.stack
def test_the_mungmo_user_of_the_stack_passes_every_check_but_cannot_list_replicas():
    """scripts/stack grants REPLICATION SLAVE and BINLOG MONITOR; SHOW SLAVE HOSTS needs more."""
    port = connect().port
    mungmo = pymysql.connect(
        host="127.0.0.1", port=port, user="mungmo", password=os.environ.get("MUNGMO_DB_PASSWORD", "mungmo-local-dev")
    )
    notes = check_server(mungmo, server_id=4_000_002, position=head())
    assert notes == [
        "database.server.id: not compared with other replicas' ids (SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN)"
    ]


def test_positions_before_the_oldest_binlog_or_ahead_of_the_server_fail(sandbox):
    database = sandbox.database("positions")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        old = head()
        cursor.execute("INSERT INTO t VALUES (1)")
        cursor.execute("FLUSH BINARY LOGS")
        cursor.execute("INSERT INTO t VALUES (2)")
        current = head()
    purge_binary_logs_to(current.file)
    check_position_available(connection, current)
    with pytest.raises(ServerCheckFailed, match=rf"binlog position: {old.file} is no longer on the server"):
        check_position_available(connection, old)
    with pytest.raises(ServerCheckFailed, match=r"binlog position: transactions after .* were purged.*new snapshot"):
        check_position_available(connection, BinlogPosition(old.gtids))
    ahead = GtidState(tuple(Gtid(g.domain, g.server_id, g.sequence + 1000) for g in current.gtids.gtids))
    with pytest.raises(ServerCheckFailed, match=r"is ahead of the server's binlog.*RESET MASTER"):
        check_position_available(connection, BinlogPosition(ahead))
    connection.close()


def test_head_and_bytes_behind(sandbox):
    database = sandbox.database("lag")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, note TEXT)")
        before = head()
        cursor.execute("INSERT INTO t VALUES (1, REPEAT('x', 5000))")
        after = head()
        assert after.file == before.file and after.pos > before.pos + 5000
        assert after.gtids != before.gtids
        assert bytes_behind(connection, before) == after.pos - before.pos
        assert bytes_behind(connection, after) == 0
    logs = [BinaryLog("b.1", 1000), BinaryLog("b.2", 500), BinaryLog("b.3", 700)]
    assert bytes_between(BinlogPosition(GtidState(), "b.1", 900), BinlogPosition(GtidState(), "b.3", 40), logs) == (
        100 + 500 + 40
    )
    assert bytes_between(BinlogPosition(GtidState(), "b.3", 40), BinlogPosition(GtidState(), "b.1", 900), logs) == 0
    assert binary_logs(connection)[-1].name == after.file
    connection.close()


def test_schema_completion_only_while_the_live_table_matches(sandbox):

    database = sandbox.database("complete")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) DEFAULT 'nabi', js JSON)"
        )
        start = head()
        cursor.execute("INSERT INTO t (name) VALUES ('choco')")
        cursor.execute("ALTER TABLE t ADD COLUMN age INT DEFAULT 3")
        cursor.execute("INSERT INTO t (name) VALUES ('bori')")
    first, second = (change.table for change in rows_of(read_changes(start, [database])))
    completer = SchemaCompleter(connection)
    assert completer.complete(first) is first  # written before the ALTER: the live table has another shape
    completed = completer.complete(second)
    columns = {c.name: c for c in completed.columns}
    assert columns["id"].auto_increment and columns["id"].column_type == "int(11)"
    assert columns["name"].default == "'nabi'"
    assert columns["age"].default == "3"
    assert (columns["js"].data_type, columns["js"].column_type) == ("longtext", "longtext")
    assert [c.name for c in completed.columns] == [c.name for c in second.columns]
    connection.close()


def _free_port(preferred: int) -> int:
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    raise RuntimeError(f"port {preferred} is in use; set MUNGMO_SCRATCH_MARIADB_PORT to a free port")


@pytest.mark.slow
def test_a_server_without_a_binary_log_fails_the_first_check(tmp_path: Path):
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    port = _free_port(int(os.environ.get("MUNGMO_SCRATCH_MARIADB_PORT", "13307")))
    data = tmp_path / "data"
    user = ["--user=root"] if os.getuid() == 0 else []
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *user],
        check=True, capture_output=True,
    )  # fmt: skip
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={tmp_path / 'sock'}", f"--pid-file={tmp_path / 'pid'}", *user],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                scratch = pymysql.connect(host="127.0.0.1", port=port, user="root")
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.3)
        with pytest.raises(ServerCheckFailed, match=r"^log_bin: the binary log is off.*Fix: add log_bin=mysql-bin"):
            check_binary_log(scratch)
        with pytest.raises(ServerCheckFailed, match=r"^log_bin"):
            check_server(scratch, server_id=4_000_003)
        scratch.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
