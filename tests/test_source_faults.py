"""A source run whose database connection dies mid-read: the database's error is the headline, and a rerun is exact."""

from __future__ import annotations

import pytest

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.errors import SourceError
from tests.support.sandbox import Sandbox
from tests.support.source import payloads, run_source, source_config, wide_pets_table

ROWS = 60_000


def kill_streaming_reader(sandbox: Sandbox, database: str) -> None:
    """``KILL`` the connection streaming the table's rows to the source, as a DBA or a crash would."""
    with sandbox.admin.connect() as conn:
        (reader,) = conn.exec_driver_sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND INFO LIKE 'SELECT * FROM `pets`%%'",
            (database,),
        ).one()
        conn.exec_driver_sql(f"KILL CONNECTION {int(reader)}")


def test_a_killed_reader_connection_names_the_database_error_and_the_rerun_is_exact(sandbox: Sandbox) -> None:
    database = sandbox.database("src")
    wide_pets_table(sandbox, database, ROWS)
    config = source_config(
        sandbox, database, mode="incrementing", **{"table.whitelist": "pets", "transaction.boundary": "poll"}
    )
    kills = iter([True])
    faults.install("source.before_commit", lambda: next(kills, False) and kill_streaming_reader(sandbox, database))
    try:
        with pytest.raises(SourceError) as raised:
            run_source(sandbox, config, database)
    finally:
        faults.install("source.before_commit", None)
    message = str(raised.value)
    assert message.startswith(f"connector {config.name!r}, table pets: MariaDB error "), message
    assert any(f"MariaDB error {code}" in message for code in (2013, 2006, 1927)), message
    assert "NoneType" not in message

    topic = f"{config.topic_prefix}pets"
    delivered = len(payloads(sandbox, topic))
    assert 100 <= delivered < ROWS, "the transaction committing at the kill is in, the rest of the table is not"

    rerun = run_source(sandbox, config, database)
    assert rerun.rows == ROWS - delivered
    assert [p["id"] for p in payloads(sandbox, topic)] == list(range(1, ROWS + 1))
