"""Source offsets: Kafka Connect's shapes, in a compacted topic keyed like Kafka Connect's own.

An offset is its own type per reader (:class:`TimestampIncrementingOffset` for the JDBC source),
stored as a JSON value under the key ``["<connector>", <partition>]``: the partition is
``{"protocol": "1", "table": "<db>.<table>"}`` for a table and ``{"query": "query"}`` in query
mode, exactly as the JDBC source writes them, so offsets move between Kafka Connect and here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.connect.schema import EPOCH, from_epoch_millis
from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end, topic_partitions
from mungmo_pipelines.core.kafka.topics import ensure_topic

OFFSET_PROTOCOL = "1"
QUERY_PARTITION = {"query": "query"}
GAP_HORIZON = "gap_horizon"
OFFSETS_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(3_600_000)}


def table_partition(database: str, table: str | None) -> dict[str, str]:
    """The JDBC source's offset partition of a table (``None``: the connector's query)."""
    if table is None:
        return dict(QUERY_PARTITION)
    return {"protocol": OFFSET_PROTOCOL, "table": f"{database}.{table}"}


def offset_key(connector: str, partition: dict[str, Any]) -> bytes:
    """The offsets topic's key: ``["<connector>", <partition>]`` as Kafka Connect writes it."""
    return dumps([connector, partition])


@dataclass(frozen=True)
class GapHorizon:
    """Every id up to ``incrementing`` was handed out before ``observed`` (UTC)."""

    incrementing: int
    observed: dt.datetime


@dataclass(frozen=True)
class TimestampIncrementingOffset:
    """Kafka Connect's ``TimestampIncrementingOffset`` (the JDBC source), plus the incrementing mode's gap horizon."""

    incrementing: int | None = None
    timestamp: dt.datetime | None = None
    horizon: GapHorizon | None = None

    @classmethod
    def parse(cls, value: dict[str, Any] | None) -> TimestampIncrementingOffset | None:
        if value is None:
            return None
        millis = value.get("timestamp")
        horizon = value.get(GAP_HORIZON)
        return cls(
            value.get("incrementing"),
            from_epoch_millis(millis, value.get("timestamp_nanos")) if millis is not None else None,
            GapHorizon(horizon["incrementing"], from_epoch_millis(horizon["timestamp"])) if horizon else None,
        )

    def to_value(self) -> dict[str, Any]:
        """The stored map, keys in the order Kafka Connect's ``HashMap`` writes them."""
        value: dict[str, Any] = {}
        if self.timestamp is not None:
            value["timestamp_nanos"] = self.timestamp.microsecond * 1000
        if self.incrementing is not None:
            value["incrementing"] = self.incrementing
        if self.timestamp is not None:
            value["timestamp"] = (self.timestamp - EPOCH) // dt.timedelta(milliseconds=1)
        if self.horizon is not None:
            value[GAP_HORIZON] = {
                "incrementing": self.horizon.incrementing,
                "timestamp": (self.horizon.observed - EPOCH) // dt.timedelta(milliseconds=1),
            }
        return value


class SourceOffsetStore:
    """Source offsets in a compacted topic, keyed like Kafka Connect's offsets topic.

    Key ``["<connector>", {"protocol": "1", "table": "<db>.<table>"}]`` (``{"query": "query"}``
    in query mode), value e.g. ``{"incrementing": 42}`` — the JDBC source's own shapes.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, replication_factor: int = 1) -> None:
        self.kafka = kafka
        self.topic = topic
        self.replication_factor = replication_factor

    def ensure_topic(self) -> None:
        ensure_topic(self.kafka, self.topic, 1, self.replication_factor, OFFSETS_TOPIC_CONFIG)

    def load(self, connector: str) -> dict[bytes, dict[str, Any]]:
        """Latest committed offset per partition key of ``connector``."""
        offsets, _ = self.read(connector)
        return offsets

    def read(
        self,
        connector: str,
        since: dict[int, int] | None = None,
        known: dict[bytes, dict[str, Any]] | None = None,
    ) -> tuple[dict[bytes, dict[str, Any]], dict[int, int]]:
        """Offsets of ``connector`` and the positions read up to; pass both back to read only what is new.

        A position beyond the topic's end (the topic was recreated) starts over from the beginning.
        """
        consumer = self.kafka.consumer(isolation_level="read_committed", enable_auto_commit=False)
        try:
            partitions = topic_partitions(consumer, self.topic)
            end = consumer.end_offsets(partitions)
            start = {tp: since[tp.partition] for tp in partitions if since and tp.partition in since}
            if any(position > end[tp] for tp, position in start.items()):
                start, known = {}, None
            offsets = dict(known or {})
            prefix = dumps([connector])[:-1] + b","
            for record in read_to_end(consumer, partitions, start):
                if record.key is None or not record.key.startswith(prefix):
                    continue
                if record.value is None:
                    offsets.pop(record.key, None)
                else:
                    offsets[record.key] = json.loads(record.value)
            return offsets, {tp.partition: max(consumer.position(tp), start.get(tp, 0)) for tp in partitions}
        finally:
            consumer.close()
