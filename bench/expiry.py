"""Benchmark: neighbourhood verification expiry on a large members table.

    PYTHONPATH=. python bench/expiry.py                 # 1,000,000 members, 1 % stale (the issue's size)
    PYTHONPATH=. python bench/expiry.py --members 50000 # a quick check

Builds the reference members table (with its verification index) in a throwaway database:
1 % verified past the 30-day line, about a third unverified with old dates (verifications
expired earlier; an index on ``verified_at`` alone would wade through them), the rest verified
within 30 days. Then measures, against the same table:

- expiring the stale members with the job's core (chunked transactions + outbox + Kafka), its
  database time and its total; baseline: one raw ``UPDATE ... WHERE verified = 1 AND
  verified_at <= cutoff`` over the same rows (restored first), no chunks, no events;
- a run when nothing is stale; baseline: the probe statement alone;
- the schedule tick's probe (``probe_due``: one entry of the verification index), with stale
  members and with none, on the connection the schedule keeps and on a new one; medians.

Prints the EXPLAIN of the probe (it must use the verification index) and a table.
Targets from the issues: 10,000 stale in under 2 s of database time; the nothing-stale probe under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import create_engine, make_url, text

from bench.report import Report, add_markdown_flag
from mungmo_pipelines.core.expiry.events import ExpiryEvents
from mungmo_pipelines.core.expiry.members import MembersTable, members_table_ddl, probe_due
from mungmo_pipelines.core.expiry.run import VerificationExpiry
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url

TABLE = MembersTable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="rows in the members table")
    parser.add_argument("--stale-every", type=int, default=100, help="every n-th member is stale (100 = 1 %%)")
    add_markdown_flag(parser)
    parser.add_argument("--chunk-size", type=int, default=1000, help="members per transaction (the job's default)")
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:8]
    database, topic = f"mungmo_test_bench_{suffix}", f"mungmo_test_bench_{suffix}"
    admin = create_engine(mariadb_admin_url())
    engine = create_engine(make_url(mariadb_admin_url()).set(database=database))
    kafka = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
    as_of = datetime.now(UTC).replace(microsecond=0)
    cutoff = TABLE.to_db(TABLE.cutoff(as_of))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
    try:
        stale = fill(engine, args.members, args.stale_every, cutoff)
        events = ExpiryEvents(kafka, topic, f"mungmo-bench-{suffix}")
        with events:
            expiry = VerificationExpiry(engine, TABLE, events, args.chunk_size)
            print(f"EXPLAIN {expiry.probe_sql()}")
            with engine.connect() as conn:
                plan = conn.execute(text(f"EXPLAIN {expiry.probe_sql()}"), {"cutoff": cutoff, "limit": args.chunk_size})
                for row in plan.mappings():
                    print("  " + ", ".join(f"{key}={value}" for key, value in row.items()))
            tick_due = timed_tick_probe(engine, as_of, expect_due=True)
            expired = expiry.run(as_of)
            assert expired.expired == stale, f"expired {expired.expired} of {stale} stale members"
            idle = expiry.run(as_of)
            tick_idle = timed_tick_probe(engine, as_of, expect_due=False)
            tick_idle_fresh = timed_tick_probe(engine, as_of, expect_due=False, fresh_connection=True)
        raw_update = timed_raw_update(engine, args.stale_every, cutoff)
        raw_probe = timed_raw_probe(engine, expiry.probe_sql(), cutoff, args.chunk_size)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        client = kafka.admin()
        try:
            if topic in client.list_topics():
                client.delete_topics([topic])
        finally:
            client.close()

    rows = [
        (
            f"expire {stale:,} stale: database time ({expired.chunks} chunks of <= {args.chunk_size})",
            expired.db_seconds,
            "one raw UPDATE of the same rows",
            raw_update,
        ),
        (
            f"expire {stale:,} stale: total, with {expired.events_published:,} events to Kafka",
            expired.seconds,
            "one raw UPDATE of the same rows",
            raw_update,
        ),
        ("nothing stale: the run (schema check, outbox, probe)", idle.seconds, "the probe statement alone", raw_probe),
        ("nothing stale: its database time", idle.db_seconds, "the probe statement alone", raw_probe),
        (f"tick probe, {stale:,} stale: the oldest due (median of {TICKS})", tick_due, "the probe statement alone",
         raw_probe),
        (f"tick probe, nothing stale (median of {TICKS})", tick_idle, "the probe statement alone", raw_probe),
        ("tick probe, nothing stale, if each tick connected anew", tick_idle_fresh, "the probe statement alone",
         raw_probe),
    ]  # fmt: skip
    report = Report("Verification expiry")
    report.line(f"{args.members:,} members, {stale:,} stale, chunk size {args.chunk_size}")
    report.line()
    report.line(f"| {'measurement':<62} | {'time':>9} | {'baseline':<32} | {'time':>9} | {'ratio':>6} |")
    report.line(f"|{'-' * 64}|{'-' * 11}|{'-' * 34}|{'-' * 11}|{'-' * 8}|")
    for label, seconds, baseline, baseline_seconds in rows:
        report.line(
            f"| {label:<62} | {seconds * 1000:>6.1f} ms | {baseline:<32} | {baseline_seconds * 1000:>6.1f} ms "
            f"| {seconds / baseline_seconds:>5.1f}x |"
        )
    report.emit(args.markdown)


def fill(engine, members: int, stale_every: int, cutoff: datetime) -> int:
    """The reference table with ``members`` rows; returns how many are stale."""
    day = 86_400
    with engine.begin() as conn:
        conn.exec_driver_sql(members_table_ddl(TABLE))
        started = time.monotonic()
        conn.execute(
            text(
                "INSERT INTO member (id, nickname, neighbourhood, neighbourhood_verified, neighbourhood_verified_at) "
                "SELECT seq, CONCAT('멍뭉이', seq), '서울 마포구 망원동', "
                "  IF(seq % :every = 0 OR seq % 3 <> 0, 1, 0), "
                "  CASE WHEN seq % :every = 0 THEN :cutoff - INTERVAL (seq % (10 * :day)) SECOND "
                "       WHEN seq % 3 = 0 THEN :cutoff - INTERVAL (seq % (300 * :day)) SECOND "
                "       ELSE :cutoff + INTERVAL (1 + seq % (29 * :day)) SECOND END "
                f"FROM mysql.seq_1_to_{members}"
            ),
            {"every": stale_every, "cutoff": cutoff, "day": day},
        )
        conn.exec_driver_sql("ANALYZE TABLE member")
        stale = conn.execute(
            text("SELECT COUNT(*) FROM member WHERE neighbourhood_verified = 1 AND neighbourhood_verified_at <= :c"),
            {"c": cutoff},
        ).scalar_one()
    print(f"filled {members:,} members in {time.monotonic() - started:.1f} s")
    return stale


def timed_raw_update(engine, stale_every: int, cutoff: datetime) -> float:
    """Put the stale members back, then expire them with one plain UPDATE."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE member SET neighbourhood_verified = 1 WHERE id % :every = 0 AND neighbourhood_verified_at <= :c"
            ),
            {"every": stale_every, "c": cutoff},
        )
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE member SET neighbourhood_verified = 0, updated_at = NOW(3) "
                "WHERE neighbourhood_verified = 1 AND neighbourhood_verified_at <= :c"
            ),
            {"c": cutoff},
        )
    return time.monotonic() - started


TICKS = 20


def timed_tick_probe(engine, as_of: datetime, expect_due: bool, fresh_connection: bool = False) -> float:
    """Median time of the schedule's probe; ``fresh_connection`` connects anew each time."""
    times = []
    for _ in range(TICKS):
        if fresh_connection:
            engine.dispose()
        started = time.monotonic()
        probe = probe_due(engine, TABLE, as_of)
        times.append(time.monotonic() - started)
        assert (probe.oldest_due is not None) == expect_due, probe
    return statistics.median(times)


def timed_raw_probe(engine, probe_sql: str, cutoff: datetime, chunk_size: int) -> float:
    with engine.connect() as conn:
        started = time.monotonic()
        with conn.begin():
            rows = conn.execute(text(probe_sql), {"cutoff": cutoff, "limit": chunk_size}).all()
        elapsed = time.monotonic() - started
    assert rows == [], rows
    return elapsed


if __name__ == "__main__":
    main()
