"""Sink connector assets: the target tables a sink writes (one multi-asset), observing its topics."""

from collections.abc import Callable, Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    TableSchema,
    multi_asset,
)

from mungmo_pipelines.assets.keys import job_name, table_key, topic_key
from mungmo_pipelines.assets.metadata import (
    asset_owners,
    copied_columns,
    table_metadata,
    table_name_metadata,
    target_freshness,
)
from mungmo_pipelines.core.config.loader import SourceConfig
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.mariadb.catalog import describe_tables
from mungmo_pipelines.core.sink.runtime import JdbcSink, SinkRun
from mungmo_pipelines.core.topology import SinkNode
from mungmo_pipelines.operations.gate import skipped_for_state
from mungmo_pipelines.resources import KafkaResource, MariaDBResource


def topic_fields(instance: DagsterInstance, topic: str) -> list[str]:
    """The record fields of ``topic`` as its latest materialization recorded them (none when unknown)."""
    event = instance.get_latest_materialization_event(topic_key(topic))
    materialization = event.asset_materialization if event else None
    schema = materialization.metadata.get("dagster/column_schema") if materialization else None
    return [column.name for column in schema.value.columns] if schema and isinstance(schema.value, TableSchema) else []


def sink_connector_asset(
    node: SinkNode, producer_of: Callable[[str], SourceConfig | None] = lambda _: None
) -> AssetsDefinition:
    """``producer_of`` names the source that fills a topic: its poll interval sets the target's freshness."""
    config, topics = node.config, node.topics
    database = config.database
    producers = {topic: producer_of(topic) for topic in topics}
    specs = [
        AssetSpec(
            table_key(database, config.table_for(topic)),
            deps=[topic_key(topic)],
            group_name=database,
            kinds={"mariadb", "table"},
            owners=asset_owners(),
            metadata=table_name_metadata(database, config.table_for(topic)),
            freshness_policy=target_freshness(producer.poll_interval_ms) if (producer := producers[topic]) else None,
            description=f"Table `{database}.{config.table_for(topic)}`, written by sink connector "
            f"`{config.name}` from topic `{topic}` (insert.mode {config.insert_mode}, pk.mode {config.pk_mode}).",
            skippable=True,
        )
        for topic in topics
    ]

    @multi_asset(name=f"{job_name(config.name)}_write", specs=specs, can_subset=False)
    def write(
        context: AssetExecutionContext, mariadb: MariaDBResource, kafka: KafkaResource
    ) -> Iterator[MaterializeResult]:
        if skipped_for_state(context, kafka, config.name):
            return
        engine = mariadb.engine(config.connection)
        run = JdbcSink(config, engine, kafka.settings()).run()
        written = [config.table_for(topic) for topic in topics if topic not in run.missing_topics]
        described = describe_tables(engine, written) if written else {}
        context.log.info(
            f"{config.name}: {run.records} records ({run.skipped} changing nothing) in {run.batches} batches, "
            f"lag {run.lag_before()} -> {run.lag_after()}, {run.seconds:.2f}s"
        )
        for topic in run.missing_topics:
            context.log.warning(f"{config.name}: topic {topic!r} does not exist yet; nothing read from it")
        for topic in topics:
            if topic in run.missing_topics:
                continue
            context.log_event(AssetObservation(asset_key=topic_key(topic), metadata=topic_metadata(config, run, topic)))
            table = config.table_for(topic)
            stats = run.stats(table)
            table_facts: dict[str, Any] = {}
            if table in described:
                schema, rows = described[table]
                names = [column.name for column in schema.columns]
                lineage = copied_columns(topic_key(topic), names, topic_fields(context.instance, topic))
                table_facts = table_metadata(schema, rows, lineage)
            yield MaterializeResult(
                asset_key=table_key(database, table),
                metadata={
                    **table_facts,
                    "rows_inserted": stats.inserted,
                    "rows_updated": stats.updated,
                    "rows_deleted": stats.deleted,
                    "truncates": stats.truncated,
                    "records_dead_lettered": stats.dead_lettered,
                    "lag_before": run.lag_before(topic),
                    "lag_after": run.lag_after(topic),
                    "end_offsets": partition_json(run.end_offsets(topic)),
                    "duration_s": round(run.seconds, 3),
                },
            )

    return write


def partition_json(by_partition: dict[int, int]) -> MetadataValue:
    """Offsets by partition as JSON metadata (JSON object keys are strings)."""
    return MetadataValue.json({str(partition): offset for partition, offset in by_partition.items()})


def topic_metadata(config: SinkConfig, run: SinkRun, topic: str) -> dict[str, Any]:
    """What the topic looks like from one sink connector: partitions, end offsets, that sink's lag."""
    return {
        "partitions": len(run.end_offsets(topic)),
        "end_offsets": partition_json(run.end_offsets(topic)),
        "consumer_group": config.consumer_group,
        "group_positions": partition_json(run.positions(topic)),
        "lag_before": run.lag_before(topic),
        "lag_after": run.lag_after(topic),
    }
