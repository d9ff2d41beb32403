"""The diff: each kind of difference found and named, composite and string keys, tables that can only
be counted, bisection that reads rows only where they differ, the result as JSON, mode policies."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from mungmo_pipelines.core.config.jdbc_source import SourceMode
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.consistency import CheckResult, CheckSettings, ModePolicy, TableSpec
from mungmo_pipelines.core.consistency.chunks import ChunkSizer
from mungmo_pipelines.core.consistency.jdbc import StoredOffsetRule, jdbc_policy, jdbc_table_spec
from mungmo_pipelines.core.consistency.result import key_value
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.source.offsets import TimestampIncrementingOffset
from tests.support.consistency import differing_columns, keys_of, run_check
from tests.support.sandbox import Sandbox

MEMBERS = """CREATE TABLE members (
  id INT NOT NULL PRIMARY KEY,
  name VARCHAR(40) NOT NULL,
  note TEXT NULL,
  score DECIMAL(7,2) NULL
) DEFAULT CHARSET=utf8mb4"""
# The target as the JDBC sink creates it (key kept, LONGTEXT, the table's unicode_ci collation).
MEMBERS_COPY = """CREATE TABLE members (
  id INT NOT NULL PRIMARY KEY,
  name LONGTEXT NOT NULL,
  note LONGTEXT NULL,
  score DECIMAL(7,2) NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""
FILL = (
    "INSERT INTO members SELECT seq, CONCAT('member-', seq), IF(MOD(seq, 4) = 0, NULL, REPEAT('x', MOD(seq, 9))), "
    "seq / 100 FROM seq_1_to_{rows}"
)
# Many small chunks and pieces, so a few thousand rows cross every boundary the engine draws.
SMALL = CheckSettings(chunk_seconds=0.001, first_chunk_rows=300, piece_rows=32)


def member_tables(sandbox: Sandbox, rows: int) -> TableSpec:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(source_db, MEMBERS, FILL.format(rows=rows))
    sandbox.execute(target_db, MEMBERS_COPY, f"INSERT INTO members SELECT * FROM `{source_db}`.members")
    return TableSpec(source_db, "members", target_db, "members")


def test_equal_tables_pass_in_many_chunks(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox, 3000)
    result = run_check(sandbox, spec, settings=SMALL)
    assert result.passed, result.summary()
    assert result.method == "chunks" and result.key == ["id"]
    assert (result.stats.source_rows, result.stats.target_rows) == (3000, 3000)
    assert result.stats.chunks >= 3 and result.stats.pieces > result.stats.chunks
    assert result.stats.rows_fetched == 0 and result.counts()["different"] == 0


def test_the_same_edit_on_rows_of_one_piece_is_found(sandbox: Sandbox) -> None:
    """CRC32 is affine: the same bit change at the same distance from the end of two rows changes their
    CRC32s by the same amount, and the BIT_XOR of a piece holding both cancels it. Each row's CRC32 is
    hashed again, which no change carries through alike."""
    spec = member_tables(sandbox, 40)
    # Rows 17 and 117 differ only in their ids (at the start of the row's text), in one piece.
    sandbox.execute(spec.source_database, "INSERT INTO members VALUES (117, 'member-17', 'xxxxxxxx', 0.17)")
    sandbox.execute(
        spec.target_database,
        "INSERT INTO members VALUES (117, 'member-17', 'xxxxxxxx', 0.17)",
        "UPDATE members SET score = score + 1 WHERE id IN (17, 117)",
    )
    result = run_check(sandbox, spec)
    assert result.stats.pieces == 1
    assert differing_columns(result) == {17: {"score"}, 117: {"score"}}


def test_missing_extra_and_changed_rows_are_found_and_named(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox, 3000)
    sandbox.execute(
        spec.target_database,
        "DELETE FROM members WHERE id IN (1, 1500, 3000)",
        # Extra rows below, inside (a gap) and above the source's keys.
        "INSERT INTO members VALUES (-5, 'below', NULL, 0), (5000, 'above', 'n', 1)",
        "UPDATE members SET score = 7.52 WHERE id = 751",
        "UPDATE members SET name = 'MEMBER-42', note = NULL WHERE id = 42",
        "UPDATE members SET note = '' WHERE id = 8",  # NULL in the source (8 % 4 = 0)
    )
    sandbox.execute(spec.source_database, "DELETE FROM members WHERE id = 2222")
    result = run_check(sandbox, spec, settings=SMALL)
    assert not result.passed
    assert keys_of(result, "missing") == {1, 1500, 3000}
    assert keys_of(result, "extra") == {-5, 2222, 5000}
    assert differing_columns(result) == {751: {"score"}, 42: {"name", "note"}, 8: {"note"}}
    by_key = {d.key[0]: d for d in result.differences}
    assert [(c.source, c.target) for c in by_key[751].columns] == [("7.51", "7.52")]
    assert [(c.source, c.target) for c in by_key[8].columns] == [(None, "")]
    assert result.counts() == {"missing": 3, "extra": 3, "different": 3, "explained": 0, "in_flight": 0}
    assert (result.stats.source_rows, result.stats.target_rows) == (2999, 2999)


def test_composite_keys(sandbox: Sandbox) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    ddl = "CREATE TABLE walks (owner INT NOT NULL, seq INT NOT NULL, km DOUBLE NULL, PRIMARY KEY (owner, seq))"
    sandbox.execute(source_db, ddl, "INSERT INTO walks SELECT seq DIV 50, MOD(seq, 50), seq / 3e0 FROM seq_0_to_4999")
    sandbox.execute(target_db, ddl, f"INSERT INTO walks SELECT * FROM `{source_db}`.walks")
    spec = TableSpec(source_db, "walks", target_db, "walks")
    assert run_check(sandbox, spec, settings=SMALL).passed
    sandbox.execute(
        target_db,
        "DELETE FROM walks WHERE owner = 10 AND seq = 0",
        "INSERT INTO walks VALUES (10, 50, 1), (100, 0, 2)",
        "UPDATE walks SET km = km + 1 WHERE owner = 99 AND seq = 49",
    )
    result = run_check(sandbox, spec, settings=SMALL)
    assert keys_of(result, "missing") == {(10, 0)}
    assert keys_of(result, "extra") == {(10, 50), (100, 0)}
    assert {tuple(d.key): {c.column for c in d.columns} for d in result.differences if d.kind == "different"} == {
        (99, 49): {"km"}
    }


def test_string_keys_compare_in_the_source_collation(sandbox: Sandbox) -> None:
    """A case-insensitive source key orders 'a' < 'B' < 'c'; the sink's binary key column orders 'B' < 'a' < 'c'.
    Ranges must hold the same rows on both sides, and keys differing only in case are different keys."""
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(
        source_db,
        "CREATE TABLE codes (code VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, label TEXT NULL)",
        "INSERT INTO codes SELECT CONCAT(IF(MOD(seq, 2), UPPER(letter), letter), '-', seq), CONCAT('label ', seq) "
        "FROM (SELECT seq, CHAR(97 + MOD(seq, 26) USING utf8mb4) AS letter FROM seq_1_to_2000) AS letters",
    )
    sandbox.execute(
        target_db,
        "CREATE TABLE codes (code VARCHAR(255) COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY, label LONGTEXT NULL)",
        f"INSERT INTO codes SELECT * FROM `{source_db}`.codes",
    )
    spec = TableSpec(source_db, "codes", target_db, "codes")
    equal = run_check(sandbox, spec, settings=SMALL)
    assert equal.passed, equal.summary()
    # Aligned ranges: every target row counted once, no piece differing, nothing read into Python.
    assert (equal.stats.target_rows, equal.stats.ranges_bisected, equal.stats.rows_fetched) == (2000, 0, 0)
    assert any("collation" in note for note in equal.notes)
    sandbox.execute(
        target_db,
        "INSERT INTO codes VALUES ('b-2', 'same key as B-2 in the source, but lower case')",
        "DELETE FROM codes WHERE code = 'N-1287'",
        "UPDATE codes SET label = 'changed' WHERE code = 'w-100'",
    )
    result = run_check(sandbox, spec, settings=SMALL)
    assert keys_of(result, "extra") == {"b-2"}
    assert keys_of(result, "missing") == {"N-1287"}
    assert differing_columns(result) == {"w-100": {"label"}}


def test_table_without_a_primary_key_is_counted_only(sandbox: Sandbox) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(
        source_db,
        "CREATE TABLE logs (at DATETIME NOT NULL, line TEXT)",
        "INSERT INTO logs SELECT NOW(), seq FROM seq_1_to_50",
    )
    sandbox.execute(
        target_db,
        "CREATE TABLE logs (at DATETIME NOT NULL, line LONGTEXT)",
        f"INSERT INTO logs SELECT * FROM `{source_db}`.logs",
    )
    spec = TableSpec(source_db, "logs", target_db, "logs")
    equal = run_check(sandbox, spec)
    assert (equal.method, equal.passed) == ("count", True)
    assert equal.reason == (
        f"source table {source_db}.logs has no primary key: rows cannot be matched by key, "
        "so only row counts are compared"
    )
    sandbox.execute(target_db, "DELETE FROM logs LIMIT 1")
    short = run_check(sandbox, spec)
    assert (short.passed, short.stats.source_rows, short.stats.target_rows) == (False, 50, 49)
    assert CheckResult.from_json(short.to_json()).reason == equal.reason


def test_target_without_a_key_index_is_counted_only(sandbox: Sandbox) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(source_db, MEMBERS, FILL.format(rows=20))
    sandbox.execute(
        target_db, MEMBERS_COPY.replace(" PRIMARY KEY", ""), f"INSERT INTO members SELECT * FROM `{source_db}`.members"
    )
    result = run_check(sandbox, TableSpec(source_db, "members", target_db, "members"))
    assert result.method == "count" and result.passed
    assert "has no primary key or unique index on (id)" in result.reason


def test_bisection_reads_rows_only_where_they_differ(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox, 60_000)
    sandbox.execute(
        spec.target_database,
        "UPDATE members SET name = 'renamed' WHERE id = 12345",
        "DELETE FROM members WHERE id = 33333",
    )
    sandbox.execute(spec.source_database, "DELETE FROM members WHERE id = 47000")
    result = run_check(sandbox, spec)
    assert result.counts() == {"missing": 1, "extra": 1, "different": 1, "explained": 0, "in_flight": 0}
    stats = result.stats
    # A few leaves of at most 4 rows per side, plus the re-read of the three keys: not 60,000 rows.
    assert stats.rows_fetched <= 3 * (2 * 4 + 2), stats
    assert 0 < stats.ranges_bisected <= 3 * 2 and stats.bisection_levels <= 2, stats
    assert stats.pieces >= 60_000 // 128


def test_renamed_columns_and_unmapped_columns(sandbox: Sandbox) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(source_db, MEMBERS, FILL.format(rows=100))
    sandbox.execute(
        target_db,
        "CREATE TABLE member_copy (id INT PRIMARY KEY, member_name LONGTEXT NOT NULL, synced_at DATETIME NULL)",
        f"INSERT INTO member_copy SELECT id, name, NOW() FROM `{source_db}`.members",
    )
    spec = TableSpec(source_db, "members", target_db, "member_copy", columns={"id": "id", "name": "member_name"})
    assert run_check(sandbox, spec).passed
    sandbox.execute(target_db, "UPDATE member_copy SET synced_at = NULL WHERE id = 3")  # not written by the sink
    sandbox.execute(target_db, "UPDATE member_copy SET member_name = 'x' WHERE id = 4")
    result = run_check(sandbox, spec)
    (difference,) = result.differences
    assert (difference.key, [(c.column, c.target_column) for c in difference.columns]) == (
        [4],
        [("name", "member_name")],
    )


def test_result_round_trips_through_json_and_its_keys_find_the_source_rows(sandbox: Sandbox) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    ddl = (
        "CREATE TABLE visits (tag VARBINARY(8) NOT NULL, day DATE NOT NULL, fee DECIMAL(8,2) NOT NULL, "
        "PRIMARY KEY (tag, day, fee))"
    )
    sandbox.execute(
        source_db, ddl, "INSERT INTO visits VALUES (X'00ff', '2026-01-01', 1.50), (X'0a', '2026-02-03', 99.99)"
    )
    sandbox.execute(target_db, ddl, "INSERT INTO visits VALUES (X'0a', '2026-02-03', 99.99)")
    result = run_check(sandbox, TableSpec(source_db, "visits", target_db, "visits"))
    (missing,) = result.differences
    assert missing.key == [{"bytes": "00ff"}, "2026-01-01", {"decimal": "1.50"}]
    again = CheckResult.from_json(result.to_json())
    assert again == result
    params = [key_value(v) for v in again.differences[0].key]
    assert params == [b"\x00\xff", "2026-01-01", Decimal("1.50")]
    with sandbox.admin.connect() as conn:
        found = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM `{source_db}`.visits WHERE tag = %s AND day = %s AND fee = %s", tuple(params)
        ).scalar()
    assert found == 1


