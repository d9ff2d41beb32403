"""Bad records and failed writes: dead letters with Kafka Connect's headers, or a run that stops by name."""

from __future__ import annotations

import logging

import pytest
from kafka import TopicPartition

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.errors import SinkError
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.sink.runtime import JdbcSink
from mungmo_pipelines.core.sink.writers import WriterSession
from tests.support.sandbox import Sandbox
from tests.support.sink import (
    MEMBER_FIELDS,
    SinkCase,
    envelope,
    headers_of,
    member,
    new_case,
    read_topic,
)

MALFORMED = b'{"schema": {"type": "struct"'
NO_ENVELOPE = b'{"seq": 4, "member_name": "plain json"}'
WRONG_TYPE = envelope(MEMBER_FIELDS, {"seq": "five", "member_name": "e", "pet_name": None})
TOO_LONG = member(6, "a name longer than the column")
NOT_NULL = member(7, "g", None)


def stream() -> list[tuple[bytes | None, bytes | None]]:
    """Good members 1-3 and 8, and five records that each fail differently (offsets 3 to 7)."""
    return [
        member(1, "a", "p"),
        member(2, "b", "p"),
        member(3, "c", "p"),
        (None, MALFORMED),
        (None, NO_ENVELOPE),
        (None, WRONG_TYPE),
        TOO_LONG,
        NOT_NULL,
        member(8, "h", "p"),
    ]


@pytest.fixture
def case(sandbox: Sandbox) -> SinkCase:
    case = new_case(sandbox)
    # A table the records fit, except for a name longer than 10 characters or a missing pet.
    sandbox.execute(
        case.database,
        f"CREATE TABLE `{case.topic}` (seq INT NOT NULL, member_name VARCHAR(10) NOT NULL, pet_name TEXT NOT NULL)",
    )
    case.produce(stream())
    return case


def test_bad_records_go_to_the_dead_letter_topic_and_good_ones_land(case: SinkCase) -> None:
    dlq = case.sandbox.topic("dlq")
    config = case.config(errors_tolerance="all", errors_deadletterqueue_topic_name=dlq)
    run = case.run(config)
    assert case.rows() == [(1, "a", "p"), (2, "b", "p"), (3, "c", "p"), (8, "h", "p")]
    assert (run.stats(case.topic).inserted, run.stats(case.topic).dead_lettered) == (4, 5)
    assert case.stored_offsets() == {TopicPartition(case.topic, 0): 9}

    letters = read_topic(case.sandbox.kafka, dlq)
    assert [r.value for r in letters] == [MALFORMED, NO_ENVELOPE, WRONG_TYPE, TOO_LONG[1], NOT_NULL[1]]
    assert [r.key for r in letters] == [None, None, None, TOO_LONG[0], NOT_NULL[0]]
    headers = [headers_of(r) for r in letters]
    for offset, header in zip(range(3, 8), headers, strict=True):
        assert header["__connect.errors.topic"] == case.topic
        assert header["__connect.errors.partition"] == "0"
        assert header["__connect.errors.offset"] == str(offset)
        assert header["__connect.errors.connector.name"] == config.name
        assert header["__connect.errors.task.id"] == "0"
        assert "Traceback" in header["__connect.errors.exception.stacktrace"]
    stages = [(h["__connect.errors.stage"], h["__connect.errors.exception.class.name"]) for h in headers]
    assert stages == [
        ("VALUE_CONVERTER", "mungmo_pipelines.core.errors.MalformedRecord"),
        ("VALUE_CONVERTER", "mungmo_pipelines.core.errors.MalformedRecord"),
        ("TASK_PUT", "mungmo_pipelines.core.errors.MalformedRecord"),
        ("TASK_PUT", "pymysql.err.DataError"),
        ("TASK_PUT", "pymysql.err.IntegrityError"),
    ]
    messages = [h["__connect.errors.exception.message"] for h in headers]
    assert "value is not valid JSON" in messages[0]
    assert 'lacks the JsonConverter envelope: expected an object with exactly "schema" and "payload"' in messages[1]
    assert (
        "value field 'seq': expected an int32 (a JSON integer from -2147483648 to 2147483647), got 'five'"
        in (messages[2])
    )
    assert "MariaDB error 1406: Data too long for column 'member_name'" in messages[3]
    assert "MariaDB error 1048: Column 'pet_name' cannot be null" in messages[4]
    assert headers[0]["__connect.errors.class.name"] == "mungmo_pipelines.core.sink.runtime.JdbcSink"


def test_context_headers_can_be_turned_off_and_original_headers_are_kept(sandbox: Sandbox) -> None:
    case = new_case(sandbox)
    ensure_topic(sandbox.kafka, case.topic)
    producer = sandbox.kafka.producer()
    producer.send(case.topic, value=MALFORMED, headers=[("trace-id", b"abc")])
    producer.flush()
    producer.close()
    dlq = sandbox.topic("dlq")
    case.run(
        case.config(
            auto_create="true",
            errors_tolerance="all",
            errors_deadletterqueue_topic_name=dlq,
            errors_deadletterqueue_context_headers_enable="false",
        )
    )
    (letter,) = read_topic(sandbox.kafka, dlq)
    assert letter.headers == [("trace-id", b"abc")]


