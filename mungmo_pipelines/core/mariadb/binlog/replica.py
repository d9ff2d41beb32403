"""A connection that reads the binary log as a replica: register, ask for a dump, read event packets.

Uses PyMySQL's connection for the handshake, authentication and TLS, and its packet layer
(``write_packet``, ``_read_packet``, ``_next_seq_id``) for the two replication commands PyMySQL
has no API for (COM_REGISTER_SLAVE, COM_BINLOG_DUMP). The event packets that follow are read
from the connection's socket through a buffer of our own (``BinlogDump.read``): in a profile of
single-row transactions (five events each) PyMySQL's ``_read_packet`` (two reads of its 8 KB
buffered file and a packet object per event) took 28% of the reader's time.
Error packets are still raised as PyMySQL raises them.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pymysql
from pymysql.constants.COMMAND import COM_BINLOG_DUMP, COM_REGISTER_SLAVE

from mungmo_pipelines.core.mariadb.binlog.positions import BinlogPosition
from mungmo_pipelines.core.mariadb.connection import JdbcConnection, Tls

# COM_BINLOG_DUMP flags.
DUMP_NON_BLOCK = 0x01
DUMP_SEND_ANNOTATE_ROWS = 0x02
# MARIA_SLAVE_CAPABILITY_GTID: the server sends GTID events as they are (not as fake BEGIN queries).
MARIADB_SLAVE_CAPABILITY = 4

# The server id of a reader that is not a replica: the server kills older dumps of the same id only
# for a non-zero id (sql_parse.cc, COM_BINLOG_DUMP: "mysqlbinlog.server_id==0").
READER_ID = 0

# Errors after which a new connection may resume: lost connections, a killed dump thread, shutdown.
RECONNECTABLE_ERRORS = frozenset((1053, 1927, 2003, 2006, 2013, 2055))
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236


@dataclass(frozen=True)
class ReplicaSettings:
    """How to reach the server, and as which replica.

    ``server_id`` is Debezium's ``database.server.id``: it must differ from the server's own and
    from every other replica's, because the server ends an older dump of the same id when a new
    one starts. :data:`READER_ID` (0) reads as ``mariadb-binlog`` does: not registered as a replica,
    it ends no other dump, and only reads to the binlog's end (non-blocking), as a consistency
    check reads beside a running source. ``heartbeat_seconds`` is how often an idle server sends a
    heartbeat; the read timeout is derived from it, so a silent dead server is noticed.
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
    # The connection's TLS (a CDC source's database.ssl.mode); the default, PyMySQL's own, uses TLS
    # when the server offers it.
    tls: Tls = field(default_factory=Tls)

    @classmethod
    def of(cls, connection: JdbcConnection, server_id: int, **options: Any) -> ReplicaSettings:
        """The replica settings of a connector's server: its address, account and TLS."""
        password = connection.password.reveal() if connection.password else ""
        return cls(
            connection.host, connection.port, connection.user or "", password, server_id, tls=connection.tls, **options
        )

    def __post_init__(self) -> None:
        if not (self.server_id == READER_ID or 1 <= self.server_id <= 4294967295):
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
            **self.tls.pymysql_arguments(),
        )


class BinlogDump:
    """An open COM_BINLOG_DUMP: ``read()`` returns each event packet (``0x00`` then the event),
    or ``None`` at the end of a non-blocking dump."""

    BUFFER_BYTES = 256 * 1024

    def __init__(self, connection: pymysql.Connection) -> None:
        self.connection = connection
        # Nothing is buffered in PyMySQL's reader yet: the server sends nothing before the dump request.
        self._file: BinaryIO = connection._sock.makefile("rb", buffering=self.BUFFER_BYTES)  # type: ignore[attr-defined]
        self._sequence = 1

    def read(self) -> bytes | None:
        parts: list[bytes] = []
        while True:
            header = self._file.read(4)
            if len(header) < 4:
                raise pymysql.OperationalError(2013, "Lost connection to the server during the binlog dump")
            length = header[0] | header[1] << 8 | header[2] << 16
            if header[3] != self._sequence:
                raise pymysql.OperationalError(2013, f"binlog packet {header[3]} out of sequence ({self._sequence})")
            self._sequence = (self._sequence + 1) & 0xFF
            data = self._file.read(length)
            if len(data) < length:
                raise pymysql.OperationalError(2013, "Lost connection to the server during the binlog dump")
            if length < 0xFFFFFF and not parts:
                break
            parts.append(data)
            if length < 0xFFFFFF:
                data = b"".join(parts)
                break
        if data[0] == 0xFF:
            pymysql.err.raise_mysql_exception(data)
        if data[0] == 0xFE and len(data) < 9:
            return None
        return data

    def close(self) -> None:
        self._file.close()
        self.connection.close()


def open_dump(
    settings: ReplicaSettings, start: BinlogPosition, by_gtid: bool, blocking: bool, checksum: str
) -> BinlogDump:
    """A dump already streaming events from ``start`` (by GTID state, or by file/pos)."""
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
        if settings.server_id == READER_ID:
            if blocking:
                raise ValueError("a reader with server id 0 (not a replica) can only read to the binlog's end")
        else:
            _register(connection, settings)
        flags = DUMP_SEND_ANNOTATE_ROWS | (0 if blocking else DUMP_NON_BLOCK)
        # By GTID the server ignores the file and position; an empty file name asks for that.
        file = b"" if by_gtid else (start.file or "").encode("ascii")
        pos = 4 if by_gtid else start.pos or 4
        connection._next_seq_id = 0  # type: ignore[attr-defined]
        connection.write_packet(bytes((COM_BINLOG_DUMP,)) + struct.pack("<IHI", pos, flags, settings.server_id) + file)
        return BinlogDump(connection)
    except BaseException:
        connection.close()
        raise


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
    connection._next_seq_id = 0  # type: ignore[attr-defined]
    connection.write_packet(payload)
    connection._read_packet()  # type: ignore[no-untyped-call]
