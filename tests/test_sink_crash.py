"""Exactly-once into MariaDB: a sink process killed with SIGKILL anywhere, then rerun, leaves the
target table exactly what the topic says: no duplicate, no gap, even for plain inserts without a key.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.sandbox import Sandbox
from tests.support.sink import SinkCase, headers_of, member, new_case, read_topic, tombstone
from tests.support.sink_process import finish, start_sink
from tests.support.sink_process import stored_total as stored_in

BAD = (None, b"not json")


def sink_process(case: SinkCase, tmp_path: Path, fault: str | None = None, **options: str) -> subprocess.Popen[str]:
    body = case.sandbox.sink_body(
        case.database, topics=case.topic, **{k.replace("_", "."): v for k, v in options.items()}
    )
    return start_sink(body, tmp_path, fault)


def stored_total(case: SinkCase) -> int:
    return stored_in(case.sandbox, case.database)


INSERT = {"auto_create": "true", "batch_size": "50"}
UPSERT = {**INSERT, "insert_mode": "upsert", "pk_mode": "record_key", "delete_enabled": "true"}
WITH_DLQ = {"errors_tolerance": "all"}


@pytest.mark.parametrize(
    ("options", "fault"),
    [
        (INSERT, "sink.rows_written:2"),  # rows of batch 2 written, its offsets not yet
        (INSERT, "sink.before_commit:3"),  # rows and offsets of batch 3 written, COMMIT not sent
        (INSERT, "sink.committed:2"),  # batch 2 committed, consumer group not told
        ({**INSERT, **WITH_DLQ}, "sink.dead_letters_published:1"),  # dead letters acked, batch not committed
        (UPSERT, "sink.rows_written:3"),
        (UPSERT, "sink.before_commit:1"),
    ],
    ids=[
        "insert-rows-written",
        "insert-before-commit",
        "insert-committed",
        "insert-dlq-published",
        "upsert-rows-written",
        "upsert-before-commit",
    ],
)
def test_kill_at_a_commit_step_then_rerun_equals_the_topic(
    sandbox: Sandbox, tmp_path: Path, options: dict[str, str], fault: str
) -> None:
    case = new_case(sandbox)
    messages = [member(i % 70, f"m{i}") for i in range(200)]
    messages[60] = messages[130] = BAD
    messages[90:92] = [tombstone(5), member(5, "reborn")]
    case.produce(messages, partitions=2)
    if "errors_tolerance" in options:
        options = {**options, "errors_deadletterqueue_topic_name": sandbox.topic("dlq")}
    else:
        options = {**options, "errors_tolerance": "all", "errors_deadletterqueue_topic_name": sandbox.topic("dlq")}

    killed = sink_process(case, tmp_path, fault, **options)
    assert finish(killed) == -signal.SIGKILL
    assert finish(sink_process(case, tmp_path, **options)) == 0

    topic = read_topic(sandbox.kafka, case.topic)
    deletes = options.get("delete_enabled") == "true"
    bad = [r for r in topic if r.value == BAD[1] or (r.value is None and not deletes)]
    records = [r for r in topic if r not in bad]
    if options.get("insert_mode") == "upsert":
        latest: dict[int, tuple] = {}
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            seq = json.loads(record.key)["payload"]["seq"]
            if record.value is None:
                latest.pop(seq, None)
            else:
                latest[seq] = (seq, json.loads(record.value)["payload"]["member_name"], None)
        assert case.rows() == sorted(latest.values())
    else:
        expected = Counter(
            (p["seq"], p["member_name"], None) for p in (json.loads(r.value)["payload"] for r in records)
        )
        assert Counter(case.rows()) == expected
    assert stored_total(case) == 200
    letters = read_topic(sandbox.kafka, options["errors_deadletterqueue_topic_name"])
    # Each bad record is dead-lettered at least once; a kill between publishing and committing may repeat it.
    located = {(h["__connect.errors.partition"], h["__connect.errors.offset"]) for h in map(headers_of, letters)}
    assert located == {(str(r.partition), str(r.offset)) for r in bad}


def test_killed_from_outside_at_timed_points_then_rerun_equals_the_topic(sandbox: Sandbox, tmp_path: Path) -> None:
    """``kill -9`` wherever the process happens to be (mid-statement, mid-poll), three times in a row."""
    case = new_case(sandbox)
    total = 20_000
    case.produce((member(i, f"member {i}", "pet") for i in range(total)), partitions=3)
    options = {"auto_create": "true", "batch_size": "200"}
    for threshold in (1_000, 6_000, 12_000):
        process = sink_process(case, tmp_path, **options)
        deadline = time.monotonic() + 60
        while stored_total(case) < threshold and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert finish(process) == -signal.SIGKILL, "the run ended before it could be killed"
        assert stored_total(case) < total
    assert finish(sink_process(case, tmp_path, **options)) == 0
    rows = case.rows(f"SELECT seq FROM `{case.topic}`")
    assert len(rows) == total and {r[0] for r in rows} == set(range(total))
