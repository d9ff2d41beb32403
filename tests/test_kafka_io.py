"""Kafka plumbing against the real broker: when committed records become visible to readers."""

from __future__ import annotations

from kafka import TopicPartition

from mungmo_pipelines.core.kafka.clients import wait_until_committed_visible
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.kafka.transactions import TransactionalProducer
from tests.support.sandbox import Sandbox


def _transaction(sandbox: Sandbox, name: str, topic: str, commit: bool) -> TransactionalProducer:
    producer = TransactionalProducer(sandbox.kafka, f"mungmo-test-{sandbox.suffix}-{name}")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(3):
        producer.send(topic, f"k{i}".encode(), b"{}")
    producer.flush()
    if commit:
        producer.commit_transaction()
    return producer


def test_committed_records_are_visible_once_the_wait_returns(sandbox: Sandbox) -> None:
    topic = sandbox.topic("visible")
    ensure_topic(sandbox.kafka, topic)
    _transaction(sandbox, "a", topic, commit=True)
    assert wait_until_committed_visible(sandbox.kafka, [topic])
    consumer = sandbox.kafka.consumer(isolation_level="read_committed")
    partition = TopicPartition(topic, 0)
    # 3 records and the commit marker are below the last stable offset.
    assert consumer.end_offsets([partition])[partition] == 4
    consumer.close()


def test_another_producers_open_transaction_is_reported_not_waited_on_forever(sandbox: Sandbox) -> None:
    topic = sandbox.topic("held")
    ensure_topic(sandbox.kafka, topic)
    held = _transaction(sandbox, "held", topic, commit=False)
    try:
        assert not wait_until_committed_visible(sandbox.kafka, [topic], timeout_s=0.5)
    finally:
        held.abort_transaction()
    assert wait_until_committed_visible(sandbox.kafka, [topic])
