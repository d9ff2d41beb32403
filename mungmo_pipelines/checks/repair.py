"""The repair job of each source connector: rows sent through Kafka again, then checked.

``<source>_repair`` takes keys, key ranges, or "the differences the last check found" (the latest
``rows_match_source`` result stored in each target database), sends the source's current rows for
them and deletes for the keys it no longer has (``core/consistency/repair.py``: a JDBC source's rows
and tombstones; a CDC source's incremental snapshot with additional conditions, as one run of the
source, and delete events), then runs the checks of the repaired tables (which run the sinks to
apply the repair) and records their results as the checks' own evaluations. Runs carry the
source's connector tag, so the run queue never starts one beside a run of the source (they share
its transactional id).
"""

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetObservation,
    Config,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from mungmo_pipelines.assets.keys import job_name, topic_key
from mungmo_pipelines.checks.consistency import ROWS_CHECK, check_outcome, evaluation
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.consistency.pipelines import ReplicatedTable
from mungmo_pipelines.core.consistency.repair import RepairResult, RepairScope, RepairTarget, repair_strategy
from mungmo_pipelines.core.consistency.store import latest_result
from mungmo_pipelines.core.errors import MungmoError
from mungmo_pipelines.core.topology import Topology
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from mungmo_pipelines.sensors.source_changes import CONNECTOR_TAG


class RepairConfig(Config):
    table: str = Field(
        default="",
        description="The source table to repair (a CDC source's as <db>.<table>). May be left empty when the source "
        "reads one table, or with last_check (every table with a stored check result).",
    )
    keys: list[Any] = Field(
        default=[],
        description="Keys to repair: each a value (one-column key) or a list of values in key-column order, as the "
        "check's first_differences show them (DECIMAL as {decimal: '1.50'}, bytes as {bytes: '<hex>'}, dates and "
        "times as ISO text; TIMESTAMP values as wall-clock time in the sink's db.timezone).",
    )
    ranges: list[Any] = Field(
        default=[],
        description="Key ranges to repair: each [from, to], from included, to excluded, null for unbounded; bounds "
        "written like keys. Rows the source lacks in a range are found in the targets and deleted.",
    )
    last_check: bool = Field(
        default=False, description="Repair what the latest rows_match_source check of each target found."
    )
    include_explained: bool = Field(
        default=True,
        description="With last_check: also the differences the mode explains (an incrementing source's updates, "
        "deletes no JDBC mode carries), so the target ends equal to the source.",
    )
    check_after: bool = Field(
        default=True, description="Then check the repaired tables (running their sinks to apply the repair)."
    )


def _key(value: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, list):
        if not value:
            raise Failure(f"repair config {what}: an empty key")
        return tuple(value)
    return (value,)


def _ranges(config: RepairConfig) -> tuple[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None], ...]:
    ranges = []
    for index, item in enumerate(config.ranges):
        if not (isinstance(item, list) and len(item) == 2):
            raise Failure(f"repair config ranges[{index}]: expected [from, to], got {item!r}")
        lower, upper = (None if bound is None else _key(bound, f"ranges[{index}]") for bound in item)
        ranges.append((lower, upper))
    return tuple(ranges)


