"""Neighbourhood verification expiry in Dagster: an op job reporting on the members table and the events topic.

The two are external assets (the app owns the table), so the expiry runs only as its job: never
from "Materialize all" or an asset selection. The job's runs share one run-level concurrency tag
(limited to 1 in ``dagster.yaml``) and a ``dagster/max_runtime``; the run itself takes the MariaDB
named lock for the members table, so a run started outside the queue (``dagster job execute``,
another deployment) cannot overlap either. A run that finds the lock taken ends cleanly as
skipped, like a ShedLock-guarded method on another instance, and says so in the
``mungmo/skipped`` run tag. Each run that did the work records a materialization of both
assets and evaluates the check ``no_verification_past_cutoff``.
"""

from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Config,
    OpDefinition,
    OpExecutionContext,
    op,
)
from pydantic import Field

from mungmo_pipelines.assets.keys import table_key, topic_key
from mungmo_pipelines.assets.metadata import asset_owners, table_name_metadata
from mungmo_pipelines.core.expiry.events import ExpiryEvents
from mungmo_pipelines.core.expiry.members import overdue_verifications, parse_as_of
from mungmo_pipelines.core.expiry.run import VerificationExpiry
from mungmo_pipelines.core.mariadb.lock import LockHeldElsewhere, NamedLock
from mungmo_pipelines.resources import KafkaResource, MariaDBResource, VerificationExpiryResource

EXPIRY_JOB = "neighbourhood_verification_expiry"
EXPIRY_OP = "expire_neighbourhood_verifications"
# dagster.yaml limits runs carrying this tag to one at a time (concurrency: runs: tag_concurrency_limits).
RUN_LOCK_TAG = {"mungmo/run_lock": EXPIRY_JOB}
# Run monitoring fails a run older than this (ShedLock's lockAtMostFor); chunks already committed stay.
MAX_RUNTIME_SECONDS = 300
EXPIRY_JOB_TAGS = {**RUN_LOCK_TAG, "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)}
AS_OF_TAG = "mungmo/as_of"
CHECK_NAME = "no_verification_past_cutoff"
SKIPPED_TAG = "mungmo/skipped"


class ExpiryRunConfig(Config):
    as_of: str | None = Field(
        default=None,
        description="Cut-off time, ISO-8601 with a UTC offset (2025-06-01T09:00:00+09:00). The schedule sets "
        "its tick's time; a manual run without it uses the run's creation time.",
    )
    test_only_hold_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Tests only: keep the lock this many seconds after the work, so overlaps and hangs "
        "can be observed. Leave at 0.",
    )


def members_key(settings: VerificationExpiryResource) -> AssetKey:
    return table_key(settings.database, settings.table)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def verification_expiry_specs(settings: VerificationExpiryResource) -> list[AssetSpec]:
    """The members table and the events topic: external assets, which only the expiry job reports on.

    Not materializable, so neither "Materialize all" nor ``dagster asset materialize`` can run the
    expiry: it runs only as its job, whose tags (queue limit, max runtime) every launch carries.
    """
    members = members_key(settings)
    return [
        AssetSpec(
            members,
            group_name=settings.database,
            kinds={"mariadb", "table"},
            owners=asset_owners(),
            metadata=table_name_metadata(settings.database, settings.table),
            description=f"Table `{settings.database}.{settings.table}` (the app's): job `{EXPIRY_JOB}` cancels "
            f"the neighbourhood verifications granted {settings.ttl_days} days or more before its cut-off, "
            "and each run that took the lock reports a materialization here.",
        ),
        AssetSpec(
            topic_key(settings.topic),
            deps=[members],
            group_name="kafka",
            kinds={"kafka"},
            owners=asset_owners(),
            description=f"Topic `{settings.topic}`: one JSON event per expired verification, keyed by member id, "
            f"published by job `{EXPIRY_JOB}`.",
        ),
    ]


def overdue_check(
    members: AssetKey, count: int, oldest: datetime | None, cutoff: datetime, as_of: datetime, run_id: str
) -> AssetCheckResult:
    """The check's verdict: no member still verified at or before the cut-off of the run ``run_id``."""
    return AssetCheckResult(
        asset_key=members,
        check_name=CHECK_NAME,
        passed=count == 0,
        severity=AssetCheckSeverity.ERROR,
        description=f"{count} members still verified at or before {iso(cutoff)}",
        metadata={
            "still_verified": count,
            "as_of": iso(as_of),
            "expiry_run": run_id,
            "oldest_verified_at": iso(oldest) if oldest else "",
        },
    )


