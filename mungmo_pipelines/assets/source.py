"""Source connector assets: the tables a source reads, and the topics it materializes (one multi-asset)."""

import warnings
from collections.abc import Collection, Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    ObserveResult,
    OpExecutionContext,
    multi_asset,
    multi_observable_source_asset,
)
from sqlalchemy import Engine

from mungmo_pipelines.assets.cdc import cdc_source_asset
from mungmo_pipelines.assets.keys import job_name, source_pool, table_key, topic_key, unlisted_topics_key
from mungmo_pipelines.assets.metadata import asset_owners, copied_columns, table_metadata, table_name_metadata
from mungmo_pipelines.assets.metadata import column_schema as dagster_column_schema
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.mariadb.catalog import describe_tables
from mungmo_pipelines.core.mariadb.columns import TableSchema
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from mungmo_pipelines.core.source.offsets import offset_key, table_partition
from mungmo_pipelines.core.source.probe import TableProbe, probe_changes
from mungmo_pipelines.core.source.runtime import TableRun
from mungmo_pipelines.core.topology import SourceNode
from mungmo_pipelines.operations.gate import skipped_for_state
from mungmo_pipelines.resources import KafkaResource, MariaDBResource


def source_table_specs(node: SourceNode) -> list[AssetSpec]:
    return [
        AssetSpec(
            table_key(database, table),
            group_name=database,
            kinds={"mariadb", "table"},
            owners=asset_owners(),
            metadata=table_name_metadata(database, table),
            description=f"Table `{database}.{table}`, read by source connector `{node.config.name}`; each of "
            "its runs, and Observe, records the table's columns and row count.",
        )
        for database, table in node.table_names()
    ]


def source_tables_asset(node: SourceNode, exclude: Collection[AssetKey] = ()) -> AssetsDefinition | None:
    """The tables a source reads (but those in ``exclude``), as observable source assets: not
    materialized by anything here, but observed, by each source run and by the UI's Observe."""
    config = node.config
    specs = [spec for spec in source_table_specs(node) if spec.key not in exclude]
    if not specs:
        return None

    by_database: dict[str, list[str]] = {}
    for spec in specs:
        database, table = spec.key.path
        by_database.setdefault(database, []).append(table)

    def observe(context: OpExecutionContext) -> Iterator[ObserveResult]:
        engine = context.resources.mariadb.engine(config.connection)
        for database, tables in by_database.items():
            for table, (schema, rows) in describe_tables(engine, tables, database).items():
                yield ObserveResult(asset_key=table_key(database, table), metadata=table_metadata(schema, rows))

    # Beta in Dagster 1.13 (pinned); its warning would print at every load of the definitions.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return multi_observable_source_asset(
            name=f"{job_name(config.name)}_tables", specs=specs, required_resource_keys={"mariadb"}
        )(observe)


def _table_run_metadata(run: TableRun, lag: TableProbe | None) -> dict[str, Any]:
    return {
        "source_lag": lag.lag if lag and lag.lag is not None else "unknown",
        "source_lag_unit": lag.lag_unit if lag else "",
        "rows_read": run.rows,
        "records_produced": run.rows,
        "bytes_produced": run.bytes,
        "transactions": run.transactions,
        "offset_before": MetadataValue.json(run.offset_before or {}),
        "offset_after": MetadataValue.json(run.offset_after or {}),
        "held_back": run.held_back or "nothing",
        "duration_s": round(run.seconds, 3),
    }


def describe_source(
    config: JdbcSourceConfig, engine: Engine, runs: list[TableRun], observed: set[AssetKey]
) -> tuple[dict[str, tuple[TableSchema, int]], dict[str, TableProbe]]:
    """The declared source tables' schemas and row counts, and each table's lag behind its new offset."""
    listed = [run.table for run in runs if table_key(config.database, run.table) in observed]
    described = describe_tables(engine, listed) if listed else {}
    stored = {
        offset_key(config.name, table_partition(config.database, None if config.query else run.table)): run.offset_after
        for run in runs
        if run.offset_after is not None
    }
    return described, {probe.table: probe for probe in probe_changes(config, engine, stored)}


def source_connector_asset(node: SourceNode) -> AssetsDefinition:
    if isinstance(node.config, DebeziumSourceConfig):
        return cdc_source_asset(node, node.config)
    return jdbc_source_asset(node, node.config)


def jdbc_source_asset(node: SourceNode, config: JdbcSourceConfig) -> AssetsDefinition:
    tables = node.tables
    database = config.database
    specs = [
        AssetSpec(
            topic_key(config.topic_for(table)),
            deps=[table_key(database, table)] if table else [],
            group_name="kafka",
            kinds={"kafka"},
            owners=asset_owners(),
            description=f"Topic `{config.topic_for(table)}`: Kafka Connect JSON records of "
            + (f"`{database}.{table}`" if table else "the connector's query")
            + f", produced by `{config.name}` (mode {config.mode}).",
            skippable=True,
        )
        for table in (tables or ("",))
    ]
    if tables is None:
        specs = [
            AssetSpec(
                unlisted_topics_key(config),
                group_name="kafka",
                kinds={"kafka"},
                owners=asset_owners(),
                description=f"The topics `{config.topic_prefix}<table>` of every table of `{database}` that "
                f"`{config.name}` copies; the database was unreachable when definitions loaded, so the tables "
                "are not listed one by one (reload the code location to list them).",
                skippable=True,
            )
        ]
    declared = {spec.key for spec in specs}

    observed = {table_key(database, table) for table in tables or ()}

    # The pool (limit 1 per source, dagster.yaml) holds on every launch path, the UI's asset
    # materializations and `dagster asset materialize` included: two runs would fence each other.
    @multi_asset(name=f"{job_name(config.name)}_publish", specs=specs, can_subset=False, pool=source_pool(config))
    def publish(
        context: AssetExecutionContext, mariadb: MariaDBResource, kafka: KafkaResource
    ) -> Iterator[MaterializeResult]:
        if skipped_for_state(context, kafka, config.name):
            return
        engine = mariadb.engine(config.connection)
        runs = run_jdbc_source(config, engine, kafka.settings()).tables
        described, lags = describe_source(config, engine, runs, observed)
        for run in runs:
            context.log.info(
                f"{run.table} -> {run.topic}: {run.rows} rows, offset {run.offset_before} -> {run.offset_after}"
                + (f"; held back: {run.held_back}" if run.held_back else "")
            )
            source_key = table_key(database, run.table)
            schema, rows = described.get(run.table, (None, None))
            metadata = _table_run_metadata(run, lags.get(run.table))
            if schema is not None:
                context.log_event(AssetObservation(asset_key=source_key, metadata=table_metadata(schema, rows)))
                names = [column.name for column in schema.columns]
                # The records' fields are the table's columns (the topic's "columns").
                metadata["dagster/column_schema"] = dagster_column_schema(schema)
                metadata["dagster/column_lineage"] = copied_columns(source_key, names, names)
            if topic_key(run.topic) in declared:
                yield MaterializeResult(asset_key=topic_key(run.topic), metadata=metadata)
            elif tables is not None:
                context.log.warning(
                    f"table {run.table} is newer than the loaded definitions; reload the code location to see its asset"
                )
        if tables is None:
            yield MaterializeResult(
                asset_key=unlisted_topics_key(config),
                metadata={
                    "rows_read": sum(r.rows for r in runs),
                    "bytes_produced": sum(r.bytes for r in runs),
                    "tables": MetadataValue.json({r.table: r.rows for r in runs}),
                },
            )

    return publish