def sent_up_to(incrementing: int | None) -> StoredOffsetRule:
    """An incrementing source on ``id`` whose stored offset is ``incrementing`` (None: nothing stored)."""
    offset = TimestampIncrementingOffset(incrementing=incrementing) if incrementing is not None else None
    return StoredOffsetRule(SourceMode.INCREMENTING, "id", (), offset, "UTC")


@pytest.mark.parametrize(
    ("policy", "defects", "explained", "in_flight"),
    [
        (ModePolicy("cdc"), {"missing": {5, 50}, "extra": {7}, "different": {9}}, set(), set()),
        (ModePolicy("timestamp"), {"missing": {5, 50}, "different": {9}}, {7}, set()),
        (ModePolicy("incrementing", sent_up_to(20)), {"missing": {5}}, {7, 9}, {50}),
        (ModePolicy("incrementing", sent_up_to(None)), {}, {7, 9}, {5, 50}),
    ],
    ids=["cdc", "timestamp", "incrementing", "incrementing-before-first-offset"],
)
def test_the_mode_explains_what_it_cannot_carry(sandbox: Sandbox, policy, defects, explained, in_flight) -> None:
    spec = member_tables(sandbox, 60)
    sandbox.execute(
        spec.target_database, "DELETE FROM members WHERE id IN (5, 50)", "UPDATE members SET name = 'x' WHERE id = 9"
    )
    sandbox.execute(spec.source_database, "DELETE FROM members WHERE id = 7")
    result = run_check(sandbox, spec, policy=policy)
    assert {
        kind: keys_of(result, kind) for kind in ("missing", "extra", "different") if keys_of(result, kind)
    } == defects
    assert {d.key[0] for d in result.explained} == explained
    assert {d.key[0] for d in result.in_flight} == in_flight
    assert result.passed == (not defects)
    reasons = {d.key[0]: d.reason for d in result.explained + result.in_flight}
    if policy.mode == "incrementing" and policy.sent.offset is not None:
        assert reasons == {
            7: "incrementing mode does not carry deletes",
            9: "incrementing mode does not carry updates",
            50: "beyond the source's stored offset (id 20): not sent yet",
        }