def repair_job(
    source: JdbcSourceConfig | DebeziumSourceConfig,
    tables: Sequence[str],
    sinks: Sequence[SinkConfig],
    replicated: Sequence[ReplicatedTable],
) -> JobDefinition:
    """The repair job of ``source``: ``tables`` it reads, ``sinks`` reading its topics, ``replicated`` the
    checked tables among them."""

    @op(name=f"repair_{job_name(source.name)}")
    def repair(
        context: OpExecutionContext, config: RepairConfig, mariadb: MariaDBResource, kafka: KafkaResource
    ) -> None:
        keys = tuple(_key(k, f"keys[{i}]") for i, k in enumerate(config.keys))
        ranges = _ranges(config)
        if not (keys or ranges or config.last_check):
            raise Failure("repair config: give keys, ranges or last_check: true")
        chosen = [config.table] if config.table else list(tables)
        if config.table and config.table not in tables:
            listed = ", ".join(tables)
            raise Failure(f"repair config table: {config.table!r} is not a table of {source.name} ({listed})")
        if (keys or ranges) and len(chosen) != 1:
            raise Failure(f"repair config table: name the table the keys are of ({', '.join(tables)})")
        failed: list[str] = []
        for table in chosen:
            checked = [r for r in replicated if r.table == table]
            scopes = []
            if keys or ranges:
                zone = checked[0].spec.zone if checked else "UTC"
                scopes.append(RepairScope(keys=keys, ranges=ranges, zone=zone))
            if config.last_check:
                scopes.extend(_last_check(context, checked, mariadb, config.include_explained))
            topic = source.topic_for(table)
            targets = [RepairTarget(s, mariadb.engine(s.connection)) for s in sinks if s.reads_topic(topic)]
            strategy = repair_strategy(source, mariadb.engine(source.connection), kafka.settings())
            for scope in scopes:
                if not scope:
                    continue
                try:
                    result = strategy.repair(table, scope, targets)
                except MungmoError as err:
                    raise Failure(str(err)) from err
                _report(context, result)
            if config.check_after and any(scopes):
                for replicated_table in checked:
                    outcome = check_outcome(replicated_table, mariadb, kafka, ROWS_CHECK)
                    # log_event takes AssetCheckEvaluation (Dagster 1.13's code); its annotation lags.
                    context.log_event(evaluation(replicated_table, ROWS_CHECK, outcome))  # type: ignore[arg-type]
                    context.log.info(f"{replicated_table.label}: after the repair: {outcome[1]}")
                    if not outcome[0]:
                        failed.append(f"{replicated_table.label}: {outcome[1]}")
        if failed:
            raise Failure(f"repaired, but the check still fails: {'; '.join(failed)}")

    @job(
        name=f"{job_name(source.name)}_repair",
        executor_def=in_process_executor,
        tags={CONNECTOR_TAG: source.name},
        description=f"Send rows of `{source.name}` through Kafka again (keys, ranges or what the last check found), "
        "deletes for rows it no longer has, then check the repaired tables."
        + (
            " Runs the CDC source: its incremental snapshot re-reads the rows."
            if isinstance(source, DebeziumSourceConfig)
            else ""
        ),
    )
    def repair_source() -> None:
        repair()

    return repair_source


def _last_check(
    context: OpExecutionContext, checked: Sequence[ReplicatedTable], mariadb: MariaDBResource, explained: bool
) -> list[RepairScope]:
    scopes = []
    for replicated in checked:
        spec = replicated.spec
        engine = mariadb.engine(replicated.sink.connection)
        stored = latest_result(engine, spec.source_label, spec.target_label, ROWS_CHECK)
        if stored is None:
            context.log.warning(f"{replicated.label}: no stored {ROWS_CHECK} result: run the check first")
            continue
        scope = RepairScope.of_differences(stored, explained)
        context.log.info(f"{replicated.label}: the last check found {len(scope.keys)} keys to repair")
        scopes.append(RepairScope(keys=scope.keys, zone=spec.zone))
    return scopes


def _report(context: OpExecutionContext, result: RepairResult) -> None:
    withheld = len(result.tombstones_withheld)
    deleted = f", {result.rows_deleted} delete events" if result.rows_deleted else ""
    context.log.info(
        f"{result.table} -> {result.topic}: {result.rows_sent} rows{deleted} and {result.tombstones_sent} tombstones "
        "sent" + (f"; {withheld} tombstones withheld" if withheld else "")
    )
    for note in result.notes:
        context.log.info(f"{result.table}: {note}")
    for sink, limits in result.sinks.items():
        for limit in limits:
            context.log.warning(f"sink {sink!r}: {limit}")
    context.log_event(
        AssetObservation(
            asset_key=topic_key(result.topic),
            metadata={
                "repair_rows_sent": result.rows_sent,
                "repair_tombstones_sent": result.tombstones_sent,
                "repair_delete_events_sent": result.rows_deleted,
                "repair_tombstones_withheld": withheld,
                "repair_keys_requested": result.keys_requested,
                "repair_ranges": result.ranges,
                "repair_transactions": result.transactions,
                "repair_duration_s": result.seconds,
                "repair_sink_limits": MetadataValue.json(result.sinks),
            },
        )
    )


def repair_jobs(topology: Topology, replicated: Sequence[ReplicatedTable]) -> list[JobDefinition]:
    """A repair job per source connector (JDBC or CDC) with tables a sink reads: the tables it may repair
    (not, say, a CDC source's signal table, whose topic no sink reads)."""
    jobs = []
    for node in topology.sources:
        pipeline = topology.pipeline_of(node.config)
        if pipeline is None:
            continue
        sinks = pipeline.sinks
        tables = [t for t in node.tables or () if any(s.reads_topic(node.config.topic_for(t)) for s in sinks)]
        if not tables:
            continue
        checked = [r for r in replicated if r.source.name == node.config.name]
        jobs.append(repair_job(node.config, tables, sinks, checked))
    return jobs
