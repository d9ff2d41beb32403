"""The seam between the snapshot and the stream: writes while the snapshot reads arrive exactly once,
and incremental snapshots (execute-snapshot signal, additional-conditions, the window algorithm)."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
import pytest

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.mariadb.binlog import BinlogPosition, GtidState
from mungmo_pipelines.core.source.cdc.reader import SnapshotRequest, gtid_state_at
from tests.support.binlog import connect, global_setting, head, replica_settings
from tests.support.cdc import Cdc, Raw, check_chain, fold
from tests.support.sandbox import Sandbox

TABLE = "CREATE TABLE {} (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL) DEFAULT CHARSET=utf8mb4"
SIGNAL = (
    "CREATE TABLE debezium_signal (id VARCHAR(64) NOT NULL PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048))"
)


@contextmanager
def hook(point: str, action: object) -> Iterator[None]:
    faults.install(point, action)  # type: ignore[arg-type]
    try:
        yield
    finally:
        faults.install(point, None)


def rows_of(sandbox: Sandbox, database: str, table: str) -> dict[int, dict[str, object]]:
    return {r[0]: {"id": r[0], "v": r[1]} for r in sandbox.rows(database, f"SELECT id, v FROM {table}")}


def test_writes_at_a_point_of_the_snapshot_arrive_once_each(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(
        database,
        TABLE.format("a"),
        TABLE.format("b"),
        "INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_2000",
        "INSERT INTO b SELECT seq, CONCAT('b', seq) FROM seq_1_to_100",
    )
    cdc = Cdc(
        sandbox, [database], {"snapshot.fetch.size": "50", "transaction.boundary": "poll", "max.batch.size": "64"}
    )
    writer = connect(database)
    seen = {"rows": 0}

    def write_mid_snapshot() -> None:
        seen["rows"] += 1
        if seen["rows"] != 500:
            return
        # Read already (ids < 500), not yet (ids > 500), new ids on both sides, and the table after this one.
        with writer.cursor() as cursor:
            for statement in (
                "UPDATE a SET v = 'changed' WHERE id IN (10, 1500)",
                "DELETE FROM a WHERE id IN (20, 1600)",
                "INSERT INTO a VALUES (0, 'new low'), (5000, 'new high')",
                "UPDATE a SET v = 'twice' WHERE id = 10",
                "UPDATE b SET v = 'changed' WHERE id = 7",
                "DELETE FROM b WHERE id = 8",
                "INSERT INTO b VALUES (500, 'new')",
            ):
                cursor.execute(statement)

    with hook("cdc.snapshot_row", write_mid_snapshot):
        run = cdc.run()
    writer.close()
    assert seen["rows"] == 2100 and run.stats.events["r"] == 2100
    for table in ("a", "b"):
        records = cdc.records(database, table)
        assert check_chain(records) == [], table
        assert fold(records) == rows_of(sandbox, database, table), table
    streamed = [(r.payload["op"], (r.payload["after"] or r.payload["before"])["id"]) for r in cdc.records(database, "a")
                if r.payload and r.payload["op"] != "r"]  # fmt: skip
    assert streamed == [("u", 10), ("u", 1500), ("d", 20), ("d", 1600), ("c", 0), ("c", 5000), ("u", 10)]


def test_a_writer_during_the_snapshot_leaves_every_row_once(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE.format("t"), "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_20000")
    cdc = Cdc(sandbox, [database], {"snapshot.fetch.size": "100"})
    stop = threading.Event()
    written = {"transactions": 0}

    def writer() -> None:
        rng = random.Random(7)
        connection = connect(database)
        with connection.cursor() as cursor:
            while not stop.is_set():
                key = rng.randrange(1, 25_000)
                kind = rng.random()
                if kind < 0.4:
                    cursor.execute("UPDATE t SET v = CONCAT(v, '+') WHERE id = %s", (key,))
                elif kind < 0.6:
                    cursor.execute("DELETE FROM t WHERE id = %s", (key,))
                else:
                    cursor.execute("INSERT IGNORE INTO t VALUES (%s, 'inserted')", (key,))
                written["transactions"] += 1
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        cdc.run()
    finally:
        stop.set()
        thread.join()
    assert written["transactions"] > 50
    cdc.run()  # whatever the writer did after the first run stopped
    records = cdc.records(database, "t")
    assert check_chain(records) == []
    assert fold(records) == rows_of(sandbox, database, "t")


def signal_row(database: str, collections: list[str], conditions: dict[str, str] | None = None) -> str:
    request: dict[str, object] = {"data-collections": collections, "type": "incremental"}
    if conditions:
        request["additional-conditions"] = [{"data-collection": t, "filter": f} for t, f in conditions.items()]
    data = json.dumps(request).replace("\\", "\\\\").replace("'", "''")  # an SQL string literal
    return f"INSERT INTO debezium_signal VALUES ('sig-{time.time_ns()}', 'execute-snapshot', '{data}')"


def incremental_reads(records: list[Raw]) -> list[int]:
    return [r.payload["after"]["id"] for r in records if r.payload and r.payload["source"]["snapshot"] == "incremental"]


@pytest.mark.parametrize("strategy", ["insert_insert", "insert_delete"])
def test_execute_snapshot_signal_with_additional_conditions(sandbox: Sandbox, strategy: str) -> None:
    database = sandbox.database("src")
    sandbox.execute(
        database,
        TABLE.format("a"),
        TABLE.format("b"),
        SIGNAL,
        "INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_10",
        "INSERT INTO b SELECT seq, CONCAT('b', seq) FROM seq_1_to_6",
    )
    cdc = Cdc(
        sandbox,
        [database],
        {"snapshot.mode": "no_data", "signal.data.collection": f"{database}.debezium_signal",
         "incremental.snapshot.chunk.size": "4", "incremental.snapshot.watermarking.strategy": strategy},
    )  # fmt: skip
    cdc.run()
    sandbox.execute(database, signal_row(database, [f"{database}.a", f"{database}\\.b"], {f"{database}.b": "id > 3"}))
    run = cdc.run()
    assert incremental_reads(cdc.records(database, "a")) == list(range(1, 11))
    assert incremental_reads(cdc.records(database, "b")) == [4, 5, 6]
    assert run.stats.incremental.rows == 13 and run.stats.events["r_incremental"] == 13
    signals = [r.payload for r in cdc.records(database, "debezium_signal") if r.payload]
    kinds = [(p["op"], (p["after"] or p["before"])["type"]) for p in signals]
    assert kinds[0] == ("c", "execute-snapshot")
    opens = [k for k in kinds if k == ("c", "snapshot-window-open")]
    assert len(opens) == 5  # a: 4 + 4 + 2 rows, b: 3 rows, then the window that finds nothing more
    if strategy == "insert_insert":
        assert kinds.count(("c", "snapshot-window-close")) == len(opens)
    else:
        assert kinds.count(("d", "snapshot-window-open")) == len(opens)
    # Each window's rows carry the position of the event that closed it.
    first_read = next(r.payload for r in cdc.records(database, "a") if r.payload["source"]["snapshot"] == "incremental")
    closes = [p["source"] for p in signals if p["op"] == "d" or p["after"]["type"] == "snapshot-window-close"]
    assert (first_read["source"]["gtid"], first_read["source"]["pos"]) == (closes[0]["gtid"], closes[0]["pos"])
    assert "mungmo_incremental" not in (cdc.offset() or {})


def documented_signal() -> str:
    """The execute-snapshot row docs/cdc.md shows."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "cdc.md").read_text(encoding="utf-8")
    (sql,) = [q for q in re.findall(r"^```sql\n(.*?)^```", page, re.S | re.M) if "execute-snapshot" in q]
    return sql.strip().rstrip(";")


