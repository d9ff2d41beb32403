"""Sink connector assets: the target tables a sink writes (one multi-asset), observing its topics."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from mungmo_pipelines.assets.keys import job_name, table_key, topic_key
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.sink.runtime import JdbcSink, SinkRun
from mungmo_pipelines.core.topology import SinkNode
from mungmo_pipelines.operations.gate import skipped_for_state
from mungmo_pipelines.resources import KafkaResource, MariaDBResource


def sink_connector_asset(node: SinkNode) -> AssetsDefinition:
    config, topics = node.config, node.topics
    database = config.database
    specs = [
        AssetSpec(
            table_key(database, config.table_for(topic)),
            deps=[topic_key(topic)],
            group_name=database,
            kinds={"mariadb"},
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
        run = JdbcSink(config, mariadb.engine(config.connection), kafka.settings()).run()
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
            stats = run.stats(config.table_for(topic))
            yield MaterializeResult(
                asset_key=table_key(database, config.table_for(topic)),
                metadata={
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
