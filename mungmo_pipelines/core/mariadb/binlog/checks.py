"""Checks a server must pass before a binlog reader starts, each failing with the setting and its fix;
and the cheap reads a sensor needs: the binlog head, and how many bytes a position is behind it.

``log_bin_compress`` is not checked: the reader decompresses MariaDB's compressed events
(QUERY_COMPRESSED, *_ROWS_COMPRESSED), so either setting works.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pymysql

from mungmo_pipelines.core.mariadb.binlog.positions import BinlogPosition, GtidState
from mungmo_pipelines.core.mariadb.binlog.reader import BinlogError

ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142
ER_DBACCESS_DENIED = 1044


class ServerCheckFailed(BinlogError):
    """One setting or grant the reader needs, with the statement or my.cnf line that fixes it."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        super().__init__(f"{setting}: {problem}. Fix: {fix}")
        self.setting = setting
        self.fix = fix


def _variable(connection: Any, name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT @@global.{name}")
        (value,) = cursor.fetchone()
    return str(value)


def check_binary_log(connection: Any) -> None:
    if _variable(connection, "log_bin") not in ("1", "ON"):
        raise ServerCheckFailed(
            "log_bin",
            "the binary log is off, so there are no changes to read",
            "add log_bin=mysql-bin under [mysqld] in my.cnf and restart the server",
        )


def _check_setting(connection: Any, name: str, wanted: str, why: str) -> None:
    value = _variable(connection, name)
    if value.upper() != wanted:
        raise ServerCheckFailed(
            name,
            f"is {value}, {why}",
            f"SET GLOBAL {name} = {wanted}; and {name}={wanted} under [mysqld] in my.cnf so it survives a restart",
        )


def check_binlog_format(connection: Any) -> None:
    _check_setting(connection, "binlog_format", "ROW", "so changes are logged as statements, not rows")


def check_row_image(connection: Any) -> None:
    _check_setting(
        connection, "binlog_row_image", "FULL", "so updates and deletes are logged without all their columns"
    )


def check_row_metadata(connection: Any) -> None:
    _check_setting(
        connection,
        "binlog_row_metadata",
        "FULL",
        "so table maps lack column names, ENUM/SET labels and primary keys",
    )


def global_privileges(connection: Any) -> set[str]:
    """The current user's privileges ``ON *.*`` (its own and its active role's), upper-case."""
    privileges: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute("SHOW GRANTS")
        for (line,) in cursor.fetchall():
            head, on, _ = str(line).partition(" ON *.* TO ")
            if on and head.startswith("GRANT "):
                privileges |= {p.strip().upper() for p in head.removeprefix("GRANT ").split(",")}
    return privileges


def check_grants(connection: Any, tables: Iterable[tuple[str, str]] = ()) -> None:
    """REPLICATION SLAVE (to read the binlog), BINLOG MONITOR (REPLICATION CLIENT is its old name;
    to read the head) and SELECT on every captured table (tried, so role and wildcard grants count)."""
    privileges = global_privileges(connection)
    every = "ALL PRIVILEGES" in privileges
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        (account,) = cursor.fetchone()
    user, _, host = str(account).rpartition("@")
    grantee = f"'{user}'@'{host}'"
    if not every and "REPLICATION SLAVE" not in privileges:
        raise ServerCheckFailed(
            "REPLICATION SLAVE",
            f"{grantee} may not read the binary log",
            f"GRANT REPLICATION SLAVE ON *.* TO {grantee};",
        )
    if not every and not privileges & {"BINLOG MONITOR", "REPLICATION CLIENT"}:
        raise ServerCheckFailed(
            "BINLOG MONITOR",
            f"{grantee} may not read the binlog position (SHOW MASTER STATUS, SHOW BINARY LOGS)",
            f"GRANT BINLOG MONITOR ON *.* TO {grantee};",
        )
    for database, table in tables:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM `{database}`.`{table}` LIMIT 0")
        except pymysql.err.MySQLError as error:
            if error.args[0] not in (ER_TABLEACCESS_DENIED, ER_DBACCESS_DENIED):
                raise
            raise ServerCheckFailed(
                "SELECT",
                f"{grantee} may not read {database}.{table} (needed for snapshots and column defaults)",
                f"GRANT SELECT ON `{database}`.* TO {grantee};",
            ) from error


def check_server_id(connection: Any, server_id: int) -> bool:
    """``database.server.id`` must be neither the server's own id nor a connected replica's (the
    server ends an older dump when a new one with the same id starts). Returns False when the
    replicas could not be listed: SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN (MariaDB 10.5.2+),
    which a reader does not otherwise need; the server's own id is checked either way."""
    own = int(_variable(connection, "server_id"))
    if server_id == own:
        raise ServerCheckFailed(
            "database.server.id",
            f"{server_id} is the server's own server_id",
            "choose another database.server.id, unique among the server and all its replicas",
        )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW SLAVE HOSTS")
            replicas = {int(row[0]) for row in cursor.fetchall()}
    except pymysql.err.MySQLError as error:
        if error.args[0] != ER_SPECIFIC_ACCESS_DENIED:
            raise
        return False
    if server_id in replicas:
        raise ServerCheckFailed(
            "database.server.id",
            f"a connected replica already uses server id {server_id} (SHOW SLAVE HOSTS)",
            "choose another database.server.id, unique among the server and all its replicas",
        )
    return True


@dataclass(frozen=True)
class BinaryLog:
    name: str
    size: int


def binary_logs(connection: Any) -> list[BinaryLog]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW BINARY LOGS")
        return [BinaryLog(str(row[0]), int(row[1])) for row in cursor.fetchall()]


def check_position_available(connection: Any, position: BinlogPosition) -> None:
    """The binlog still holds ``position``: its file is listed (file/pos), and no transaction after its
    GTID state was purged (the first binlog's starting GTID state is not ahead of it in any domain)."""
    logs = binary_logs(connection)
    fix = "take a new snapshot (Debezium: snapshot.mode=when_needed does so); keep binlogs longer with "
    "binlog_expire_logs_seconds"
    if position.file is not None and position.file not in {log.name for log in logs}:
        first = logs[0].name if logs else "none"
        raise ServerCheckFailed(
            "binlog position", f"{position.file} is no longer on the server (the oldest binlog is {first})", fix
        )
    if not position.gtids.gtids or not logs:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT BINLOG_GTID_POS(%s, 4), @@global.gtid_binlog_pos", (logs[0].name,))
        first_text, head_text = cursor.fetchone()
    first_state, head = GtidState.parse(first_text), GtidState.parse(head_text)
    for purged in first_state.gtids:
        ours = position.gtids.domain(purged.domain)
        if ours is None or ours.sequence < purged.sequence:
            raise ServerCheckFailed(
                "binlog position",
                f"transactions after {ours or f'the start of domain {purged.domain}'} up to {purged} were purged "
                f"(the oldest binlog {logs[0].name} starts at GTID state {first_state})",
                fix,
            )
    for ours in position.gtids.gtids:
        newest = head.domain(ours.domain)
        if newest is None or ours.sequence > newest.sequence:
            raise ServerCheckFailed(
                "binlog position",
                f"GTID {ours} is ahead of the server's binlog ({head or 'empty'}): was the binlog reset "
                f"(RESET MASTER)?",
                fix,
            )


def check_server(
    connection: Any,
    server_id: int,
    position: BinlogPosition | None = None,
    tables: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """Every check in order; raises the first that fails. Returns notes on what could not be checked."""
    check_binary_log(connection)
    check_binlog_format(connection)
    check_row_image(connection)
    check_row_metadata(connection)
    check_grants(connection, tables)
    notes = []
    if not check_server_id(connection, server_id):
        notes.append(
            "database.server.id: not compared with other replicas' ids (SHOW SLAVE HOSTS needs "
            "REPLICATION MASTER ADMIN)"
        )
    if position is not None:
        check_position_available(connection, position)
    return notes


def head_position(connection: Any, attempts: int = 10) -> BinlogPosition:
    """The binlog's end: ``SHOW MASTER STATUS`` and ``@@gtid_binlog_pos`` read as one consistent pair
    (the GTID state read before and after is the same, so no transaction committed in between)."""
    with connection.cursor() as cursor:
        for _ in range(attempts):
            cursor.execute("SELECT @@global.gtid_binlog_pos")
            (before,) = cursor.fetchone()
            cursor.execute("SHOW MASTER STATUS")
            status = cursor.fetchone()
            if status is None:
                raise ServerCheckFailed("log_bin", "the binary log is off", "add log_bin=mysql-bin to my.cnf")
            cursor.execute("SELECT @@global.gtid_binlog_pos")
            (after,) = cursor.fetchone()
            if before == after:
                return BinlogPosition(GtidState.parse(after), str(status[0]), int(status[1]))
            time.sleep(0.001)
    raise BinlogError(f"the binlog head kept moving during {attempts} reads; try again")


def bytes_between(earlier: BinlogPosition, later: BinlogPosition, logs: list[BinaryLog]) -> int:
    """Binlog bytes from ``earlier`` to ``later`` (0 if ``earlier`` is not before it), counting whole
    files in between from ``SHOW BINARY LOGS``. Both positions need file/pos."""
    if earlier.file is None or later.file is None or earlier.pos is None or later.pos is None:
        raise ValueError("bytes behind needs binlog file/pos on both positions")
    if earlier.file == later.file:
        return max(0, later.pos - earlier.pos)
    names = [log.name for log in logs]
    if earlier.file not in names or later.file not in names:
        raise ValueError(f"{earlier.file} or {later.file} is not among the server's binlogs")
    first, last = names.index(earlier.file), names.index(later.file)
    if first > last:
        return 0
    return logs[first].size - earlier.pos + sum(log.size for log in logs[first + 1 : last]) + later.pos


def bytes_behind(connection: Any, position: BinlogPosition) -> int:
    """How far ``position`` is behind the binlog head now, in bytes."""
    return bytes_between(position, head_position(connection), binary_logs(connection))
