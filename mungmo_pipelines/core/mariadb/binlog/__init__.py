"""Change data capture from MariaDB's binary log: a replica connection, decoded row changes with
exact positions, and the server checks a reader needs before its first run.

A consumer builds a :class:`ReplicaSettings`, checks the server (:mod:`.checks`), and iterates a
:class:`BinlogReader` from a :class:`BinlogPosition`; see :mod:`.reader` and :mod:`.changes`.
"""

from mungmo_pipelines.core.mariadb.binlog.changes import (
    Change,
    Heartbeat,
    RowChange,
    RowsEventSource,
    Statement,
    TransactionBegin,
    TransactionCommit,
    TransactionContext,
)
from mungmo_pipelines.core.mariadb.binlog.positions import BinlogPosition, Gtid, GtidState
from mungmo_pipelines.core.mariadb.binlog.reader import (
    BinlogError,
    BinlogReader,
    PositionUnavailable,
    UnsupportedBinlogEvent,
)
from mungmo_pipelines.core.mariadb.binlog.replica import READER_ID, ReplicaSettings

__all__ = [
    "READER_ID",
    "BinlogError",
    "BinlogPosition",
    "BinlogReader",
    "Change",
    "Gtid",
    "GtidState",
    "Heartbeat",
    "PositionUnavailable",
    "ReplicaSettings",
    "RowChange",
    "RowsEventSource",
    "Statement",
    "TransactionBegin",
    "TransactionCommit",
    "TransactionContext",
    "UnsupportedBinlogEvent",
]
