"""Dead letters of records larger than the broker's default, a dead letter the broker refuses, and batches done
again after one: each bad record reaches the dead-letter topic once, each good one its table once."""

from __future__ import annotations

import logging
import re

import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from mungmo_pipelines.core.errors import SinkError
from mungmo_pipelines.core.kafka.topics import ensure_topic, max_message_bytes
from tests.support.sandbox import Sandbox
from tests.support.sink import Message, SinkCase, headers_of, member, new_case, read_topic

SOURCE_TOPIC_LIMIT = 4 * 1024 * 1024
BIG = 2 * 1024 * 1024


def big_bad_record() -> Message:
    """A 2 MiB value that is not JSON: bad at VALUE_CONVERTER, and larger than the broker's 1 MB default."""
    return None, b"{" + b"x" * BIG


def small_bad_record(n: int) -> Message:
    return None, f"not json {n}".encode()


def produce_large(case: SinkCase, messages: list[Message]) -> None:
    """Into a topic that takes records up to 4 MiB, as a source of large rows would have it."""
    kafka = case.sandbox.kafka
    ensure_topic(kafka, case.topic, 1, 1, {"max.message.bytes": str(SOURCE_TOPIC_LIMIT)})
    producer = kafka.producer(acks="all", max_request_size=SOURCE_TOPIC_LIMIT)
    try:
        for key, value in messages:
            producer.send(case.topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def stream() -> list[Message]:
    """Good members 1-2, three small bad records, a 2 MiB bad one, good member 3: offsets 0 to 6."""
    return [member(1, "a"), member(2, "b"), *(small_bad_record(n) for n in range(3)), big_bad_record(), member(3, "c")]


@pytest.fixture
def case(sandbox: Sandbox) -> SinkCase:
    case = new_case(sandbox)
    produce_large(case, stream())
    return case


def test_a_record_larger_than_the_broker_default_is_dead_lettered_whole(case: SinkCase) -> None:
    dlq = case.sandbox.topic("dlq")
    run = case.run(case.config(auto_create="true", errors_tolerance="all", errors_deadletterqueue_topic_name=dlq))
    assert [r[0] for r in case.rows()] == [1, 2, 3]
    assert run.stats(case.topic).dead_lettered == 4
    letters = read_topic(case.sandbox.kafka, dlq)
    assert [headers_of(r)["__connect.errors.offset"] for r in letters] == ["2", "3", "4", "5"]
    assert letters[3].value == big_bad_record()[1]
    assert max_message_bytes(case.sandbox.kafka, [dlq])[dlq] >= SOURCE_TOPIC_LIMIT


def test_a_refused_dead_letter_names_the_record_and_acknowledged_ones_are_not_sent_again(
    case: SinkCase, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = case.sandbox.kafka
    dlq = case.sandbox.topic("dlq")
    ensure_topic(kafka, dlq)  # made beforehand with the broker's default: it takes 1 MB
    config = case.config(auto_create="true", errors_tolerance="all", errors_deadletterqueue_topic_name=dlq)

    for _ in range(2):
        with caplog.at_level(logging.WARNING), pytest.raises(SinkError) as raised:
            case.run(config)
        message = str(raised.value)
        assert re.match(rf"connector '{config.name}': record {case.topic}\[0\]@5 \(2,\d{{3}},\d{{3}} bytes", message)
        assert f"could not be dead-lettered to {dlq!r} (max.message.bytes 1,048,588): " in message
        assert "MessageSizeTooLargeError" in message
        assert "Nothing of its batch was committed" in message
        assert case.rows() == [] and case.stored_offsets() == {}
        offsets = [headers_of(r)["__connect.errors.offset"] for r in read_topic(kafka, dlq)]
        assert offsets == ["2", "3", "4"], "the acknowledged dead letters are sent once, not again on the rerun"
    assert f"dead-letter topic {dlq!r} takes records up to 1048588 bytes" in caplog.text

    admin = kafka.admin()
    try:
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, dlq, configs={"max.message.bytes": str(SOURCE_TOPIC_LIMIT)})]
        )
    finally:
        admin.close()
    run = case.run(config)
    assert run.stats(case.topic).dead_lettered == 4
    assert [r[0] for r in case.rows()] == [1, 2, 3]
    assert case.stored_offsets() == {TopicPartition(case.topic, 0): 7}
    assert [headers_of(r)["__connect.errors.offset"] for r in read_topic(kafka, dlq)] == ["2", "3", "4", "5"]
    assert case.sandbox.rows(case.database, "SELECT COUNT(*) FROM _connect_sink_dead_letters") == [(0,)]