def test_bad_inputs_name_what_is_wrong(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox, 5)
    with pytest.raises(ConsistencyError, match=r"source table .*\.nothing does not exist"):
        run_check(sandbox, TableSpec(spec.source_database, "nothing", spec.target_database, "members"))
    # A target not created yet is an empty table (the sink has written nothing): the counts say so.
    absent = run_check(sandbox, TableSpec(spec.source_database, "members", spec.target_database, "nothing"))
    assert (absent.method, absent.passed) == ("count", False)
    assert absent.reason.endswith(".nothing does not exist (yet): counted as empty")
    assert absent.count_mismatch == "the source has 5 rows and the target 0"
    with pytest.raises(ConsistencyError, match=r"has no column 'nickname' \(mapped from source column 'name'\)"):
        run_check(
            sandbox,
            TableSpec(spec.source_database, "members", spec.target_database, "members", columns={"name": "nickname"}),
        )
    with pytest.raises(ConsistencyError, match="does not know time zone 'Mars/Olympus'"):
        run_check(
            sandbox, TableSpec(spec.source_database, "members", spec.target_database, "members", zone="Mars/Olympus")
        )
    with pytest.raises(ConsistencyError, match="incrementing column 'seq' is not a column of source table"):
        rule = StoredOffsetRule(SourceMode.INCREMENTING, "seq", (), TimestampIncrementingOffset(incrementing=1), "UTC")
        run_check(sandbox, spec, policy=ModePolicy("incrementing", rule))
    with pytest.raises(ConsistencyError, match="mode 'upsert': expected one of"):
        ModePolicy("upsert")


