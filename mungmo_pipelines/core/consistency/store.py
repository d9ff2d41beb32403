"""Check results kept in the target database, where a repair reads the differences back.

``_mungmo_consistency_results`` holds one row per check (which tables, which check, when, whether it
passed, and the result without its row lists, as JSON); ``_mungmo_consistency_rows`` one row per
difference, explained or in-flight row, so a check finding a million differences stores them in
batches, not in one value bounded by ``max_allowed_packet``. They sit beside the sink's
``_connect_sink_offsets``: every process that can reach the target (webserver, daemon, runs on
other machines) reads the same results, with the sink's own credentials, and the team can query
them with SQL. The newest :data:`KEEP` results per table pair and check are kept.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import orjson
from pymysql.err import ProgrammingError
from sqlalchemy import Engine

from mungmo_pipelines.core.consistency.result import CheckResult
from mungmo_pipelines.core.mariadb.dialect import NO_SUCH_TABLE
from mungmo_pipelines.core.mariadb.session import DbConnection

RESULTS_TABLE = "_mungmo_consistency_results"
ROWS_TABLE = "_mungmo_consistency_rows"
KEEP = 20
ROW_LISTS = ("differences", "explained", "in_flight")
INSERT_BATCH = 1000


def _ensure_tables(conn: DbConnection) -> None:
    with closing(conn.cursor()) as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} ("
            "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "source_table VARCHAR(200) COLLATE utf8mb4_nopad_bin NOT NULL, "
            "target_table VARCHAR(200) COLLATE utf8mb4_nopad_bin NOT NULL, "
            "check_name VARCHAR(64) COLLATE utf8mb4_nopad_bin NOT NULL, "
            "checked_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), "
            "passed BOOLEAN NOT NULL, summary LONGTEXT NOT NULL, "
            "KEY by_table (target_table, source_table, check_name, id)) DEFAULT CHARSET=utf8mb4"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {ROWS_TABLE} ("
            "result_id BIGINT NOT NULL, list VARCHAR(16) NOT NULL, seq INT NOT NULL, "
            "kind VARCHAR(16) NOT NULL, difference LONGTEXT NOT NULL, "
            "PRIMARY KEY (result_id, list, seq)) DEFAULT CHARSET=utf8mb4"
        )


def save_result(engine: Engine, check_name: str, result: CheckResult) -> int:
    """Store ``result`` (the check named ``check_name``) and drop that pair's older results; its id."""
    data = result.to_dict()
    lists = {name: data.pop(name) for name in ROW_LISTS}
    conn = engine.raw_connection()
    try:
        _ensure_tables(conn)
        conn.commit()
        with closing(conn.cursor()) as cursor:
            cursor.execute(
                f"INSERT INTO {RESULTS_TABLE} (source_table, target_table, check_name, passed, summary) "
                "VALUES (%s, %s, %s, %s, %s)",
                (result.source, result.target, check_name, result.passed, orjson.dumps(data).decode()),
            )
            result_id = int(cursor.lastrowid)
            rows = [
                (result_id, name, seq, difference["kind"], orjson.dumps(difference).decode())
                for name, differences in lists.items()
                for seq, difference in enumerate(differences)
            ]
            for start in range(0, len(rows), INSERT_BATCH):
                cursor.executemany(
                    f"INSERT INTO {ROWS_TABLE} (result_id, list, seq, kind, difference) VALUES (%s, %s, %s, %s, %s)",
                    rows[start : start + INSERT_BATCH],
                )
            cursor.execute(
                f"SELECT id FROM {RESULTS_TABLE} WHERE target_table = %s AND source_table = %s AND check_name = %s "
                "ORDER BY id DESC LIMIT 18446744073709551615 OFFSET %s",
                (result.target, result.source, check_name, KEEP),
            )
            old = [row[0] for row in cursor.fetchall()]
            if old:
                marks = ", ".join(["%s"] * len(old))
                cursor.execute(f"DELETE FROM {ROWS_TABLE} WHERE result_id IN ({marks})", old)
                cursor.execute(f"DELETE FROM {RESULTS_TABLE} WHERE id IN ({marks})", old)
        conn.commit()
        return result_id
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def latest_result(engine: Engine, source_table: str, target_table: str, check_name: str) -> CheckResult | None:
    """The newest stored result of ``check_name`` for the pair (``db.table`` labels), or None."""
    conn = engine.raw_connection()
    try:
        with closing(conn.cursor()) as cursor:
            try:
                cursor.execute(
                    f"SELECT id, summary FROM {RESULTS_TABLE} WHERE target_table = %s AND source_table = %s "
                    "AND check_name = %s ORDER BY id DESC LIMIT 1",
                    (target_table, source_table, check_name),
                )
            except ProgrammingError as err:
                if err.args and err.args[0] == NO_SUCH_TABLE:
                    return None
                raise
            found = cursor.fetchone()
            if found is None:
                return None
            result_id, summary = found
            data: dict[str, Any] = orjson.loads(summary)
            data.update({name: [] for name in ROW_LISTS})
            cursor.execute(
                f"SELECT list, difference FROM {ROWS_TABLE} WHERE result_id = %s ORDER BY list, seq", (result_id,)
            )
            for name, difference in cursor.fetchall():
                data[name].append(orjson.loads(difference))
        return CheckResult.from_dict(data)
    finally:
        conn.close()
