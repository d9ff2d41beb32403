"""A connection that reads the binary log as a replica: register, ask for a dump, read event packets.

Uses PyMySQL's connection for the handshake, authentication and TLS, and its packet layer
(``write_packet``, ``_read_packet``, ``_next_seq_id``) for the two replication commands PyMySQL
has no API for (COM_REGISTER_SLAVE, COM_BINLOG_DUMP) and for the stream of event packets that
follows: the packet layer already joins packets above 16 MB and raises the server's error
packets as PyMySQL errors, so nothing of the wire protocol is written twice.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

import pymysql
from pymysql.constants.COMMAND import COM_BINLOG_DUMP, COM_REGISTER_SLAVE

from mungmo_pipelines.core.mariadb.binlog.positions import BinlogPosition

# COM_BINLOG_DUMP flags.
DUMP_NON_BLOCK = 0x01
DUMP_SEND_ANNOTATE_ROWS = 0x02
# MARIA_SLAVE_CAPABILITY_GTID: the server sends GTID events as they are (not as fake BEGIN queries).
MARIADB_SLAVE_CAPABILITY = 4

# Errors after which a new connection may resume: lost connections, a killed dump thread, shutdown.
RECONNECTABLE_ERRORS = frozenset((1053, 1927, 2003, 2006, 2013, 2055))
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236


@dataclass(frozen=True)
class ReplicaSettings:
    """How to reach the server, and as which replica.

    ``server_id`` is Debezium's ``database.server.id``: it must differ from the server's own and
    from every other replica's, because the server ends an older dump of the same id when a new
    one starts. ``heartbeat_seconds`` is how often an idle server sends a heartbeat; the read
    timeout is derived from it, so a silent dead server is noticed.
    """

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    server_id: int
    heartbeat_seconds: float = 5.0
    connect_timeout: float = 10.0
    # How long the server waits on a consumer that does not read (net_write_timeout of the dump).
    write_timeout_seconds: int = 600
    report_host: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        if not 1 <= self.server_id <= 4294967295:
            raise ValueError(f"database.server.id must be between 1 and 4294967295, got {self.server_id}")
        if self.heartbeat_seconds <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {self.heartbeat_seconds}")

    def connect(self, read_timeout: float | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=self.connect_timeout,
            read_timeout=read_timeout,
        )


def open_dump(
    settings: ReplicaSettings, start: BinlogPosition, by_gtid: bool, blocking: bool, checksum: str
) -> pymysql.Connection:
    """A connection already streaming events from ``start`` (by GTID state, or by file/pos)."""
    connection = settings.connect(read_timeout=settings.heartbeat_seconds * 3 + 5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET @master_binlog_checksum = %s", (checksum,))
            cursor.execute("SET @mariadb_slave_capability = %s", (MARIADB_SLAVE_CAPABILITY,))
            cursor.execute("SET @master_heartbeat_period = %s", (int(settings.heartbeat_seconds * 1e9),))
            cursor.execute("SET @@session.net_write_timeout = %s", (settings.write_timeout_seconds,))
            if by_gtid:
                cursor.execute("SET @slave_connect_state = %s", (str(start.gtids),))
                cursor.execute("SET @slave_gtid_strict_mode = 1")
                cursor.execute("SET @slave_gtid_ignore_duplicates = 0")
        _register(connection, settings)
        flags = DUMP_SEND_ANNOTATE_ROWS | (0 if blocking else DUMP_NON_BLOCK)
        # By GTID the server ignores the file and position; an empty file name asks for that.
        file = b"" if by_gtid else (start.file or "").encode("ascii")
        pos = 4 if by_gtid else start.pos or 4
        connection._next_seq_id = 0
        connection.write_packet(bytes((COM_BINLOG_DUMP,)) + struct.pack("<IHI", pos, flags, settings.server_id) + file)
    except BaseException:
        connection.close()
        raise
    return connection


def _register(connection: pymysql.Connection, settings: ReplicaSettings) -> None:
    """COM_REGISTER_SLAVE: the server lists us in SHOW SLAVE HOSTS under our server id."""
    host = settings.report_host.encode("utf-8")[:60]
    payload = (
        bytes((COM_REGISTER_SLAVE,))
        + struct.pack("<I", settings.server_id)
        + bytes((len(host),))
        + host
        + b"\x00\x00"  # empty user and password
        + struct.pack("<HII", 0, 0, 0)  # port, rank, master id
    )
    connection._next_seq_id = 0
    connection.write_packet(payload)
    connection._read_packet()


def read_event_packet(connection: pymysql.Connection) -> bytes | None:
    """The next event (``0x00`` then the event), or ``None`` at the end of a non-blocking dump."""
    data = connection._read_packet().get_all_data()
    if data[0] == 0xFE and len(data) < 9:
        return None
    return data
