"""The expiry's minute schedule: a run only when a verification is due, a skip with the reason otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, Definitions, RunRequest

from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.errors import MembersTableError
from mungmo_pipelines.core.expiry.members import MembersTable, probe_due
from mungmo_pipelines.core.settings import MEMBERS_JDBC_URL, VERIFICATION_EXPIRY_TOPIC
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.schedules import EXPIRY_SCHEDULE
from mungmo_pipelines.schedules.verification_expiry import OLDEST_DUE_TAG
from tests.support.expiry import TABLE, Members, dagster_home, members, naive_utc, tick_context
from tests.support.sandbox import Sandbox

TICK = datetime(2025, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
CUTOFF = naive_utc(TICK - timedelta(days=30))


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(dagster_home(tmp_path / "dagster_home"))) as instance:
        yield instance


def definitions_for(sandbox: Sandbox, database: str, monkeypatch: pytest.MonkeyPatch) -> Definitions:
    monkeypatch.setenv(MEMBERS_JDBC_URL.name, sandbox.jdbc_url(database))
    monkeypatch.setenv(VERIFICATION_EXPIRY_TOPIC.name, sandbox.topic("expired"))
    return build_definitions(load_connectors())


def evaluate(defs: Definitions, instance: DagsterInstance, tick: datetime = TICK) -> RunRequest | str:
    """The tick's run request, or its skip message."""
    with tick_context(defs, instance, tick) as context:
        result = defs.resolve_schedule_def(EXPIRY_SCHEDULE).evaluate_tick(context)
    if result.run_requests:
        (request,) = result.run_requests
        assert isinstance(request, RunRequest)
        return request
    assert result.skip_message is not None
    return result.skip_message


def test_before_the_members_table_exists_the_tick_skips_saying_what_to_create(
    sandbox: Sandbox, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing_database = f"mungmo_test_{sandbox.suffix}_nodb"
    skipped = evaluate(definitions_for(sandbox, missing_database, monkeypatch), instance)
    assert skipped == (
        f"tick {TICK.isoformat()} skipped: database {missing_database} does not exist yet: create it with the "
        f"members schema of docs/expiry.md (`make demo` creates a sample {missing_database}.member)"
    )

    empty = sandbox.database("empty")
    skipped = evaluate(definitions_for(sandbox, empty, monkeypatch), instance)
    assert skipped == (
        f"tick {TICK.isoformat()} skipped: members table {empty}.member does not exist yet: create it with the "
        f"members schema of docs/expiry.md (`make demo` creates a sample {empty}.member)"
    )


def test_a_run_only_when_a_verification_is_due_at_the_tick(
    sandbox: Sandbox, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = members(sandbox)
    defs = definitions_for(sandbox, box.database, monkeypatch)
    nothing = f"tick {TICK.isoformat()}: nothing to expire (no verification granted at or before "
    assert evaluate(defs, instance) == nothing + "2025-05-02T09:00:00.000+09:00 is still active)"

    box.add(CUTOFF + timedelta(seconds=1))  # one second short of 30 days at the tick
    box.add(CUTOFF - timedelta(days=2), verified=False)  # expired long ago
    assert isinstance(evaluate(defs, instance), str)

    box.add(CUTOFF)  # exactly 30 days old at the tick
    request = evaluate(defs, instance)
    assert isinstance(request, RunRequest)
    assert request.run_key == TICK.isoformat()
    assert request.run_config == {
        "ops": {"expire_neighbourhood_verifications": {"config": {"as_of": TICK.isoformat()}}}
    }
    assert request.tags[OLDEST_DUE_TAG] == "2025-05-02T00:00:00.000+00:00"


def test_the_probe_reads_one_entry_of_the_verification_index(box_with_members: Members) -> None:
    box = box_with_members
    box.add(*[CUTOFF - timedelta(days=n) for n in range(1, 40)])
    with box.engine.connect() as conn:
        (plan,) = conn.exec_driver_sql(
            "EXPLAIN SELECT neighbourhood_verified_at FROM member WHERE neighbourhood_verified = 1 "
            f"AND neighbourhood_verified_at <= '{CUTOFF:%Y-%m-%d %H:%M:%S}' ORDER BY neighbourhood_verified_at LIMIT 1"
        ).mappings()
    print(dict(plan))
    assert plan["key"] == TABLE.index_name
    assert "Using index" in plan["Extra"] and "filesort" not in plan["Extra"]
    probe = probe_due(box.engine, TABLE, TICK)
    assert probe.absent is None
    assert probe.oldest_due == TABLE.from_db(CUTOFF - timedelta(days=39))


def test_a_misnamed_column_fails_the_tick_naming_the_setting(box_with_members: Members) -> None:
    with pytest.raises(MembersTableError, match=r"no column for verified_at_column='verified_on'"):
        probe_due(box_with_members.engine, MembersTable(verified_at_column="verified_on"), TICK)


@pytest.fixture
def box_with_members(sandbox: Sandbox) -> Members:
    return members(sandbox)
