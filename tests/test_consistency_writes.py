"""No false alarms while the source is written: a steady writer on the source, a stand-in pipeline
copying each change to the target a second late, and a check that compares at a point and re-checks.

The stand-in is not Kafka: it is the simplest pipeline with a lag and a position (the number of
source writes so far), which is all the engine's protocol needs from the real ones.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque

from mungmo_pipelines.core.consistency import CheckSettings, SyncPoints, TableSpec
from mungmo_pipelines.core.mariadb.session import admin_connection
from tests.support.consistency import keys_of, run_check
from tests.support.sandbox import Sandbox
from tests.support.threads import Background

SOURCE = """CREATE TABLE members (
  id INT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, score DECIMAL(7,2) NULL, updated_at DATETIME(6) NOT NULL
) DEFAULT CHARSET=utf8mb4"""
TARGET = """CREATE TABLE members (
  id INT NOT NULL PRIMARY KEY, name LONGTEXT NOT NULL, score DECIMAL(7,2) NULL, updated_at DATETIME(3) NOT NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""
ROWS = 20_000
UNTOUCHED = 100  # ids 1..100 are never written by the writer: the test breaks them by hand
HOT = 150  # updated every fifth write: always ahead of the target
LAG_S = 1.0
WRITES_PER_S = 50
SETTINGS = CheckSettings(chunk_seconds=0.05, piece_rows=64)


class LaggingPipeline(Background):
    """A writer inserting, updating and deleting source rows at a steady rate, and a copier applying
    each write's row image (or its delete) to the target ``LAG_S`` after it was made, in write order,
    as a change-data-capture pipeline with a lag would. The source's point is the number of writes."""

    def __init__(self, source_db: str, target_db: str) -> None:
        self.source_db, self.target_db = source_db, target_db
        self._written: deque[tuple[int, int, tuple | None, float]] = deque()  # (write number, key, row, when)
        self.writes = 0
        self.applied = 0
        self._lock = threading.Lock()
        super().__init__(self._write, self._copy, join_timeout_s=10)

    def source_point(self) -> int:
        with self._lock:
            return self.writes

    def wait_until_applied(self, point: int) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._lock:
                if self.applied >= point:
                    return True
            time.sleep(0.02)
        return False

    def _write(self) -> None:
        rng = random.Random(5)
        live = [key for key in range(UNTOUCHED + 1, ROWS + 1) if key != HOT]
        next_id = ROWS + 1
        try:
            with admin_connection(self.source_db) as conn, conn.cursor() as cursor:
                while not self.stopping:
                    action = rng.random()
                    score = rng.randint(0, 9999) / 100
                    if self.writes % 5 == 0:
                        key = HOT
                        cursor.execute("UPDATE members SET name = %s WHERE id = %s", (f"hot-{self.writes}", key))
                    elif action < 0.4:
                        key, next_id = next_id, next_id + 1
                        cursor.execute("INSERT INTO members VALUES (%s, %s, %s, NOW(6))", (key, f"new-{key}", score))
                        live.append(key)
                    elif action < 0.8:
                        key = rng.choice(live)
                        cursor.execute(
                            "UPDATE members SET name = %s, score = %s, updated_at = NOW(6) WHERE id = %s",
                            (f"upd-{rng.random()}", score, key),
                        )
                    else:
                        key = live.pop(rng.randrange(len(live)))
                        cursor.execute("DELETE FROM members WHERE id = %s", (key,))
                    # Only this thread writes, so the row read back is the image of this write.
                    cursor.execute("SELECT id, name, score, updated_at FROM members WHERE id = %s", (key,))
                    image = cursor.fetchone()
                    with self._lock:
                        self.writes += 1
                        self._written.append((self.writes, key, image, time.monotonic()))
                    time.sleep(1 / WRITES_PER_S)
        except BaseException as err:
            self.errors.append(err)

    def _copy(self) -> None:
        try:
            with admin_connection(self.target_db) as conn, conn.cursor() as cursor:
                while not self.stopping:
                    with self._lock:
                        ready = self._written and self._written[0][3] <= time.monotonic() - LAG_S
                        due = self._written[0] if ready else None
                    if due is None:
                        time.sleep(0.01)
                        continue
                    number, key, image, _ = due
                    if image is None:
                        cursor.execute("DELETE FROM members WHERE id = %s", (key,))
                    else:
                        cursor.execute("REPLACE INTO members VALUES (%s, %s, %s, %s)", image)
                    with self._lock:
                        self._written.popleft()
                        self.applied = number
        except BaseException as err:
            self.errors.append(err)


def member_tables(sandbox: Sandbox) -> TableSpec:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(
        source_db,
        SOURCE,
        "INSERT INTO members SELECT seq, CONCAT('member-', seq), MOD(seq, 10000) / 100, "
        "'2026-01-01' + INTERVAL seq SECOND + INTERVAL MOD(seq, 999999) MICROSECOND FROM seq_1_to_20000",
    )
    sandbox.execute(target_db, TARGET, f"INSERT INTO members SELECT * FROM `{source_db}`.members")
    return TableSpec(source_db, "members", target_db, "members")


def test_a_writer_during_the_check_gives_no_false_differences(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox)
    with LaggingPipeline(spec.source_database, spec.target_database) as pipeline:
        time.sleep(2 * LAG_S)  # a full lag's worth of changes not yet applied
        unsynced = run_check(sandbox, spec, settings=SETTINGS)
        written_before = pipeline.source_point()
        sync = SyncPoints(pipeline.source_point, pipeline.wait_until_applied)
        result = run_check(sandbox, spec, sync=sync, settings=SETTINGS)
        written_during = pipeline.source_point() - written_before
    # Without the protocol the rows in flight show as differences; with it, none do.
    assert unsynced.differences, "the writer and the lag should make the unsynchronised check see rows in flight"
    assert result.differences == [], result.summary()
    assert result.passed and result.caught_up
    assert written_during >= 10, "the writer must have been writing during the check"
    assert result.stats.candidates > 0 and result.stats.rechecked == result.stats.candidates
    assert result.positions["start"] <= result.positions["rechecks"][0]
    # The key written five times a second changed between the last two reads: in flight, not different.
    in_flight = {d.key[0]: d.reason for d in result.in_flight}
    assert in_flight.get(HOT) == "the source row changed while it was compared", result.summary()


def test_a_broken_row_is_still_found_while_the_writer_writes(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox)
    sandbox.execute(
        spec.target_database,
        "UPDATE members SET name = 'edited by hand' WHERE id = 50",
        "DELETE FROM members WHERE id = 60",
        "INSERT INTO members VALUES (0, 'inserted by hand', NULL, NOW())",
    )
    with LaggingPipeline(spec.source_database, spec.target_database) as pipeline:
        time.sleep(2 * LAG_S)
        sync = SyncPoints(pipeline.source_point, pipeline.wait_until_applied)
        result = run_check(sandbox, spec, sync=sync, settings=SETTINGS)
    assert (keys_of(result, "different"), keys_of(result, "missing"), keys_of(result, "extra")) == ({50}, {60}, {0})
    assert {d.key[0]: [c.column for c in d.columns] for d in result.differences}[50] == ["name"]
