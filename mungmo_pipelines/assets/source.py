"""Source connector assets: the tables a source reads, and the topics it materializes (one multi-asset)."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from mungmo_pipelines.assets.cdc import cdc_source_asset
from mungmo_pipelines.assets.keys import job_name, table_key, topic_key, unlisted_topics_key
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from mungmo_pipelines.core.source.runtime import TableRun
from mungmo_pipelines.core.topology import SourceNode
from mungmo_pipelines.resources import KafkaResource, MariaDBResource


def source_table_specs(node: SourceNode) -> list[AssetSpec]:
    return [
        AssetSpec(
            table_key(database, table),
            group_name=database,
            kinds={"mariadb"},
            description=f"Table `{database}.{table}`, read by source connector `{node.config.name}`.",
        )
        for database, table in node.table_names()
    ]


def _table_run_metadata(run: TableRun) -> dict[str, Any]:
    return {
        "rows_read": run.rows,
        "records_produced": run.rows,
        "bytes_produced": run.bytes,
        "transactions": run.transactions,
        "offset_before": MetadataValue.json(run.offset_before or {}),
        "offset_after": MetadataValue.json(run.offset_after or {}),
        "held_back": run.held_back or "nothing",
        "duration_s": round(run.seconds, 3),
    }


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
                description=f"The topics `{config.topic_prefix}<table>` of every table of `{database}` that "
                f"`{config.name}` copies; the database was unreachable when definitions loaded, so the tables "
                "are not listed one by one (reload the code location to list them).",
                skippable=True,
            )
        ]
    declared = {spec.key for spec in specs}

    @multi_asset(name=f"{job_name(config.name)}_publish", specs=specs, can_subset=False)
    def publish(
        context: AssetExecutionContext, mariadb: MariaDBResource, kafka: KafkaResource
    ) -> Iterator[MaterializeResult]:
        runs = run_jdbc_source(config, mariadb.engine(config.connection), kafka.settings()).tables
        for run in runs:
            context.log.info(
                f"{run.table} -> {run.topic}: {run.rows} rows, offset {run.offset_before} -> {run.offset_after}"
                + (f"; held back: {run.held_back}" if run.held_back else "")
            )
            if topic_key(run.topic) in declared:
                yield MaterializeResult(asset_key=topic_key(run.topic), metadata=_table_run_metadata(run))
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
