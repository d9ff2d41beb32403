"""The Dagster definitions: connector bodies in ``connectors/`` become assets and jobs."""

from __future__ import annotations

import logging

from dagster import AssetSelection, Definitions, define_asset_job

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.assets.replication import (
    sink_connector_asset,
    source_connector_asset,
    source_table_specs,
    source_topics,
)
from mungmo_pipelines.core.config import Connectors, load_connectors
from mungmo_pipelines.resources import default_resources
from mungmo_pipelines.sensors.source import source_change_sensor

REPLICATE_ALL_JOB = "replicate_all"

log = logging.getLogger(__name__)


def build_definitions(connectors: Connectors) -> Definitions:
    for warning in connectors.warnings:
        log.warning(warning)
    table_specs = {spec.key: spec for source in connectors.sources for spec in source_table_specs(source)}
    known_topics = {topic for source in connectors.sources for topic in source_topics(source)}
    connector_assets = [source_connector_asset(source) for source in connectors.sources] + [
        sink_connector_asset(sink, known_topics) for sink in connectors.sinks
    ]
    jobs = [
        define_asset_job(job_name(connector.name), selection=AssetSelection.assets(asset))
        for connector, asset in zip(connectors.all(), connector_assets, strict=True)
    ]
    jobs.append(
        define_asset_job(
            REPLICATE_ALL_JOB,
            selection=AssetSelection.assets(*connector_assets),
            description="Every connector, sources before the sinks that read their topics.",
        )
    )
    # Each source's sensor requests its connector's job (the target job is the sensor's one parameter).
    sensors = [source_change_sensor(source, job_name(source.name)) for source in connectors.sources]
    return Definitions(
        assets=[*table_specs.values(), *connector_assets],
        jobs=jobs,
        sensors=sensors,
        resources=default_resources(),
    )


defs = build_definitions(load_connectors())
