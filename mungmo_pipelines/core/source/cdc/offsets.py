"""CDC offsets in Debezium's own shape, so a team moving from Debezium keeps its position.

Key ``["<connector>", {"server": "<topic.prefix>"}]``, value as Debezium's MariaDB connector writes
it (``tests/fixtures/debezium/offsets``)::

    {"ts_sec": 1796139924, "file": "mysql-bin.000001", "pos": 4, "gtids": "0-1-22", "server_id": 1}

Offsets here always fall between source transactions: ``gtids`` is the GTID state after the last
whole transaction and ``file``/``pos`` where the next one starts (Debezium's mid-transaction
``event``/``row`` skips are read, :meth:`BinlogPosition.from_offset`). Two keys of this project's
own ride along while a snapshot is under way (Debezium ignores unknown keys, and restarts a
snapshot whose offset says ``"snapshot": "INITIAL"``, as it would its own):

- ``mungmo_snapshot``: ``{"table": "<db>.<table>", "after": <key>}``, the last row of the initial
  snapshot whose record is committed; a rerun resumes right after it (docs/cdc.md explains why that
  converges);
- ``mungmo_incremental``: the incremental snapshot in progress (Debezium keeps its own as Java
  serialized ``incremental_snapshot_*`` keys, which are not read here).

Primary-key values are kept as tagged JSON (``["i", 5]``, ``["s", "멍"]``, ``["b", "<base64>"]``...)
so they come back as the same Python values for the next query's parameters.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from mungmo_pipelines.core.mariadb.binlog import BinlogPosition
from mungmo_pipelines.core.mariadb.values import InvalidTemporal

SNAPSHOT_INITIAL = "INITIAL"
SNAPSHOT_PROGRESS = "mungmo_snapshot"
INCREMENTAL = "mungmo_incremental"

Key = tuple[Any, ...]


def server_partition(topic_prefix: str) -> dict[str, str]:
    """Debezium's source partition of a binlog connector."""
    return {"server": topic_prefix}


def _tagged(value: Any) -> list[Any]:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a primary-key value {value!r} cannot be kept in an offset")
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, bytes):
        return ["b", base64.b64encode(value).decode("ascii")]
    if isinstance(value, Decimal):
        return ["n", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["t", [value.days, value.seconds, value.microseconds]]
    if isinstance(value, InvalidTemporal):
        return ["z", value.text]
    raise ValueError(f"a primary-key value of type {type(value).__name__} cannot be kept in an offset")


def _untagged(item: list[Any]) -> Any:
    tag, value = item
    if tag in ("i", "s"):
        return value
    if tag == "b":
        return base64.b64decode(value)
    if tag == "n":
        return Decimal(value)
    if tag == "f":
        return float(value)
    if tag == "dt":
        return dt.datetime.fromisoformat(value)
    if tag == "d":
        return dt.date.fromisoformat(value)
    if tag == "t":
        return dt.timedelta(days=value[0], seconds=value[1], microseconds=value[2])
    if tag == "z":
        return value  # a zero date compares as its text in SQL
    raise ValueError(f"unknown key tag {tag!r} in a stored offset")


def key_to_json(key: Key) -> list[Any]:
    return [_tagged(v) for v in key]


def key_from_json(items: list[Any]) -> Key:
    return tuple(_untagged(item) for item in items)


@dataclass(frozen=True)
class SnapshotProgress:
    """How far the initial snapshot got: ``table`` (``db.table``) read up to the row ``after``
    (``None``: from its start; tables without a primary key always restart)."""

    table: str
    after: Key | None

    def to_value(self) -> dict[str, Any]:
        return {"table": self.table, "after": None if self.after is None else key_to_json(self.after)}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> SnapshotProgress:
        after = value.get("after")
        return cls(str(value["table"]), None if after is None else key_from_json(after))


@dataclass(frozen=True)
class SnapshotCollection:
    """A table an incremental snapshot reads, and the condition it is read with."""

    table: str  # db.table
    condition: str = ""

    def to_value(self) -> dict[str, str]:
        return {"id": self.table, "condition": self.condition}


@dataclass(frozen=True)
class IncrementalState:
    """An incremental snapshot in progress: the tables still to read (the current one first), the
    last key whose record is committed and the largest key the current table had when it started."""

    correlation_id: str
    collections: tuple[SnapshotCollection, ...]
    last_key: Key | None = None
    maximum_key: Key | None = None

    def to_value(self) -> dict[str, Any]:
        return {
            "id": self.correlation_id,
            "collections": [c.to_value() for c in self.collections],
            "last_key": None if self.last_key is None else key_to_json(self.last_key),
            "maximum_key": None if self.maximum_key is None else key_to_json(self.maximum_key),
        }

    @classmethod
    def parse(cls, value: dict[str, Any]) -> IncrementalState:
        last, maximum = value.get("last_key"), value.get("maximum_key")
        return cls(
            str(value["id"]),
            tuple(SnapshotCollection(c["id"], c.get("condition") or "") for c in value["collections"]),
            None if last is None else key_from_json(last),
            None if maximum is None else key_from_json(maximum),
        )

    @property
    def current(self) -> SnapshotCollection:
        return self.collections[0]

    def next_table(self) -> IncrementalState | None:
        """The state once the current table is done; ``None`` when it was the last."""
        if len(self.collections) == 1:
            return None
        return replace(self, collections=self.collections[1:], last_key=None, maximum_key=None)


@dataclass(frozen=True)
class CdcOffset:
    """A stored CDC offset: the binlog position and what rides along with it."""

    position: BinlogPosition
    ts_sec: int = 0
    server_id: int | None = None
    snapshot_running: bool = False
    progress: SnapshotProgress | None = None
    incremental: IncrementalState | None = field(default=None)

    def to_value(self) -> dict[str, Any]:
        """In Debezium's key order (``ts_sec``, ``file``, ``pos``, ``gtids``, then the rest)."""
        value: dict[str, Any] = {"ts_sec": self.ts_sec}
        value.update(self.position.as_offset())
        if self.server_id is not None:
            value["server_id"] = self.server_id
        if self.snapshot_running:
            value["snapshot"] = SNAPSHOT_INITIAL
        if self.progress is not None:
            value[SNAPSHOT_PROGRESS] = self.progress.to_value()
        if self.incremental is not None:
            value[INCREMENTAL] = self.incremental.to_value()
        return value

    @classmethod
    def parse(cls, value: dict[str, Any]) -> CdcOffset:
        """Reads this project's offsets and Debezium's own MariaDB offsets."""
        progress, incremental = value.get(SNAPSHOT_PROGRESS), value.get(INCREMENTAL)
        server_id = value.get("server_id")
        return cls(
            position=BinlogPosition.from_offset(value),
            ts_sec=int(value.get("ts_sec") or 0),
            server_id=None if server_id is None else int(server_id),
            snapshot_running=str(value.get("snapshot", "")).upper() in (SNAPSHOT_INITIAL, "TRUE"),
            progress=None if progress is None else SnapshotProgress.parse(progress),
            incremental=None if incremental is None else IncrementalState.parse(incremental),
        )
