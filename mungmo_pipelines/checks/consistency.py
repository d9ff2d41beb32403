"""Consistency checks (정합) in Dagster: two asset checks on each replicated target table.

* ``row_count_matches_source``: row counts, judged by the source's mode (cheap);
* ``rows_match_source``: chunked checksums, and the rows that differ (``core/consistency``).

They run after each run that writes the table (asset jobs include their assets' checks), on the
schedules in ``schedules/consistency.py`` (the check jobs below), and alone from the UI. Each
waits until the target has applied what the source has sent, running the sink to get there unless
the sink is paused or stopped, stores its full result in the target database (the repair job
reads it back) and reports numbers the UI plots over time. A sink's ``mungmo.consistency.blocking``
makes its checks blocking: a failed check fails the run.
"""

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    MetadataValue,
    asset_check,
    define_asset_job,
    in_process_executor,
)

from mungmo_pipelines.assets.keys import table_key
from mungmo_pipelines.core.consistency.pipelines import WAIT_S, ReplicatedTable, check_replicated
from mungmo_pipelines.core.consistency.result import CheckResult
from mungmo_pipelines.core.consistency.store import save_result
from mungmo_pipelines.core.errors import MungmoError
from mungmo_pipelines.core.sink.runtime import JdbcSink
from mungmo_pipelines.operations.gate import not_running_reason
from mungmo_pipelines.resources import KafkaResource, MariaDBResource

log = logging.getLogger(__name__)

ROWS_CHECK = "rows_match_source"
COUNT_CHECK = "row_count_matches_source"
ROWS_CHECK_JOB = "consistency_rows_check"
COUNT_CHECK_JOB = "consistency_count_check"
FIRST_DIFFERENCES = 10

if TYPE_CHECKING:  # what define_asset_job returns; Dagster exports no public name for it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def target_key(replicated: ReplicatedTable) -> AssetKey:
    spec = replicated.spec
    return table_key(spec.target_database, spec.target_table)


def run_check(
    replicated: ReplicatedTable, mariadb: MariaDBResource, kafka: KafkaResource, check_name: str
) -> tuple[CheckResult, int | None]:
    """Check one replicated table, running its sink to apply the source's point unless the sink is
    paused or stopped; store the result. Returns the result and its stored id (None: not stored)."""
    sink = replicated.sink
    source_engine, target_engine = mariadb.engine(replicated.source.connection), mariadb.engine(sink.connection)
    settings = kafka.settings()
    paused = not_running_reason(kafka, sink.name)
    apply = None if paused else (lambda: JdbcSink(sink, target_engine, settings).run())
    # A paused or stopped sink applies nothing: waiting for it would only delay the verdict.
    result = check_replicated(
        replicated,
        source_engine,
        target_engine,
        settings,
        apply=apply,
        count_only=check_name == COUNT_CHECK,
        wait_s=0 if paused else WAIT_S,
    )
    if paused:
        result.notes.append(f"the sink was not run to apply the source's point: {paused}")
    try:
        return result, save_result(target_engine, check_name, result)
    except Exception as err:  # the verdict stands without its stored copy; the repair then lacks it
        log.warning("%s: the result of %s was not stored: %s", replicated.label, check_name, err)
        result.notes.append(f"not stored in the target database: {err}")
        return result, None


def describe(result: CheckResult) -> str:
    """One line for the UI: the verdict and what it rests on."""
    stats = result.stats
    if result.method == "count":
        verdict = result.count_mismatch or (
            f"source {stats.source_rows} rows ({stats.source_unsent} not sent yet), target {stats.target_rows}"
        )
        return f"{verdict} ({result.reason})"
    counts = result.counts()
    found = ", ".join(f"{counts[kind]} {kind}" for kind in ("missing", "extra", "different") if counts[kind])
    parts = [found or f"{stats.source_rows} source rows and {stats.target_rows} target rows match"]
    explained = Counter(d.kind for d in result.explained)
    if explained:
        parts.append(f"the {result.mode} mode explains " + ", ".join(f"{n} {kind}" for kind, n in explained.items()))
    if result.in_flight:
        parts.append(f"{len(result.in_flight)} in flight")
    return "; ".join(parts)