def verification_expiry_op(settings: VerificationExpiryResource) -> OpDefinition:
    members = members_key(settings)
    events = topic_key(settings.topic)

    @op(name=EXPIRY_OP)
    def expire(
        context: OpExecutionContext,
        config: ExpiryRunConfig,
        mariadb: MariaDBResource,
        kafka: KafkaResource,
        verification: VerificationExpiryResource,
    ) -> None:
        as_of = run_as_of(context, config)
        context.instance.add_run_tags(context.run.run_id, {AS_OF_TAG: iso(as_of)})
        engine = mariadb.engine(verification.connection())
        name = verification.lock_name()
        try:
            lock = NamedLock.acquire(engine, name, verification.lock_lease_seconds)
        except LockHeldElsewhere as held:
            context.log.warning(f"skipped: {held}")
            context.instance.add_run_tags(context.run.run_id, {SKIPPED_TAG: f"skipped: {held}"})
            return
        table = verification.members_table()
        with lock, ExpiryEvents(kafka.settings(), verification.topic, f"mungmo-{name}") as publisher:
            result = VerificationExpiry(engine, table, publisher, verification.chunk_size).run(as_of, lock)
            if config.test_only_hold_seconds:
                lock.hold(config.test_only_hold_seconds)
        if result.verification_index is None:
            context.log.warning(
                f"no index on {table.name}({table.verified_column}, {table.verified_at_column}): every run "
                "scans the table; see docs/expiry.md"
            )
        context.log.info(
            f"expired {result.expired} verifications granted at or before {iso(result.cutoff)} "
            f"in {result.chunks} chunks; {result.events_published} events published"
        )
        context.log_event(
            AssetMaterialization(
                asset_key=members,
                metadata={
                    "expired": result.expired,
                    "as_of": iso(as_of),
                    "cutoff": iso(result.cutoff),
                    "chunks": result.chunks,
                    "chunk_size": verification.chunk_size,
                    "duration_s": round(result.seconds, 3),
                    "db_s": round(result.db_seconds, 3),
                    "verification_index": result.verification_index or "MISSING",
                    "lock": f"{name} (connection {lock.connection_id})",
                    "lock_acquired_at": iso(lock.acquired_at),
                    "lock_released_at": iso(lock.released_at or datetime.now(UTC)),
                },
            )
        )
        context.log_event(
            AssetMaterialization(
                asset_key=events,
                metadata={
                    "events_published": result.events_published,
                    "events_from_earlier_runs": result.events_from_earlier_runs,
                    "publish_s": round(result.publish_seconds, 3),
                },
            )
        )
        count, oldest = overdue_verifications(engine, table, as_of)
        verdict = overdue_check(members, count, oldest, result.cutoff, as_of, context.run.run_id)
        # log_event takes an AssetCheckEvaluation (OpExecutionContext.log_event handles it); its annotation lags.
        context.log_event(
            AssetCheckEvaluation(  # type: ignore[arg-type]
                asset_key=members,
                check_name=CHECK_NAME,
                passed=verdict.passed,
                severity=verdict.severity,
                description=verdict.description,
                metadata=verdict.metadata,
            )
        )

    return expire


def run_as_of(context: OpExecutionContext, config: ExpiryRunConfig) -> datetime:
    """The run config's ``as_of`` (the schedule's tick), else the run's creation time."""
    if config.as_of:
        return parse_as_of(config.as_of)
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is None:
        raise LookupError(f"run {context.run.run_id} is not in the instance's run storage")
    return record.create_timestamp.astimezone(UTC)


def expiry_run_config(as_of: datetime | None = None, hold_seconds: float = 0.0) -> dict[str, Any]:
    """Run config for the expiry job (the schedule's and tests')."""
    config: dict[str, Any] = {}
    if as_of is not None:
        config["as_of"] = as_of.isoformat()
    if hold_seconds:
        config["test_only_hold_seconds"] = hold_seconds
    return {"ops": {EXPIRY_OP: {"config": config}}}
