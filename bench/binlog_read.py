"""Binlog read throughput: rows per second read from the binary log and decoded to the value
contract (``mungmo_pipelines.core.mariadb.values``), beside baselines, all in the same run.

    PYTHONPATH=. python bench/binlog_read.py                     # 1,000,000 rows + 100,000 single-row transactions
    PYTHONPATH=. python bench/binlog_read.py --rows 200000 --single-rows 20000

Writes the rows of ``bench/source.py`` (about 200 bytes each) into ``mungmo_test_bench_<hex>``
twice: ``--rows`` rows in 1,000-row transactions, then ``--single-rows`` rows one transaction
each, and reads each part, every stage in its own process (so its peak RSS is its own):

- ``select``:   a raw ``SELECT`` of the same rows through PyMySQL (SSCursor), the database's own floor;
- ``packets``:  the dump's event packets read with no decoding at all (the replication protocol's floor);
- ``reader``:   this project's ``BinlogReader`` (own decoder): every row as a ``RowChange`` with its values;
- ``python-mysql-replication``: ``BinLogStreamReader`` 1.0.x on the same events, every row's
  ``values`` dict. By file/pos: by GTID (``is_mariadb=True, auto_position=...``) its non-blocking
  read never ends on MariaDB 10.11: at the end of the binlog it takes the server's end for a lost
  connection, reconnects from the original GTID and delivers the same rows again, forever (#367).

Needs ``pip install mysql-replication==1.0.*`` for the last stage (it is not a project dependency).
Uses the local stack (or ``MUNGMO_MARIADB_ADMIN_URL``) and drops what it created.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
from sqlalchemy import make_url  # noqa: E402

from bench.source import FILL, WALKS, peak_rss_mb, raw_read, run_stage  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog import BinlogPosition, BinlogReader, ReplicaSettings, RowChange  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog.checks import binary_logs, head_position  # noqa: E402
from mungmo_pipelines.core.mariadb.binlog.replica import open_dump  # noqa: E402
from mungmo_pipelines.core.mariadb.session import admin_connection  # noqa: E402
from mungmo_pipelines.core.settings import mariadb_admin_url  # noqa: E402

SERVER_ID = 7_000_001


def replica_settings() -> ReplicaSettings:
    url = make_url(mariadb_admin_url())
    return ReplicaSettings(
        url.host or "127.0.0.1", url.port or 3306, url.username or "root", url.password or "", SERVER_ID
    )


# --- stages (each runs in its own process) -----------------------------------------------


def stage_select(args: argparse.Namespace) -> dict:
    return raw_read(args.database, f"SELECT * FROM `{args.table}`")


def stage_packets(args: argparse.Namespace) -> dict:
    start = BinlogPosition.from_offset(json.loads(args.start))
    started = time.perf_counter()
    dump = open_dump(replica_settings(), start, by_gtid=True, blocking=False, checksum="CRC32")
    packets = size = 0
    while (packet := dump.read()) is not None:
        packets += 1
        size += len(packet)
    seconds = time.perf_counter() - started
    dump.close()
    return {"rows": args.rows, "seconds": seconds, "packets": packets, "bytes": size}


def stage_reader(args: argparse.Namespace) -> dict:
    start = BinlogPosition.from_offset(json.loads(args.start))
    wanted = (args.database, args.table)
    reader = BinlogReader(replica_settings(), start, include=lambda db, table: (db, table) == wanted, blocking=False)
    started = time.perf_counter()
    rows = 0
    for change in reader:
        if type(change) is RowChange:
            rows += 1
    return {"rows": rows, "seconds": time.perf_counter() - started}


def stage_pymysqlreplication(args: argparse.Namespace) -> dict:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent

    url = make_url(mariadb_admin_url())
    settings = {"host": url.host, "port": url.port or 3306, "user": url.username, "passwd": url.password or ""}
    start = BinlogPosition.from_offset(json.loads(args.start))
    stream = BinLogStreamReader(
        connection_settings=settings,
        server_id=SERVER_ID,
        blocking=False,
        log_file=start.file,
        log_pos=start.pos,
        resume_stream=True,
        only_events=[WriteRowsEvent],
        only_schemas=[args.database],
        only_tables=[args.table],
    )
    started = time.perf_counter()
    rows = 0
    for event in stream:
        for row in event.rows:
            if row["values"] is not None:
                rows += 1
    seconds = time.perf_counter() - started
    stream.close()
    return {"rows": rows, "seconds": seconds}


STAGES = {
    "select": stage_select,
    "packets": stage_packets,
    "reader": stage_reader,
    "python-mysql-replication": stage_pymysqlreplication,
}


def write_rows(connection: pymysql.Connection, table: str, rows: int, per_transaction: int) -> None:
    """``rows`` rows of ``bench/source.py``'s walks, ``per_transaction`` rows per autocommitted INSERT."""
    fill = FILL.replace("INTO walks", f"INTO `{table}`").replace("seq_1_to_{rows}", "seq_{first}_to_{last}")
    with connection.cursor() as cursor:
        for first in range(1, rows + 1, per_transaction):
            cursor.execute(fill.format(first=first, last=min(first + per_transaction - 1, rows)))