def test_chunks_are_sized_by_the_rate_measured_so_far() -> None:
    sizer = ChunkSizer(CheckSettings(chunk_seconds=0.5, first_chunk_rows=1000, piece_rows=128))
    assert sizer.rows == 1024  # starts small, in whole pieces
    sizer.observe(1024, 0.01)  # 102,400 rows/s: half a second is 51,200 rows
    assert sizer.rows == 51_200
    sizer.observe(51_200, 2.0)  # much slower now: (0.75 * 1024 + 51,200) rows in (0.75 * 0.01 + 2) s
    assert sizer.rows == 13_056


def test_a_key_the_pipeline_truncates_is_counted_only(sandbox: Sandbox) -> None:
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(source_db, "CREATE TABLE ticks (at DATETIME(6) NOT NULL PRIMARY KEY, n INT)")
    sandbox.execute(target_db, "CREATE TABLE ticks (at DATETIME(3) NOT NULL PRIMARY KEY, n INT)")
    result = run_check(sandbox, TableSpec(source_db, "ticks", target_db, "ticks"))
    assert result.method == "count"
    assert result.reason == (
        "key column 'at' (datetime(6)) loses fraction digits on the way (3 carried): keys must be carried exactly "
        "to be matched"
    )


def test_a_target_left_empty_is_read_once_not_bisected(sandbox: Sandbox) -> None:
    spec = member_tables(sandbox, 5000)
    sandbox.execute(spec.target_database, "DELETE FROM members WHERE id > 1000")
    result = run_check(sandbox, spec)
    assert result.counts()["missing"] == 4000
    # Every source row of a piece with no target rows is a difference: read once, plus the re-read by key.
    assert result.stats.ranges_bisected <= 2 and result.stats.rows_fetched <= 2 * 4000 + 2 * 128, result.stats