def check_metadata(result: CheckResult, result_id: int | None) -> dict[str, Any]:
    """Numbers the UI plots over time, the compared position and the first differences."""
    stats = result.stats
    counts = result.counts()
    metadata: dict[str, Any] = {
        "method": result.method,
        "source_rows": stats.source_rows,
        "target_rows": stats.target_rows,
        "rows_compared": stats.source_rows + stats.target_rows,
        "chunks": stats.chunks,
        "missing": counts["missing"],
        "extra": counts["extra"],
        "different": counts["different"],
        "explained": counts["explained"],
        "in_flight": counts["in_flight"],
        "rows_fetched": stats.rows_fetched,
        "queries": stats.queries,
        "duration_s": stats.duration_s,
        "caught_up": result.caught_up,
        "compared_position": MetadataValue.json(result.positions.get("start") or {}),
        "first_differences": MetadataValue.json(
            [
                {"kind": d.kind, "key": d.key, "columns": [c.column for c in d.columns]}
                for d in result.differences[:FIRST_DIFFERENCES]
            ]
        ),
    }
    if result.method == "count":
        metadata["source_unsent"] = stats.source_unsent
    if result.reason:
        metadata["reason"] = result.reason
    if result.notes:
        metadata["notes"] = MetadataValue.json(result.notes)
    if result_id is not None:
        metadata["stored_result_id"] = result_id
    return metadata


def check_outcome(
    replicated: ReplicatedTable, mariadb: MariaDBResource, kafka: KafkaResource, check_name: str
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, description, metadata) of one check; a check that cannot run fails, naming why."""
    try:
        result, result_id = run_check(replicated, mariadb, kafka, check_name)
    except MungmoError as err:
        return False, f"the check could not run: {err}", {"error": str(err)}
    return result.passed, describe(result), check_metadata(result, result_id)


def evaluation(
    replicated: ReplicatedTable, check_name: str, outcome: tuple[bool, str, dict[str, Any]]
) -> AssetCheckEvaluation:
    """The outcome as an ``AssetCheckEvaluation`` event, for a run that checks outside the check's own step."""
    passed, description, metadata = outcome
    return AssetCheckEvaluation(
        asset_key=target_key(replicated),
        check_name=check_name,
        passed=passed,
        metadata=metadata,
        severity=AssetCheckSeverity.ERROR,
        description=description,
    )


def consistency_check(replicated: ReplicatedTable, check_name: str, what: str) -> AssetChecksDefinition:
    """One check of one replicated table, on its target asset."""

    @asset_check(
        asset=target_key(replicated),
        name=check_name,
        blocking=replicated.sink.consistency_blocking,
        description=f"`{replicated.spec.source_label}` (source `{replicated.source.name}`, mode "
        f"{replicated.mode}) against this table (sink `{replicated.sink.name}`): {what}, at the source's "
        "stored offset once the sink has applied it.",
    )
    def evaluate(
        context: AssetCheckExecutionContext, mariadb: MariaDBResource, kafka: KafkaResource
    ) -> AssetCheckResult:
        passed, description, metadata = check_outcome(replicated, mariadb, kafka, check_name)
        context.log.info(f"{replicated.label}: {check_name} {'passed' if passed else 'FAILED'}: {description}")
        return AssetCheckResult(
            passed=passed, severity=AssetCheckSeverity.ERROR, description=description, metadata=metadata
        )

    return evaluate


def consistency_checks(replicated: ReplicatedTable) -> list[AssetChecksDefinition]:
    """The two checks of one replicated table."""
    return [
        consistency_check(replicated, COUNT_CHECK, "row counts, judged by the source's mode"),
        consistency_check(replicated, ROWS_CHECK, "chunked checksums of both tables and the rows that differ"),
    ]


def project_checks(tables: list[ReplicatedTable]) -> dict[str, list[AssetChecksDefinition]]:
    """The checks of every replicated table, by check name; a target fed by two sources keeps the first."""
    checks: dict[str, list[AssetChecksDefinition]] = {ROWS_CHECK: [], COUNT_CHECK: []}
    seen: set[AssetKey] = set()
    for replicated in tables:
        key = target_key(replicated)
        if key in seen:
            log.warning("%s: %s is checked against another source already; not checked again", replicated.label, key)
            continue
        seen.add(key)
        for check in consistency_checks(replicated):
            (spec,) = check.check_specs
            checks[spec.name].append(check)
    return checks


def check_jobs(checks: dict[str, list[AssetChecksDefinition]]) -> list["UnresolvedAssetJobDefinition"]:
    """A job running every rows check, and one running every count check (what the schedules launch)."""
    jobs = []
    for job, check_name, what in (
        (ROWS_CHECK_JOB, ROWS_CHECK, "chunked checksums and diff"),
        (COUNT_CHECK_JOB, COUNT_CHECK, "row counts"),
    ):
        if checks[check_name]:
            jobs.append(
                define_asset_job(
                    job,
                    selection=AssetSelection.checks(*checks[check_name]),
                    executor_def=in_process_executor,
                    description=f"The consistency check of every replicated table: {what}.",
                )
            )
    return jobs
