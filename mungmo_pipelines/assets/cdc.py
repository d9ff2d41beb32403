"""A Debezium MariaDB (CDC) source's assets: one topic per captured table, ``<db>/<table>`` ->
``kafka/<topic.prefix>.<db>.<table>``, the same lineage a JDBC source gives, in one multi-asset."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, AssetSpec, MaterializeResult, MetadataValue, multi_asset
from sqlalchemy import Engine

from mungmo_pipelines.assets.keys import job_name, source_pool, table_key, topic_key, unlisted_topics_key
from mungmo_pipelines.assets.metadata import asset_owners, copied_columns
from mungmo_pipelines.assets.metadata import column_schema as dagster_column_schema
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.mariadb.catalog import TableNotFound, read_table_schema
from mungmo_pipelines.core.mariadb.columns import TableSchema
from mungmo_pipelines.core.mariadb.session import dbapi_cursor
from mungmo_pipelines.core.source.cdc.reader import CdcStats, run_cdc_source
from mungmo_pipelines.core.topology import SourceNode
from mungmo_pipelines.operations.gate import skipped_for_state
from mungmo_pipelines.resources import KafkaResource, MariaDBResource


def snapshot_progress(stats: CdcStats) -> str:
    """``"120,000 of ~1,000,000 rows (12%)"``: rows read against ``TABLE_ROWS`` (an estimate)."""
    snapshot = stats.snapshot
    if snapshot is None:
        return "no snapshot this run"
    done, estimate = snapshot.rows, snapshot.estimate
    share = f" ({done / estimate:.0%})" if estimate else ""
    state = "done" if snapshot.done else "running"
    return f"{done:,} of ~{estimate:,} rows{share}, {state}"


def run_metadata(stats: CdcStats) -> dict[str, Any]:
    """What every materialization of a run shows: the run as a whole."""
    metadata: dict[str, Any] = {
        "events_by_op": MetadataValue.json(dict(stats.events)),
        "transactions": stats.transactions,
        "position_before": MetadataValue.json(stats.position_before or {}),
        "position_after": MetadataValue.json(stats.position_after or stats.position_before or {}),
        "started_with": stats.started_with,
        "stopped_because": stats.stopped_because or "the snapshot ended the run",
        "snapshot_progress": snapshot_progress(stats),
    }
    if stats.bytes_behind is not None:
        metadata["lag_bytes_behind_head"] = stats.bytes_behind
    if stats.seconds_behind is not None:
        metadata["lag_seconds_behind_newest_event"] = round(stats.seconds_behind, 3)
    if stats.incremental.chunks:
        metadata["incremental_snapshot"] = MetadataValue.json(
            {"chunks": stats.incremental.chunks, "rows": stats.incremental.rows, "done": stats.incremental.tables_done}
        )
    return metadata


def captured_schemas(
    config: DebeziumSourceConfig, engine: Engine, tables: list[tuple[str, str]]
) -> dict[tuple[str, str], TableSchema]:
    """Each captured table's columns as its records carry them (``column.include.list``/``exclude.list``
    applied), for the topics' column schema and lineage; a table dropped since is left out."""
    kept = config.column_filter()
    schemas = {}
    with engine.connect() as conn, dbapi_cursor(conn) as cursor:
        for database, table in tables:
            try:
                schema = read_table_schema(cursor, database, table)
            except TableNotFound:
                continue
            if kept is not None:
                schema = replace(schema, columns=tuple(c for c in schema.columns if kept(database, table, c.name)))
            schemas[(database, table)] = schema
    return schemas


def cdc_source_asset(node: SourceNode, config: DebeziumSourceConfig) -> AssetsDefinition:
    tables = node.table_names()
    specs = [
        AssetSpec(
            topic_key(config.topic_for(f"{database}.{table}")),
            deps=[table_key(database, table)],
            group_name="kafka",
            kinds={"kafka"},
            owners=asset_owners(),
            description=f"Topic `{config.topic_for(f'{database}.{table}')}`: Debezium change events (c, u, d, r) "
            f"of `{database}.{table}`, produced by `{config.name}` from the binary log.",
            skippable=True,
        )
        for database, table in tables
    ]
    if node.tables is None:
        specs = [
            AssetSpec(
                unlisted_topics_key(config),
                group_name="kafka",
                kinds={"kafka"},
                description=f"The topics `{config.topic_prefix}.<db>.<table>` of every table `{config.name}` "
                "captures; the server was unreachable when definitions loaded (reload the code location to list them).",
                skippable=True,
            )
        ]
    topics = {config.topic_for(f"{database}.{table}"): (database, table) for database, table in tables}

    # As the JDBC source's: one run at a time on every launch path (two would fence each other's
    # producer), and a paused or stopped connector's runs move nothing.
    @multi_asset(name=f"{job_name(config.name)}_publish", specs=specs, can_subset=False, pool=source_pool(config))
    def publish(
        context: AssetExecutionContext, mariadb: MariaDBResource, kafka: KafkaResource
    ) -> Iterator[MaterializeResult]:
        if skipped_for_state(context, kafka, config.name):
            return

        def progress(stats: CdcStats) -> None:
            context.log.info(f"{config.name}: snapshot {snapshot_progress(stats)}")

        connection = config.connection.on_server(mariadb.server_url)
        stats = run_cdc_source(config, connection, kafka.settings(), progress=progress).stats
        context.log.info(
            f"{config.name}: {stats.started_with}; {dict(stats.events)} in {stats.transactions} transactions; "
            f"{stats.stopped_because}; {stats.position_before} -> {stats.position_after}"
        )
        shared = run_metadata(stats)
        snapshot = {t.table: t for t in (stats.snapshot.tables if stats.snapshot else [])}
        for topic in sorted(set(stats.tables) - set(topics)):
            if node.tables is not None and topic != config.heartbeat_topic:
                context.log.warning(f"{topic} is newer than the loaded definitions; reload the code location")
        # Every declared topic is materialized, with no events too (as the JDBC source does), so the
        # sinks downstream in a pipeline run always run: a sink added later or behind catches up.
        # The records' after images carry the captured columns: the topic's columns, each from the table's.
        schemas = captured_schemas(config, mariadb.engine(connection), list(topics.values())) if topics else {}
        for topic, source_table in sorted(topics.items()):
            counts = stats.tables.get(topic, Counter())
            metadata = {"events": MetadataValue.json(dict(counts)), "records": sum(counts.values()), **shared}
            table = next((t for name, t in snapshot.items() if config.topic_for(name) == topic), None)
            if table is not None:
                metadata["snapshot_rows"] = f"{table.rows:,} of ~{table.estimate:,}"
            schema = schemas.get(source_table)
            if schema is not None:
                names = [column.name for column in schema.columns]
                metadata["dagster/column_schema"] = dagster_column_schema(schema)
                metadata["dagster/column_lineage"] = copied_columns(table_key(*source_table), names, names)
            yield MaterializeResult(asset_key=topic_key(topic), metadata=metadata)
        if node.tables is None:
            yield MaterializeResult(
                asset_key=unlisted_topics_key(config),
                metadata={"tables": MetadataValue.json({t: dict(c) for t, c in stats.tables.items()}), **shared},
            )

    return publish
