"""How far a connector is behind: one shape for runs, sensors and status, sources and sinks alike.

A sink's lag is per topic partition: the next offset it would read against the partition's end
(the last stable offset a ``read_committed`` consumer sees).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.sink.offsets import sink_consumer, starting_positions, stored_positions, topic_partitions_of


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    position: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)


@dataclass(frozen=True)
class SinkLag:
    """How far a sink connector is behind its topics, per partition."""

    connector: str
    partitions: tuple[PartitionLag, ...]
    missing_topics: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def end_offsets(self) -> dict[str, dict[int, int]]:
        ends: dict[str, dict[int, int]] = {}
        for p in self.partitions:
            ends.setdefault(p.topic, {})[p.partition] = p.end
        return ends

    def positions(self) -> dict[str, dict[int, int]]:
        positions: dict[str, dict[int, int]] = {}
        for p in self.partitions:
            positions.setdefault(p.topic, {})[p.partition] = p.position
        return positions


def measure_lag(config: SinkConfig, engine: Engine, kafka: KafkaSettings) -> SinkLag:
    """The connector's lag now: stored (or starting) positions against the topics' end offsets."""
    consumer = sink_consumer(kafka, config)
    try:
        partitions, missing = topic_partitions_of(config, consumer)
        if not partitions:
            return SinkLag(config.name, (), tuple(missing))
        start, end = starting_positions(config, consumer, partitions, stored_positions(engine, config.name))
    finally:
        consumer.close()
    return SinkLag(
        config.name,
        tuple(PartitionLag(tp.topic, tp.partition, start[tp], end[tp]) for tp in partitions),
        tuple(missing),
    )
