"""Neighbourhood verification expiry: the rule to the second, chunks, events, and the job in a real instance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    RunRequest,
    define_asset_job,
)

from mungmo_pipelines.assets.verification import AS_OF_TAG, EXPIRY_JOB, SKIPPED_TAG
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.errors import EventPublishError, MembersTableError
from mungmo_pipelines.core.expiry.events import ExpiryEvents
from mungmo_pipelines.core.expiry.members import MembersTable, check_schema, event_id, parse_as_of
from mungmo_pipelines.core.expiry.run import VerificationExpiry
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.lock import NamedLock, lock_name
from mungmo_pipelines.core.settings import MEMBERS_JDBC_URL, VERIFICATION_EXPIRY_TOPIC
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.schedules import EXPIRY_CRON, EXPIRY_SCHEDULE, EXPIRY_TIMEZONE
from tests.support.expiry import (
    TABLE,
    Members,
    dagster_home,
    job_run_config,
    materialization,
    members,
    naive_utc,
    tick_context,
)
from tests.support.sandbox import Sandbox

AS_OF = datetime(2025, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
CUTOFF = naive_utc(AS_OF - timedelta(days=30))  # 2025-05-02 00:00:00 UTC


@pytest.fixture
def box(sandbox: Sandbox) -> Members:
    return members(sandbox)


def expire(box: Members, kafka: KafkaSettings, as_of: datetime = AS_OF, chunk_size: int = 1000):
    events = ExpiryEvents(kafka, box.topic, f"mungmo-test-{box.database}")
    with events:
        return VerificationExpiry(box.engine, TABLE, events, chunk_size).run(as_of)


def test_thirty_day_line_to_the_second(box: Members, kafka_settings: KafkaSettings) -> None:
    second, millisecond = timedelta(seconds=1), timedelta(milliseconds=1)
    before, on_line, just_after, after, well_after = box.add(
        CUTOFF - second, CUTOFF, CUTOFF + millisecond, CUTOFF + second, CUTOFF + second + millisecond
    )
    (never_verified,) = box.add(CUTOFF - timedelta(days=90), verified=False)
    untouched = box.state()

    result = expire(box, kafka_settings)

    assert result.expired == 2
    assert result.cutoff == AS_OF - timedelta(days=30)
    assert box.verified_ids() == {just_after, after, well_after}
    state = box.state()
    for expired in (before, on_line):
        assert state[expired][2] > untouched[expired][2], "updated_at bumped for the timestamp+incrementing source"
    for kept in (just_after, after, well_after, never_verified):
        assert state[kept] == untouched[kept]
    # One second later, the member verified one second after the line is exactly 30 days old.
    assert expire(box, kafka_settings, AS_OF + second).expired == 2
    assert box.verified_ids() == {well_after}


def test_rerunning_a_tick_changes_nothing(box: Members, kafka_settings: KafkaSettings) -> None:
    box.add(CUTOFF - timedelta(days=3), CUTOFF - timedelta(hours=1), CUTOFF + timedelta(days=1))
    first = expire(box, kafka_settings)
    after_first = box.state()

    again = expire(box, kafka_settings)

    assert (first.expired, first.events_published) == (2, 2)
    assert (again.expired, again.chunks, again.events_published, again.events_from_earlier_runs) == (0, 0, 0, 0)
    assert box.state() == after_first
    assert len(box.events(kafka_settings)) == 2


def test_backlog_larger_than_a_chunk_goes_in_chunks(box: Members, kafka_settings: KafkaSettings) -> None:
    backlog = box.add(*[CUTOFF - timedelta(minutes=minutes) for minutes in range(25, 0, -1)])
    (recent,) = box.add(CUTOFF + timedelta(minutes=1))

    result = expire(box, kafka_settings, chunk_size=10)

    assert (result.expired, result.chunks, result.events_published) == (25, 3, 25)
    assert box.verified_ids() == {recent}
    events = box.events(kafka_settings)
    assert [int(record.key) for record in events] == backlog  # oldest verification first
    # One Kafka transaction per chunk: each commit marker takes an offset, so the offsets skip one after 10 and 20.
    assert [record.offset for record in events] == [*range(0, 10), *range(11, 21), *range(22, 27)]


def test_events_follow_the_commit_and_missed_ones_go_out_with_the_next_run(
    box: Members, kafka_settings: KafkaSettings
) -> None:
    expired_ids = box.add(CUTOFF - timedelta(days=2), CUTOFF)
    transactional_id = f"mungmo-test-{box.database}"
    events = ExpiryEvents(kafka_settings, box.topic, transactional_id)
    with events:
        # A second producer with the same transactional id fences this one off, as a newer run would a zombie.
        fencer = kafka_settings.producer(transactional_id=transactional_id)
        fencer.init_transactions()
        fencer.close()
        with pytest.raises(EventPublishError, match="they stay in the outbox"):
            VerificationExpiry(box.engine, TABLE, events).run(AS_OF)

    assert box.verified_ids() == set(), "the database commit came first"
    assert len(box.outbox()) == 2
    assert box.events(kafka_settings) == []

    result = expire(box, kafka_settings)

    assert (result.expired, result.events_from_earlier_runs, result.events_published) == (0, 2, 2)
    assert box.outbox() == []
    records = box.events(kafka_settings)
    assert sorted(int(record.key) for record in records) == sorted(expired_ids)
    state = box.state()
    for record in records:
        value = json.loads(record.value)
        member = int(record.key)
        granted = state[member][1].replace(tzinfo=UTC)
        assert value == {
            "event_id": event_id(member, granted),
            "member_id": member,
            "verified_at": granted.isoformat(timespec="milliseconds"),
            "expired_at": state[member][2].replace(tzinfo=UTC).isoformat(timespec="milliseconds"),
            "tick": AS_OF.astimezone(UTC).isoformat(timespec="milliseconds"),
        }
    assert event_id(7, datetime(2025, 5, 2, tzinfo=UTC)) == "7:1746144000000"


def test_time_zone_setting_reads_datetimes_as_seoul_wall_clock(box: Members, kafka_settings: KafkaSettings) -> None:
    seoul = MembersTable(time_zone="Asia/Seoul")
    line = seoul.to_db(AS_OF - timedelta(days=30))  # 2025-05-02 09:00:00 as Seoul wall-clock time
    on_line, after = box.add(line, line + timedelta(seconds=1))
    events = ExpiryEvents(kafka_settings, box.topic, f"mungmo-test-{box.database}")
    with events:
        result = VerificationExpiry(box.engine, seoul, events).run(AS_OF)
    assert result.expired == 1
    assert box.verified_ids() == {after}
    (record,) = box.events(kafka_settings)
    assert json.loads(record.value)["verified_at"] == "2025-05-02T00:00:00.000+00:00"
    assert int(record.key) == on_line


def test_bad_settings_and_as_of_name_what_was_expected(box: Members) -> None:
    with box.engine.connect() as conn:
        assert check_schema(conn, TABLE) == TABLE.index_name
        with pytest.raises(MembersTableError, match=r"verified_at_column='verified_on'"):
            check_schema(conn, MembersTable(verified_at_column="verified_on"))
        with pytest.raises(MembersTableError, match=r"members table .*\.members does not exist \(setting 'table'\)"):
            check_schema(conn, MembersTable(name="members"))
    with pytest.raises(ValueError, match=r"time_zone 'Seoul': expected an IANA zone such as UTC or Asia/Seoul"):
        MembersTable(time_zone="Seoul")
    with pytest.raises(ValueError, match=r"expected a UTC offset \(e\.g\. 2025-06-01T09:00:00\+09:00"):
        parse_as_of("2025-06-01T09:00:00")
    assert parse_as_of("2025-06-01T09:00:00+09:00") == AS_OF
    long_name = lock_name("mungmo-verification-expiry", "a" * 80)
    assert len(long_name) == 64
    assert long_name == lock_name("mungmo-verification-expiry", "a" * 80)


# --- the Dagster layer, in a real instance ------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster_home")))
    with DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def defs(box: Members, monkeypatch: pytest.MonkeyPatch) -> Definitions:
    monkeypatch.setenv(MEMBERS_JDBC_URL.name, box.sandbox.jdbc_url(box.database))
    monkeypatch.setenv(VERIFICATION_EXPIRY_TOPIC.name, box.topic)
    return build_definitions(load_connectors())


def test_job_records_metadata_and_its_check_catches_leftovers(
    box: Members, defs: Definitions, instance: DagsterInstance
) -> None:
    box.add(CUTOFF - timedelta(days=1), CUTOFF - timedelta(seconds=1), CUTOFF + timedelta(seconds=1))
    job = defs.resolve_job_def(EXPIRY_JOB)

    result = job.execute_in_process(instance=instance, run_config=job_run_config(AS_OF))

    assert result.success
    metadata = materialization(instance, result.run_id)
    assert metadata is not None
    assert metadata["expired"] == 2
    assert metadata["chunks"] == 1
    assert metadata["as_of"] == "2025-06-01T09:00:00.000+09:00"
    assert metadata["cutoff"] == "2025-05-02T09:00:00.000+09:00"
    assert metadata["duration_s"] >= 0
    assert metadata["verification_index"] == TABLE.index_name
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    assert check.metadata["still_verified"].value == 0
    assert instance.get_run_by_id(result.run_id).tags[AS_OF_TAG] == metadata["as_of"]

    # A verification the run did not see (written back with an old date afterwards) fails the check.
    box.add(CUTOFF - timedelta(hours=5))
    check_only = define_asset_job(
        "check_only", selection=AssetSelection.checks_for_assets(AssetKey([box.database, TABLE.name]))
    )
    checked = (
        Definitions.merge(defs, Definitions(jobs=[check_only]))
        .resolve_job_def("check_only")
        .execute_in_process(instance=instance)
    )
    (failed,) = checked.get_asset_check_evaluations()
    assert not failed.passed
    assert failed.metadata["still_verified"].value == 1
    assert failed.metadata["expiry_run"].value == result.run_id


def test_run_that_finds_the_lock_taken_ends_as_skipped(
    box: Members, defs: Definitions, instance: DagsterInstance
) -> None:
    (stale,) = box.add(CUTOFF - timedelta(days=1))
    with NamedLock.acquire(box.engine, box.lock_name, lease_seconds=30) as held:
        result = defs.resolve_job_def(EXPIRY_JOB).execute_in_process(instance=instance)
    assert result.success
    assert result.get_asset_materialization_events() == []
    skipped = instance.get_run_by_id(result.run_id).tags[SKIPPED_TAG]
    assert skipped.startswith(f"skipped: lock '{box.lock_name}' held by connection {held.connection_id} (mungmo@")
    assert box.verified_ids() == {stale}


def test_schedule_tick_is_the_cutoff_even_when_the_run_is_late(
    box: Members, defs: Definitions, instance: DagsterInstance
) -> None:
    schedule = defs.resolve_schedule_def(EXPIRY_SCHEDULE)
    assert (schedule.cron_schedule, schedule.execution_timezone) == (EXPIRY_CRON, EXPIRY_TIMEZONE)
    tick = datetime(2025, 6, 1, 9, 0, tzinfo=ZoneInfo(EXPIRY_TIMEZONE))  # replayed a long time after
    due, not_due_at_tick = box.add(naive_utc(tick - timedelta(days=30)), naive_utc(tick - timedelta(days=29)))

    with tick_context(defs, instance, tick) as context:
        request = schedule.evaluate_tick(context).run_requests
    assert request is not None
    (run_request,) = request
    assert isinstance(run_request, RunRequest)
    assert run_request.run_key == tick.isoformat()
    result = defs.resolve_job_def(EXPIRY_JOB).execute_in_process(
        instance=instance, run_config=run_request.run_config, tags=run_request.tags
    )

    assert result.success
    assert box.verified_ids() == {not_due_at_tick}, "the tick's cut-off, not now minus 30 days"
    assert instance.get_run_by_id(result.run_id).tags[AS_OF_TAG] == "2025-06-01T09:00:00.000+09:00"
    assert due not in box.verified_ids()


def test_manual_run_without_as_of_uses_its_creation_time(
    box: Members, defs: Definitions, instance: DagsterInstance
) -> None:
    now = datetime.now(UTC)
    old, fresh = box.add(naive_utc(now - timedelta(days=31)), naive_utc(now - timedelta(days=29)))
    result = defs.resolve_job_def(EXPIRY_JOB).execute_in_process(instance=instance)
    created = instance.get_run_record_by_id(result.run_id).create_timestamp
    assert materialization(instance, result.run_id)["as_of"] == created.astimezone(UTC).isoformat(
        timespec="milliseconds"
    )
    assert box.verified_ids() == {fresh}
    assert old not in box.verified_ids()


def test_project_definitions_wire_the_expiry() -> None:
    from mungmo_pipelines import defs

    members_key, topic = AssetKey(["mungMo", "member"]), AssetKey(["kafka", "neighbourhood-verification-expired"])
    assert defs.resolve_asset_graph().get(topic).parent_keys == {members_key}
    job = defs.resolve_job_def(EXPIRY_JOB)
    assert job.tags == {"mungmo/run_lock": EXPIRY_JOB, "dagster/max_runtime": "300"}
    assert job.executor_def.name == "in_process"
    schedule = defs.resolve_schedule_def(EXPIRY_SCHEDULE)
    assert (schedule.job_name, schedule.default_status.value) == (EXPIRY_JOB, "RUNNING")
    checks = defs.resolve_asset_graph().asset_check_keys
    assert {check.name for check in checks if check.asset_key == members_key} == {"no_verification_past_cutoff"}