def seconds_to_resume_at_head(by_gtid: bool) -> float:
    """How long a reader started at the binlog head takes to reach its end (it reads nothing): by GTID
    MariaDB 10.11 first scans the binlog file holding the GTID from its beginning."""
    connection = admin_connection()
    start = head_position(connection)
    connection.close()
    started = time.perf_counter()
    for _ in BinlogReader(replica_settings(), start, by_gtid=by_gtid, blocking=False):
        pass
    return time.perf_counter() - started


def measure(database: str, table: str, rows: int, start: BinlogPosition, label: str) -> dict[str, dict]:
    common = {"database": database, "table": table, "rows": rows, "start": json.dumps(start.as_offset())}
    return {
        f"{label}: raw SELECT of the same rows (PyMySQL SSCursor)": run_stage("select", __file__, **common),
        f"{label}: binlog packets only, no decoding": run_stage("packets", __file__, **common),
        f"{label}: BinlogReader (own decoder) -> RowChange": run_stage("reader", __file__, **common),
        f"{label}: python-mysql-replication 1.0 -> values": run_stage("python-mysql-replication", __file__, **common),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in 1,000-row transactions")
    parser.add_argument("--single-rows", type=int, default=100_000, help="rows written one transaction each")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = STAGES[args.stage](args)
        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    database = f"mungmo_test_bench_{uuid.uuid4().hex[:8]}"
    admin = admin_connection()
    results: dict[str, dict] = {}
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
            cursor.execute(f"USE `{database}`")
            cursor.execute(WALKS)
            cursor.execute(WALKS.replace("CREATE TABLE walks", "CREATE TABLE walks_single"))
            cursor.execute("SELECT @@global.innodb_flush_log_at_trx_commit")
            (flush,) = cursor.fetchone()
        # Each part is read right after it is written, so every stage reads exactly its part.
        for table, rows, per_transaction, label in (
            ("walks", args.rows, 1000, "1,000-row transactions"),
            ("walks_single", args.single_rows, 1, "single-row transactions"),
        ):
            start = head_position(admin)
            try:
                # Writing is not measured; one fsync per single-row commit would only slow the setup.
                with admin.cursor() as cursor:
                    cursor.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
                write_rows(admin, table, rows, per_transaction)
            finally:
                with admin.cursor() as cursor:
                    cursor.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {int(flush)}")
            results |= measure(database, table, rows, start, label)
        size = binary_logs(admin)[-1].size
        resume = {by_gtid: min(seconds_to_resume_at_head(by_gtid) for _ in range(3)) for by_gtid in (True, False)}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()

    load = os.getloadavg()
    print(f"\nload average before printing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)\n")
    notes: list[str] = []
    header = f"| {'stage':<78} | {'rows':>9} | {'seconds':>7} | {'rows/s':>9} | {'/ SELECT':>8} | {'peak RSS MB':>11} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    baseline = 0.0
    for stage, result in results.items():
        if "packets" in result:
            notes.append(f"{stage}: {result['packets']:,} events, {result['bytes'] / 1e6:,.1f} MB")
        rate = result["rows"] / result["seconds"]
        if "raw SELECT" in stage:
            baseline = rate
        print(
            f"| {stage:<78} | {result['rows']:>9,} | {result['seconds']:>7.2f} | {rate:>9,.0f} | "
            f"{rate / baseline:>8.0%} | {result['peak_rss_mb']:>11.0f} |"
        )
    print("\n" + "\n".join(notes))
    print(
        f"resuming at the head of a {size / 1e6:,.0f} MB binlog file: by GTID {resume[True]:.3f} s, "
        f"by file/pos {resume[False]:.3f} s (best of 3)"
    )


if __name__ == "__main__":
    main()