def test_a_jdbc_connector_pair_reads_as_a_comparison_and_a_policy(sandbox: Sandbox) -> None:
    source = parse_connector(
        sandbox.source_body("mungMo", mode="incrementing", **{"incrementing.column.name": "seq", "db.timezone": "UTC"})
    )
    sink = parse_connector(
        sandbox.sink_body(
            "mungmoMember",
            topics=source.topic_for("test001"),
            **{"table.name.format": "copy_${topic}", "pk.mode": "record_value", "pk.fields": "seq",
               "fields.whitelist": "seq,member_name", "db.timezone": "Asia/Seoul"},
        )
    )  # fmt: skip
    spec = jdbc_table_spec(source, sink, "test001")
    assert (spec.source_database, spec.source_table, spec.target_database) == ("mungMo", "test001", "mungmoMember")
    assert spec.target_table == f"copy_{source.topic_for('test001')}"
    assert (spec.columns, spec.key, spec.zone) == ({"seq": "seq", "member_name": "member_name"}, ("seq",), "Asia/Seoul")
    offset = TimestampIncrementingOffset(incrementing=42)
    assert jdbc_policy(source, offset) == ModePolicy(
        "incrementing", StoredOffsetRule(SourceMode.INCREMENTING, "seq", (), offset, "UTC")
    )
    timestamp = replace(source, mode=SourceMode.TIMESTAMP, timestamp_columns=("updated_at",))
    assert jdbc_policy(timestamp) == ModePolicy(
        "timestamp", StoredOffsetRule(SourceMode.TIMESTAMP, "seq", ("updated_at",), None, "UTC")
    )