def test_with_tolerance_none_the_run_names_the_record_and_commits_nothing_past_it(case: SinkCase) -> None:
    with pytest.raises(SinkError) as raised:
        case.run(case.config(batch_size="2"))
    assert f"record {case.topic}[0]@3 failed at VALUE_CONVERTER: value is not valid JSON" in str(raised.value)
    # Batches [0,1] committed; the batch holding offset 3 ([2,3]) did not.
    assert case.rows() == [(1, "a", "p"), (2, "b", "p")]
    assert case.stored_offsets() == {TopicPartition(case.topic, 0): 2}


def test_a_failed_write_with_tolerance_none_names_record_and_database_error(sandbox: Sandbox) -> None:
    case = new_case(sandbox)
    sandbox.execute(case.database, f"CREATE TABLE `{case.topic}` (seq INT, member_name VARCHAR(3), pet_name TEXT)")
    case.produce([member(1, "abc"), member(2, "abcd"), member(3, "x")])
    with pytest.raises(SinkError) as raised:
        case.run(case.config())
    message = str(raised.value)
    assert f"record {case.topic}[0]@1 failed at TASK_PUT" in message
    assert "MariaDB error 1406: Data too long for column 'member_name' at row 1" in message
    assert case.rows() == [] and case.stored_offsets() == {}


def test_the_write_session_is_strict_whatever_the_server_default(sandbox: Sandbox) -> None:
    case = new_case(sandbox)
    session = WriterSession(sandbox.engine(case.database), case.config())
    try:
        with session.connection().cursor() as cursor:
            cursor.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
            (mode, zone) = cursor.fetchone()
    finally:
        session.close()
    assert "STRICT_ALL_TABLES" in mode.split(",") and "NO_AUTO_VALUE_ON_ZERO" in mode.split(",")
    assert zone == "+00:00"


def test_tables_that_cannot_roll_back_are_refused(sandbox: Sandbox) -> None:
    case = new_case(sandbox)
    sandbox.execute(
        case.database, f"CREATE TABLE `{case.topic}` (seq INT, member_name TEXT, pet_name TEXT) ENGINE=Aria"
    )
    case.produce([member(1, "a")])
    with pytest.raises(SinkError, match=r"uses engine Aria, which cannot roll back a batch"):
        case.run(case.config())


def kill_writer_connection(sandbox: Sandbox, session_lock: str) -> None:
    """Kill the connection that holds the sink's named lock: a lost connection mid-transaction."""
    with sandbox.admin.connect() as conn:
        (holder,) = conn.exec_driver_sql("SELECT IS_USED_LOCK(%s)", (session_lock,)).one()
        conn.exec_driver_sql(f"KILL CONNECTION {int(holder)}")


def test_lost_connection_is_retried_on_a_fresh_connection(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    case = new_case(sandbox)
    case.produce([member(i, f"m{i}") for i in range(1, 31)])
    config = case.config(auto_create="true", batch_size="10", max_retries="2", retry_backoff_ms="10")
    lock = WriterSession(sandbox.engine(case.database), config).lock_name
    kills = iter([True, False, False, False])

    def kill_on_first_batch() -> None:
        if next(kills):
            kill_writer_connection(sandbox, lock)

    faults.install("sink.rows_written", kill_on_first_batch)
    try:
        with caplog.at_level(logging.WARNING, logger="mungmo_pipelines.core.sink"):
            run = JdbcSink(config, sandbox.engine(case.database), sandbox.kafka).run()
    finally:
        faults.install("sink.rows_written", None)
    assert run.stats(case.topic).inserted == 30
    assert [r[0] for r in case.rows()] == list(range(1, 31))
    assert any("retry 1 of 2" in message for message in caplog.messages)


def test_retries_are_bounded_by_max_retries(sandbox: Sandbox) -> None:
    case = new_case(sandbox)
    case.produce([member(1, "a")])
    config = case.config(auto_create="true", max_retries="0")
    lock = WriterSession(sandbox.engine(case.database), config).lock_name
    faults.install("sink.rows_written", lambda: kill_writer_connection(sandbox, lock))
    try:
        with pytest.raises(SinkError, match=r"still after max\.retries=0"):
            case.run(config)
    finally:
        faults.install("sink.rows_written", None)
    assert case.rows() == []


def test_a_second_run_of_the_same_connector_cannot_interleave(sandbox: Sandbox) -> None:
    """Offsets moved under a run (here by hand, as a runaway process would) stop it before it commits."""
    case = new_case(sandbox)
    case.produce([member(i, f"m{i}") for i in range(1, 5)])
    config = case.config(auto_create="true", batch_size="2")

    def move_offsets() -> None:
        sandbox.execute(case.database, "UPDATE _connect_sink_offsets SET next_offset = 4")

    faults.install("sink.committed", move_offsets)
    try:
        with pytest.raises(SinkError, match=r"stored offsets moved during this run .* expected 2, found 4"):
            case.run(config)
    finally:
        faults.install("sink.committed", None)
    assert [r[0] for r in case.rows()] == [1, 2]
