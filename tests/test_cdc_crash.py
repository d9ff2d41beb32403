"""kill -9 of the CDC source at its commit points, in the snapshot and at random times, then a rerun:
a ``read_committed`` consumer sees every change exactly once (streaming) and ends with the table
(snapshot, which resumes after its last committed row)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mungmo_pipelines.core.faults import FAULT_INJECTION_ENV
from tests.support.binlog import connect
from tests.support.cdc import Cdc, check_chain, fold
from tests.support.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
TABLE = "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL) DEFAULT CHARSET=utf8mb4"

# The source in its own process; MUNGMO_FAULT_INJECTION=<point>:N makes it SIGKILL itself (core/faults.py).
SOURCE_RUN = """
import json, sys
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.source.cdc.reader import run_cdc_source

config = parse_connector(json.loads(sys.argv[1]))
run_cdc_source(config, config.connection, KafkaSettings(sys.argv[2]))
"""


def start(cdc: Cdc, fault: str | None = None, **options: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(ROOT / ".no-dagster-home")}
    env.pop(FAULT_INJECTION_ENV, None)
    if fault:
        env[FAULT_INJECTION_ENV] = fault
    body = json.dumps(cdc.body(**options))
    return subprocess.Popen(
        [sys.executable, "-c", SOURCE_RUN, body, cdc.sandbox.kafka.bootstrap_servers],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def table_rows(sandbox: Sandbox, database: str) -> dict[int, dict[str, object]]:
    return {row[0]: {"id": row[0], "v": row[1]} for row in sandbox.rows(database, "SELECT id, v FROM t")}


def write_changes(database: str, first_id: int, transactions: int) -> int:
    """Single-row inserts, updates, multi-row inserts and deletes, each its own transaction; returns
    the records they make (a delete makes two: the event and its tombstone)."""
    records = 0
    connection = connect(database)
    with connection.cursor() as cursor:
        for n in range(transactions):
            key = first_id + n
            cursor.execute("INSERT INTO t VALUES (%s, %s)", (key, f"v{key}"))
            records += 1
            if n % 4 == 1:
                cursor.execute("UPDATE t SET v = CONCAT(v, '+') WHERE id = %s", (key - 1,))
                records += 1
            if n % 7 == 3:
                cursor.execute("INSERT INTO t VALUES (%s, 'a'), (%s, 'b')", (100_000 + key * 2, 100_000 + key * 2 + 1))
                records += 2
            if n % 9 == 5:
                cursor.execute("DELETE FROM t WHERE id = %s", (key - 2,))
                records += 2
    connection.close()
    return records


def test_kill_before_a_streaming_commit_then_rerun_sends_each_change_once(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE, "INSERT INTO t VALUES (1, 'a')")
    cdc = Cdc(sandbox, [database], {"transaction.boundary": "poll", "max.batch.size": "2"})
    cdc.run()
    # Three-row transactions first: a Kafka transaction that ended inside one would show after the crash.
    for k in (1000, 2000, 3000):
        sandbox.execute(database, f"INSERT INTO t VALUES ({k}, 'x'), ({k + 1}, 'y'), ({k + 2}, 'z')")
    records = 10 + write_changes(database, 10, 60)

    crashed = start(cdc, "source.before_commit:3")
    assert crashed.wait(120) == -9, crashed.stderr.read().decode() if crashed.stderr else ""
    committed = cdc.records(database, "t")
    written = cdc.records(database, "t", isolation="read_uncommitted")
    assert 1 < len(committed) < records and len(written) > len(committed), "killed with a transaction in flight"
    assert check_chain(committed) == []

    cdc.run()
    final = cdc.records(database, "t")
    assert check_chain(final) == []
    assert len(final) == records
    assert fold(final) == table_rows(sandbox, database)


@pytest.mark.parametrize("fault", ["cdc.snapshot_row:1500", "source.before_commit:6"])
def test_kill_in_the_snapshot_then_rerun_resumes_after_the_last_committed_row(sandbox: Sandbox, fault: str) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE, "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000")
    cdc = Cdc(
        sandbox, [database], {"transaction.boundary": "poll", "max.batch.size": "200", "snapshot.fetch.size": "50"}
    )

    crashed = start(cdc, fault)
    assert crashed.wait(120) == -9, crashed.stderr.read().decode() if crashed.stderr else ""
    stored = cdc.offset()
    assert stored is not None and stored["snapshot"] == "INITIAL"
    committed = [r.payload["after"]["id"] for r in cdc.records(database, "t")]
    assert stored["mungmo_snapshot"] == {"table": f"{database}.t", "after": [["i", committed[-1]]]}
    assert committed == list(range(1, len(committed) + 1)) and 0 < len(committed) < 3000

    # Changes between the crash and the rerun, on both sides of the committed row.
    last = committed[-1]
    sandbox.execute(
        database,
        f"UPDATE t SET v = 'early' WHERE id IN (1, {last})",
        f"UPDATE t SET v = 'late' WHERE id IN ({last + 1}, 2999)",
        f"DELETE FROM t WHERE id IN (2, {last + 2})",
        "INSERT INTO t VALUES (5000, 'new')",
    )
    run = cdc.run()
    assert run.stats.started_with.startswith(f"snapshot resumed after {database}.t")
    final = cdc.records(database, "t")
    assert fold(final) == table_rows(sandbox, database)
    # Rows before the committed one came from the first view and are not read again.
    reads = [r.payload["after"]["id"] for r in final if r.payload and r.payload["op"] == "r"]
    assert len(reads) == len(set(reads))
    assert cdc.offset() is not None and "snapshot" not in cdc.offset()


def test_kills_at_random_times_while_writes_go_on_then_a_rerun_sends_each_change_once(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE, "INSERT INTO t VALUES (1, 'a')")
    cdc = Cdc(
        sandbox,
        [database],
        {"transaction.boundary": "poll", "max.batch.size": "3", "mungmo.streaming.duration.ms": "20000",
         "mungmo.streaming.idle.ms": "3000"},
    )  # fmt: skip
    cdc.run()
    records = [1]
    stop = threading.Event()

    def writer() -> None:
        first = 10
        while not stop.is_set():
            records.append(write_changes(database, first, 5))
            first += 5
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    kills = 0
    try:
        rng = random.Random(20260101)
        for _ in range(4):
            process = start(cdc)
            time.sleep(rng.uniform(1.5, 4.0))
            process.kill()
            kills += process.wait(60) == -9
    finally:
        stop.set()
        thread.join()
    assert kills >= 3, "the runs were killed while they ran"
    cdc.run(**{"mungmo.streaming.duration.ms": "0"})
    final = cdc.records(database, "t")
    assert check_chain(final) == []
    assert len(final) == sum(records)
    assert fold(final) == table_rows(sandbox, database)
