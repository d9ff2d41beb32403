"""Replication assets: a source connector materializes topics, a sink connector target tables."""

import functools
import logging
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from sqlalchemy import create_engine

from mungmo_pipelines.assets.keys import job_name, table_key, topic_key
from mungmo_pipelines.core import stack_env
from mungmo_pipelines.core.config import SinkConnectorConfig, SourceConnectorConfig
from mungmo_pipelines.core.sink import JdbcSink, SinkRun
from mungmo_pipelines.core.source import JdbcSource, TableRun, list_tables, resolve_tables
from mungmo_pipelines.resources import KafkaResource, MariaDBResource

log = logging.getLogger(__name__)


@functools.cache
def source_tables(config: SourceConnectorConfig) -> tuple[str, ...] | None:
    """The tables a source reads, for one asset each: its whitelist, or discovered when definitions load.

    A query reads from no single table (``()``). Discovery needs the database; when it is
    unreachable the connector gets one placeholder asset (``None`` here) and still copies every
    table at run time; reloading the code location later lists the tables.
    """
    if config.query:
        return ()
    if config.table_whitelist:
        return tuple(t.rpartition(".")[2].strip("`") for t in config.table_whitelist)
    url = config.connection.on_server(stack_env.mariadb_server_url()).sqlalchemy_url()
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            return tuple(resolve_tables(config, list_tables(conn)))
    except Exception as err:  # any failure to reach the database must not break loading definitions
        log.warning(
            "connector %r: could not list the tables of %s (%s); one placeholder asset stands for all of them",
            config.name,
            config.connection.describe(),
            type(err).__name__,
        )
        return None
    finally:
        engine.dispose()


def unlisted_topics_key(config: SourceConnectorConfig) -> AssetKey:
    return AssetKey(["kafka", f"{job_name(config.name)}__topics"])


def source_table_specs(config: SourceConnectorConfig) -> list[AssetSpec]:
    database = config.connection.database
    return [
        AssetSpec(
            table_key(database, table),
            group_name=database,
            kinds={"mariadb"},
            description=f"Table `{database}.{table}`, read by source connector `{config.name}`.",
        )
        for table in source_tables(config) or ()
    ]


def source_topics(config: SourceConnectorConfig) -> list[str]:
    """The topics a source's assets stand for (none listed when its tables are unknown)."""
    tables = source_tables(config)
    return [config.topic_for(table) for table in (tables or ("",))] if tables is not None else []


def _table_run_metadata(run: TableRun) -> dict[str, object]:
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


def source_connector_asset(config: SourceConnectorConfig) -> AssetsDefinition:
    database = config.connection.database
    tables = source_tables(config)
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
        source = JdbcSource(config, mariadb.engine(config.connection), kafka.settings())
        runs = source.run().tables
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
                    "tables": MetadataValue.json({r.table: _table_run_metadata(r)["rows_read"] for r in runs}),
                },
            )

    return publish


def sink_topics(config: SinkConnectorConfig, known_topics: set[str]) -> list[str]:
    """Explicit topics, or the known topics that ``topics.regex`` matches."""
    return list(config.topics) if config.topics else sorted(t for t in known_topics if config.reads_topic(t))


def sink_connector_asset(config: SinkConnectorConfig, known_topics: set[str]) -> AssetsDefinition:
    database = config.connection.database
    topics = sink_topics(config, known_topics)
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
        run = JdbcSink(config, mariadb.engine(config.connection), kafka.settings()).run()
        context.log.info(
            f"{config.name}: {run.records} records in {run.batches} batches, "
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
                    "records_dead_lettered": stats.dead_lettered,
                    "lag_before": run.lag_before(topic),
                    "lag_after": run.lag_after(topic),
                    "end_offsets": MetadataValue.json(run.end_offsets(topic)),
                    "duration_s": round(run.seconds, 3),
                },
            )

    return write


def topic_metadata(config: SinkConnectorConfig, run: SinkRun, topic: str) -> dict[str, Any]:
    """What the topic looks like from one sink connector: partitions, end offsets, that sink's lag."""
    return {
        "partitions": len(run.end_offsets(topic)),
        "end_offsets": MetadataValue.json(run.end_offsets(topic)),
        "consumer_group": config.consumer_group,
        "group_positions": MetadataValue.json(run.positions(topic)),
        "lag_before": run.lag_before(topic),
        "lag_after": run.lag_after(topic),
    }
