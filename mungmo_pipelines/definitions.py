"""The Dagster definitions: connector bodies in ``connectors/`` become assets and jobs; plus the
neighbourhood verification expiry (asset, check, job, minute schedule)."""

from __future__ import annotations

import logging

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.assets.replication import (
    sink_connector_asset,
    source_connector_asset,
    source_table_specs,
)
from mungmo_pipelines.assets.verification import EXPIRY_JOB, EXPIRY_JOB_TAGS, verification_expiry_assets
from mungmo_pipelines.core.config import Connectors, load_connectors
from mungmo_pipelines.resources import VerificationExpiryResource, default_resources
from mungmo_pipelines.schedules import verification_expiry_schedule

REPLICATE_ALL_JOB = "replicate_all"

log = logging.getLogger(__name__)


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
    return Definitions(
        assets=[*table_specs.values(), *connector_assets, expiry],
        asset_checks=[expiry_check],
        jobs=jobs,
        schedules=[verification_expiry_schedule(EXPIRY_JOB)],
        resources=resources,
    )


defs = build_definitions(load_connectors())