def test_the_documented_signal_resends_the_rows_its_condition_names(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(
        database,
        "CREATE TABLE test001 (seq INT NOT NULL PRIMARY KEY, member_name VARCHAR(40) NOT NULL)",
        SIGNAL,
        "INSERT INTO test001 SELECT seq, CONCAT('member ', seq) FROM seq_1_to_105",
    )
    cdc = Cdc(
        sandbox, [database], {"snapshot.mode": "no_data", "signal.data.collection": f"{database}.debezium_signal"}
    )
    cdc.run()
    sandbox.execute(database, documented_signal().replace("mungMo.", f"{database}."))
    cdc.run()
    resent = [r.payload["after"]["seq"] for r in cdc.records(database, "test001") if r.payload]
    assert resent == [101, 102, 103, 104, 105]


def test_a_change_inside_the_window_replaces_the_chunks_row(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE.format("a"), SIGNAL, "INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_8")
    cdc = Cdc(sandbox, [database], {"snapshot.mode": "no_data", "signal.data.collection": f"{database}.debezium_signal",
                                    "incremental.snapshot.chunk.size": "4"})  # fmt: skip
    cdc.run()
    writer = connect(database)
    chunks = {"n": 0}

    def change_inside_the_first_window() -> None:
        chunks["n"] += 1
        if chunks["n"] == 1:
            with writer.cursor() as cursor:
                cursor.execute("UPDATE a SET v = 'inside' WHERE id = 2")
                cursor.execute("DELETE FROM a WHERE id = 3")

    sandbox.execute(database, signal_row(database, [f"{database}.a"]))
    with hook("cdc.incremental_chunk", change_inside_the_first_window):
        run = cdc.run()
    writer.close()
    records = cdc.records(database, "a")
    assert incremental_reads(records) == [1, 4, 5, 6, 7, 8]
    assert run.stats.incremental.dropped_by_stream == 2
    assert fold(records) == rows_of(sandbox, database, "a")


def test_a_requested_snapshot_needs_no_signal_row(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE.format("a"), SIGNAL, "INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_9")
    cdc = Cdc(
        sandbox, [database], {"snapshot.mode": "no_data", "signal.data.collection": f"{database}.debezium_signal"}
    )
    cdc.run()
    cdc.run(requests=(SnapshotRequest((f"{database}.a",), {f"{database}.a": "id IN (2, 7)"}, "repair-1"),))
    assert incremental_reads(cdc.records(database, "a")) == [2, 7]
    kinds = [r.payload["after"]["type"] for r in cdc.records(database, "debezium_signal") if r.payload["after"]]
    assert "execute-snapshot" not in kinds and "snapshot-window-open" in kinds


def test_a_run_stopped_inside_an_incremental_snapshot_resumes_it(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    sandbox.execute(database, TABLE.format("a"), SIGNAL, "INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_20")
    cdc = Cdc(sandbox, [database], {"snapshot.mode": "no_data", "signal.data.collection": f"{database}.debezium_signal",
                                    "incremental.snapshot.chunk.size": "5", "transaction.boundary": "poll",
                                    "max.batch.size": "1"})  # fmt: skip
    cdc.run()
    sandbox.execute(database, signal_row(database, [f"{database}.a"]))
    chunks = {"n": 0}

    def fail_on_the_third_chunk() -> None:
        chunks["n"] += 1
        if chunks["n"] == 3:
            raise pymysql.OperationalError(2013, "lost connection (test)")

    with (
        hook("cdc.incremental_chunk", fail_on_the_third_chunk),
        pytest.raises(SourceError, match=r"server .*: MariaDB error 2013: lost connection \(test\)"),
    ):
        cdc.run()
    stored = cdc.offset()
    assert stored is not None and stored["mungmo_incremental"]["last_key"] == [["i", 5]]
    cdc.run()
    reads = incremental_reads(cdc.records(database, "a"))
    assert reads == list(range(1, 21)), reads
    assert "mungmo_incremental" not in (cdc.offset() or {})


def test_a_snapshot_after_an_event_larger_than_max_allowed_packet_finds_its_gtid_state(sandbox: Sandbox) -> None:
    """``BINLOG_GTID_POS`` answers NULL past such an event in the same binlog file (MariaDB stops
    reading there, at the session's max_allowed_packet); the state is then read from the file."""
    database, other = sandbox.database("src"), sandbox.database("big")
    sandbox.execute(other, "CREATE TABLE blob_rows (id INT PRIMARY KEY, body LONGTEXT)")
    with global_setting("max_allowed_packet", "64 * 1024 * 1024"):
        big = connect(other)
        with big.cursor() as cursor:
            cursor.execute("INSERT INTO blob_rows VALUES (1, REPEAT('x', 17 * 1024 * 1024))")
        big.close()
    sandbox.execute(database, TABLE.format("t"), "INSERT INTO t VALUES (1, 'a')")
    before = head()
    sandbox.execute(database, "INSERT INTO t VALUES (2, 'b')")  # an event now starts there
    session = connect()  # a new session: the restored max_allowed_packet
    with session.cursor() as cursor:
        cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (before.file, before.pos))
        assert cursor.fetchone() == (None,), "the server reads past the large event"
    session.close()

    assert gtid_state_at(replica_settings(), BinlogPosition(GtidState(), before.file, before.pos)) == before.gtids
    cdc = Cdc(sandbox, [database])
    cdc.run()
    sandbox.execute(database, "INSERT INTO t VALUES (3, 'c')")
    cdc.run()
    records = cdc.records(database, "t")
    assert [(r.payload["op"], r.payload["after"]["id"]) for r in records] == [("r", 1), ("r", 2), ("c", 3)]
