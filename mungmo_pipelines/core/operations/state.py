"""Connector target states (running, paused, stopped), shared by every process through one compacted topic.

Kafka Connect keeps a connector's target state in its config topic under ``target-state-<name>``
(value ``{"state": ..., "state.v2": ...}``); this topic uses the same keys and values, plus when
and through what the state was set. No record means running, as a new Kafka Connect connector is.
Sensors, runs, the CLI and the REST endpoint read it, so a pause from any of them holds in every
process and every deployment on the same Kafka cluster.

Reading is one fetch of a small compacted topic. A long-lived process (the code server where
sensors tick, the REST endpoint) keeps a :class:`TargetStateReader` open and reads only what is
new; a run reads once at its start (``bench/operations.py`` measures both).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from mungmo_pipelines.core.kafka.clients import KafkaSettings, read_to_end
from mungmo_pipelines.core.kafka.topics import ensure_topic

KEY_PREFIX = "target-state-"
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact"}


class TargetState(StrEnum):
    """What the operator wants a connector to do."""

    RUNNING = "RUNNING"  # sensors request runs, runs move data
    PAUSED = "PAUSED"  # sensors skip, runs end skipped
    STOPPED = "STOPPED"  # as paused, and its offsets may be changed (KIP-875)

    @property
    def stored(self) -> dict[str, str]:
        """Kafka Connect's value: ``state`` for old workers (STARTED or PAUSED), ``state.v2`` exact."""
        legacy = "STARTED" if self is TargetState.RUNNING else "PAUSED"
        return {"state": legacy, "state.v2": "STARTED" if self is TargetState.RUNNING else self.value}

    @classmethod
    def from_stored(cls, value: dict[str, Any]) -> TargetState:
        state = str(value.get("state.v2") or value.get("state"))
        return cls.RUNNING if state in ("STARTED", "RUNNING") else cls(state)


@dataclass(frozen=True)
class StateRecord:
    """A connector's target state, when it was set and through what (``cli``, ``rest``, ``dagster``)."""

    state: TargetState = TargetState.RUNNING
    updated_at: str | None = None
    by: str | None = None

    def describe(self, connector: str) -> str:
        since = f" since {self.updated_at}" if self.updated_at else ""
        through = f" (set through {self.by})" if self.by else ""
        return f"connector {connector!r} is {self.state.value}{since}{through}"


def _key(connector: str) -> bytes:
    return f"{KEY_PREFIX}{connector}".encode()


def _record(value: bytes) -> StateRecord:
    stored = json.loads(value)
    return StateRecord(TargetState.from_stored(stored), stored.get("updated_at"), stored.get("by"))


class TargetStateStore:
    """Writes target states; reads them all at once (see :class:`TargetStateReader` to keep reading)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic

    def put(self, connector: str, state: TargetState, by: str) -> StateRecord:
        ensure_topic(self.kafka, self.topic, 1, 1, STATE_TOPIC_CONFIG)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        value = {**state.stored, "updated_at": now, "by": by}
        self._send(_key(connector), json.dumps(value).encode())
        return StateRecord(state, now, by)

    def remove(self, connector: str) -> None:
        """A tombstone: the connector has no state any more (it was deleted)."""
        self._send(_key(connector), None)

    def _send(self, key: bytes, value: bytes | None) -> None:
        producer = self.kafka.producer(acks="all")
        try:
            producer.send(self.topic, key=key, value=value).get(timeout=30)
        finally:
            producer.close()

    def read(self) -> dict[str, StateRecord]:
        reader = TargetStateReader(self.kafka, self.topic)
        try:
            return reader.states()
        finally:
            reader.close()

    def get(self, connector: str) -> StateRecord:
        return self.read().get(connector, StateRecord())


class TargetStateReader:
    """Every connector's target state, read incrementally through one consumer kept open.

    Each call reads from where the last one stopped to the topic's end now, so a state written
    before the call is always seen. Thread-safe: sensors of one code server tick in threads.
    """

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._position = 0
        self._states: dict[str, StateRecord] = {}

    def states(self) -> dict[str, StateRecord]:
        with self._lock:
            try:
                return self._read()
            except KafkaError:
                self._close()  # the next call starts over on a new connection
                raise

    def get(self, connector: str) -> StateRecord:
        return self.states().get(connector, StateRecord())

    def _read(self) -> dict[str, StateRecord]:
        if self._consumer is None:
            consumer = self.kafka.consumer(enable_auto_commit=False)
            if not consumer.partitions_for_topic(self.topic):
                consumer.close()
                return {}  # nothing was ever paused or stopped
            self._consumer, self._position, self._states = consumer, 0, {}
        consumer = self._consumer
        partition = TopicPartition(self.topic, 0)
        end = consumer.end_offsets([partition])[partition]
        if end < self._position:  # the topic was recreated
            self._position, self._states = 0, {}
        for record in read_to_end(consumer, [partition], {partition: self._position}, end={partition: end}):
            if record.key is None or not record.key.startswith(KEY_PREFIX.encode()):
                continue
            name = record.key[len(KEY_PREFIX) :].decode()
            if record.value is None:
                self._states.pop(name, None)
            else:
                self._states[name] = _record(record.value)
        self._position = end
        return dict(self._states)

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = None

    def close(self) -> None:
        with self._lock:
            self._close()


_shared: dict[tuple[str, str], TargetStateReader] = {}
_shared_lock = threading.Lock()


def shared_reader(kafka: KafkaSettings, topic: str) -> TargetStateReader:
    """One reader per cluster and topic for the whole process (a code server's sensors share it)."""
    with _shared_lock:
        key = (kafka.bootstrap_servers, topic)
        if key not in _shared:
            _shared[key] = TargetStateReader(kafka, topic)
        return _shared[key]
