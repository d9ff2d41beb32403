"""The Dagster definitions: connector bodies in ``connectors/`` become assets, jobs and sensors; plus
the neighbourhood verification expiry (asset, check, job, minute schedule)."""

from __future__ import annotations

import logging

from dagster import AssetsDefinition, AssetSelection, Definitions, define_asset_job, in_process_executor

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.assets.replication import (
    sink_connector_asset,
    sink_topics,
    source_connector_asset,
    source_table_specs,
    source_topics,
)
from mungmo_pipelines.assets.verification import EXPIRY_JOB, EXPIRY_JOB_TAGS, verification_expiry_assets
from mungmo_pipelines.core.config import Connectors, SinkConnectorConfig, SourceConnectorConfig, load_connectors
from mungmo_pipelines.resources import VerificationExpiryResource, default_resources
from mungmo_pipelines.schedules import verification_expiry_schedule
from mungmo_pipelines.sensors.sink import sink_lag_sensor
from mungmo_pipelines.sensors.source import CONNECTOR_TAG, source_change_sensor

REPLICATE_ALL_JOB = "replicate_all"

log = logging.getLogger(__name__)


def downstream_sinks(
    source: SourceConnectorConfig, sinks: tuple[SinkConnectorConfig, ...], known_topics: set[str]
) -> list[SinkConnectorConfig]:
    """The sinks that read a topic this source may produce."""
    return [sink for sink in sinks if any(source.may_produce(t) for t in sink_topics(sink, known_topics))]


def build_definitions(connectors: Connectors) -> Definitions:
    for warning in connectors.warnings:
        log.warning(warning)
    resources = default_resources()
    verification = resources["verification"]
    assert isinstance(verification, VerificationExpiryResource)
    expiry, expiry_check = verification_expiry_assets(verification)
    # A source connector reading the members table sees the expiry's asset, not a second spec of it.
    table_specs = {
        spec.key: spec
        for source in connectors.sources
        for spec in source_table_specs(source)
        if spec.key not in expiry.keys
    }
    known_topics = {topic for source in connectors.sources for topic in source_topics(source)}
    source_assets = {source.name: source_connector_asset(source) for source in connectors.sources}
    sink_assets = {sink.name: sink_connector_asset(sink, known_topics) for sink in connectors.sinks}
    connector_assets: dict[str, AssetsDefinition] = {**source_assets, **sink_assets}
    # One step per job: the in-process executor saves the per-step subprocess (seconds of latency).
    # Runs of a source's own job and of its pipeline carry its name in CONNECTOR_TAG, which the
    # project's dagster.yaml limits to one run at a time per value: however they are launched,
    # queued runs of one source never overlap (they would fence each other's producer).
    jobs = [
        define_asset_job(
            job_name(name),
            selection=AssetSelection.assets(asset),
            executor_def=in_process_executor,
            tags={CONNECTOR_TAG: name} if name in source_assets else None,
        )
        for name, asset in connector_assets.items()
    ]
    pipelines: dict[str, list[str]] = {}  # pipeline job -> the sinks it runs
    for source in connectors.sources:
        sinks = downstream_sinks(source, connectors.sinks, known_topics)
        if not sinks:
            continue
        name = pipeline_job_name(source)
        pipelines[name] = [sink.name for sink in sinks]
        jobs.append(
            define_asset_job(
                name,
                selection=AssetSelection.assets(source_assets[source.name], *(sink_assets[s.name] for s in sinks)),
                executor_def=in_process_executor,
                tags={CONNECTOR_TAG: source.name},
                description=f"Source `{source.name}` then the sinks reading its topics "
                f"({', '.join(s.name for s in sinks)}), in one in-process run for latency.",
            )
        )
    jobs.append(
        define_asset_job(
            REPLICATE_ALL_JOB,
            selection=AssetSelection.assets(*connector_assets.values()),
            description="Every connector, sources before the sinks that read their topics.",
        )
    )
    jobs.append(
        define_asset_job(
            EXPIRY_JOB,
            selection=AssetSelection.assets(expiry),
            # One step, run in the run worker itself: killing the worker frees the MariaDB lock it holds.
            executor_def=in_process_executor,
            tags=EXPIRY_JOB_TAGS,
            description="Cancel neighbourhood verifications past their time-to-live; publish an event for each.",
        )
    )
    sensors = [
        sink_lag_sensor(
            sink,
            job_name(sink.name),
            [REPLICATE_ALL_JOB, *(p for p, names in pipelines.items() if sink.name in names)],
        )
        for sink in connectors.sinks
    ]
    # A source's changes run its pipeline job (source, then the sinks reading its topics) when it
    # has one, else its own job; every job that runs the source counts as "in progress".
    for source in connectors.sources:
        pipeline = pipeline_job_name(source)
        own_jobs = [job_name(source.name), REPLICATE_ALL_JOB] + ([pipeline] if pipeline in pipelines else [])
        target = pipeline if pipeline in pipelines else job_name(source.name)
        sensors.append(source_change_sensor(source, target, own_jobs))
    return Definitions(
        assets=[*table_specs.values(), *connector_assets.values(), expiry],
        asset_checks=[expiry_check],
        jobs=jobs,
        sensors=sensors,
        schedules=[verification_expiry_schedule(EXPIRY_JOB)],
        resources=resources,
    )


defs = build_definitions(load_connectors())
