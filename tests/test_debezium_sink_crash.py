"""Exactly-once for Debezium change events: a Debezium sink process killed with SIGKILL at each step of
its commit protocol, truncates included, then rerun, leaves the table the events describe."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from mungmo_pipelines.core.connect.json_converter import dumps
from tests.support.debezium import GoldenRecord, golden_records, new_debezium_case, replay
from tests.support.sandbox import Sandbox
from tests.support.sink_process import finish, start_sink, stored_total

TEMPLATE = golden_records("default", "sink_flow")  # r, r, r, c, u, d, tombstone, d, tombstone, c


def event(template: GoldenRecord, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
    """A change event in the envelope Debezium wrote for sink_flow, with other rows in it."""
    document = json.loads(template.value or b"")
    document["payload"].update(op=op, before=before, after=after)
    return dumps(document)


def key(row_id: int) -> bytes:
    document = json.loads(TEMPLATE[0].key or b"")
    document["payload"] = {"id": row_id}
    return dumps(document)


def change_stream(count: int) -> tuple[list[GoldenRecord], dict[int, str]]:
    """Creates, updates, deletes with tombstones, key changes and two truncates, and the rows they leave."""
    row = dict(TEMPLATE[0].event["after"])  # type: ignore[index]
    updates = TEMPLATE[4]
    records: list[GoldenRecord] = []
    state: dict[int, str] = {}

    def add(record_key: bytes | None, value: bytes | None) -> None:
        records.append(GoldenRecord(TEMPLATE[0].topic, len(records), record_key, value, ()))

    for i in range(count):
        row_id = i % 97
        name = f"row {i}"
        if i in (count // 3, 2 * count // 3):
            add(None, event(TEMPLATE[0], "t", None, None))
            state.clear()
        elif row_id in state and i % 5 == 0:
            add(key(row_id), event(updates, "d", {**row, "id": row_id, "name": state[row_id]}, None))
            add(key(row_id), None)
            del state[row_id]
        elif row_id in state and i % 7 == 0:  # a key change: d + tombstone + c, as Debezium sends it
            moved = row_id + 1000
            add(key(row_id), event(updates, "d", {**row, "id": row_id, "name": state[row_id]}, None))
            add(key(row_id), None)
            add(key(moved), event(TEMPLATE[3], "c", None, {**row, "id": moved, "name": name}))
            del state[row_id]
            state[moved] = name
        else:
            op = "u" if row_id in state else "c"
            add(
                key(row_id), event(updates if op == "u" else TEMPLATE[3], op, None, {**row, "id": row_id, "name": name})
            )
            state[row_id] = name
    return records, state


OPTIONS = {
    "insert.mode": "upsert",
    "primary.key.mode": "record_key",
    "delete.enabled": "true",
    "truncate.enabled": "true",
    "schema.evolution": "basic",
    "batch.size": "40",
}


@pytest.mark.parametrize(
    "fault",
    [
        "sink.rows_written:3",  # rows of batch 3 written, its offsets not yet
        "sink.before_commit:4",  # rows and offsets written, COMMIT not sent
        "sink.committed:2",  # batch 2 committed, consumer group not told
        "sink.truncated:1",  # TRUNCATE done (it commits), the offset past it not stored
        "sink.truncated:2",
    ],
)
def test_kill_at_a_commit_step_then_rerun_leaves_what_the_events_say(
    sandbox: Sandbox, tmp_path: Path, fault: str
) -> None:
    case = new_debezium_case(sandbox, "sink_flow")
    records, expected = change_stream(600)
    replay(sandbox, case.topic, records)
    body = case.body(**OPTIONS)

    assert finish(start_sink(body, tmp_path, fault)) == -signal.SIGKILL
    assert stored_total(sandbox, case.database) < len(records)
    assert finish(start_sink(body, tmp_path)) == 0

    assert case.rows(f"SELECT id, name FROM `{case.table}` ORDER BY id") == sorted(expected.items())
    assert stored_total(sandbox, case.database) == len(records)
