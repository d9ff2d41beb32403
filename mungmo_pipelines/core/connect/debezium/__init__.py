"""Debezium's MariaDB change-event records, byte for byte (tests/fixtures/debezium holds the
records the real connector wrote and the rules they show)."""

from mungmo_pipelines.core.connect.debezium.columns import ColumnValueError, UnsupportedColumn, column_codec
from mungmo_pipelines.core.connect.debezium.options import DebeziumOptionError, DebeziumOptions
from mungmo_pipelines.core.connect.debezium.records import (
    ChangeEventEncoder,
    DebeziumRecord,
    SourceInfo,
    heartbeat_record,
    new_run_id,
    snapshot_marker,
)

__all__ = [
    "ChangeEventEncoder",
    "ColumnValueError",
    "DebeziumOptionError",
    "DebeziumOptions",
    "DebeziumRecord",
    "SourceInfo",
    "UnsupportedColumn",
    "column_codec",
    "heartbeat_record",
    "new_run_id",
    "snapshot_marker",
]
