"""The CDC change probe: whether the binlog moved past a connector's stored position (for the sensor).

Reads the binlog head (``SHOW MASTER STATUS`` and ``@@gtid_binlog_pos``) and nothing else: no rows,
no binlog events. Changes of other databases move the head too; a run they trigger reads past
them quickly and stores the new position, so the next probe is quiet again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig, SnapshotMode
from mungmo_pipelines.core.mariadb.binlog import BinlogPosition
from mungmo_pipelines.core.mariadb.binlog.checks import binary_logs, bytes_between
from mungmo_pipelines.core.mariadb.connection import JdbcConnection
from mungmo_pipelines.core.source.cdc.offsets import CdcOffset
from mungmo_pipelines.core.source.cdc.reader import binlog_head, connect, gtid_reached


@dataclass(frozen=True)
class BinlogProbe:
    """The head against the stored offset; ``reason`` says why a run is due (``""``: none is)."""

    head: BinlogPosition
    stored: dict[str, Any] | None
    reason: str
    bytes_behind: int | None

    @property
    def behind(self) -> bool:
        return bool(self.reason)


def probe_binlog(
    config: DebeziumSourceConfig, connection: JdbcConnection, stored: dict[str, Any] | None
) -> BinlogProbe:
    control = connect(connection, config, timeout_s=5)
    try:
        head = binlog_head(control)
        if stored is None:
            return BinlogProbe(head, None, "no stored offset: the first run snapshots or starts streaming", None)
        offset = CdcOffset.parse(stored)
        behind: int | None = None
        if offset.position.file is not None:
            try:
                behind = bytes_between(offset.position, head, binary_logs(control))
            except ValueError:
                behind = None  # the stored file was purged; the run says what to do
    finally:
        control.close()
    if offset.snapshot_running:
        reason = "a snapshot is unfinished"
    elif offset.incremental is not None:
        reason = "an incremental snapshot is unfinished"
    elif config.snapshot_mode is SnapshotMode.INITIAL_ONLY:
        reason = ""  # the snapshot is done and initial_only never streams
    elif not gtid_reached(offset.position.gtids, head.gtids):
        reason = f"the binlog head {head.gtids} is past the stored position {offset.position.gtids}"
    else:
        reason = ""
    return BinlogProbe(head, stored, reason, behind)
