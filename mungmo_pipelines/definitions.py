"""The Dagster definitions: connector bodies in ``connectors/`` become assets and jobs."""

from __future__ import annotations

import logging

from dagster import AssetSelection, Definitions, define_asset_job

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.assets.replication import (
    sink_connector_asset,
    source_connector_asset,
    source_table_specs,
)
from mungmo_pipelines.core.config import Connectors, load_connectors
from mungmo_pipelines.resources import default_resources

REPLICATE_ALL_JOB = "replicate_all"

log = logging.getLogger(__name__)


def build_definitions(connectors: Connectors) -> Definitions:
    for warning in connectors.warnings:
        log.warning(warning)
    table_specs = {spec.key: spec for source in connectors.sources for spec in source_table_specs(source)}
    known_topics = {
        source.topic_for(table) for source in connectors.sources for table in (source.table_whitelist or ("",))
    }
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
    return Definitions(
        assets=[*table_specs.values(), *connector_assets],
        jobs=jobs,
        resources=default_resources(),
    )


defs = build_definitions(load_connectors())
