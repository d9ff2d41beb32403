"""The Dagster definitions: connector bodies in ``connectors/`` become assets, jobs and sensors; plus
the neighbourhood verification expiry (asset, check, job, minute schedule) and the connector
operations job.

A connector file that does not validate never takes the code location down: it is left out,
and shows as an asset spec and a sensor of its own that carry the error (the sensor fails every
tick with it). ``MUNGMO_STRICT_CONNECTORS=1`` (``make check``) fails the load instead."""

from __future__ import annotations

import logging

from dagster import Definitions

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.assets.sink import sink_connector_asset
from mungmo_pipelines.assets.source import source_connector_asset, source_tables_asset
from mungmo_pipelines.assets.verification import EXPIRY_JOB, verification_expiry_op, verification_expiry_specs
from mungmo_pipelines.checks.consistency import check_jobs, project_checks
from mungmo_pipelines.checks.repair import repair_jobs
from mungmo_pipelines.checks.verification import verification_expiry_check
from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.loader import Connectors, load_connectors
from mungmo_pipelines.core.consistency.pipelines import replicated_tables
from mungmo_pipelines.core.topology import Topology
from mungmo_pipelines.jobs import REPLICATE_ALL_JOB, connector_jobs, expiry_job
from mungmo_pipelines.operations.job import connector_operations_job
from mungmo_pipelines.operations.load_errors import load_error_definitions
from mungmo_pipelines.resources import VerificationExpiryResource, default_resources
from mungmo_pipelines.schedules import verification_expiry_schedule
from mungmo_pipelines.schedules.consistency import consistency_schedule
from mungmo_pipelines.sensors.sink_lag import sink_lag_sensor
from mungmo_pipelines.sensors.source_changes import source_change_sensor

__all__ = ["REPLICATE_ALL_JOB", "build_definitions", "defs"]

log = logging.getLogger(__name__)


def build_definitions(connectors: Connectors, topology: Topology | None = None) -> Definitions:
    topology = topology or Topology.build(connectors)
    for warning in topology.warnings:
        log.warning(warning)
    for error in connectors.errors:
        log.warning("left out: %s", error)
    error_specs, error_sensors = load_error_definitions(connectors.errors)
    resources = default_resources()
    verification = resources["verification"]
    assert isinstance(verification, VerificationExpiryResource)
    expiry_specs = verification_expiry_specs(verification)
    # A table two sources read is one asset; a source reading the members table sees the expiry's.
    claimed = {spec.key for spec in expiry_specs}
    table_assets = []
    for node in topology.sources:
        if (tables := source_tables_asset(node, exclude=claimed)) is not None:
            table_assets.append(tables)
            claimed |= set(tables.keys)
    source_assets = {node.config.name: source_connector_asset(node) for node in topology.sources}
    sink_assets = {node.config.name: sink_connector_asset(node, topology.producer_of) for node in topology.sinks}
    sensors = [
        sink_lag_sensor(
            node.config,
            job_name(node.config.name),
            [REPLICATE_ALL_JOB, *(pipeline_job_name(p.source) for p in topology.pipelines_with(node.config))],
        )
        for node in topology.sinks
    ]
    # A source's changes run its pipeline job (source, then the sinks reading its topics) when it
    # has one, else its own job; every job that runs the source counts as "in progress".
    for node in topology.sources:
        source = node.config
        has_pipeline = topology.pipeline_of(source) is not None
        own_jobs = [job_name(source.name), REPLICATE_ALL_JOB] + ([pipeline_job_name(source)] if has_pipeline else [])
        target = pipeline_job_name(source) if has_pipeline else job_name(source.name)
        sensors.append(source_change_sensor(source, target, own_jobs))
    # Consistency (정합): checks on every replicated target table, their jobs and schedules, a repair job per source.
    replicated = replicated_tables(topology)
    consistency = project_checks(replicated)
    consistency_jobs = check_jobs(consistency)
    return Definitions(
        assets=[*table_assets, *source_assets.values(), *sink_assets.values(), *expiry_specs, *error_specs],
        asset_checks=[verification_expiry_check(verification), *(c for checks in consistency.values() for c in checks)],
        jobs=[
            *connector_jobs(topology, source_assets, sink_assets),
            expiry_job(verification_expiry_op(verification)),
            connector_operations_job(),
            *consistency_jobs,
            *repair_jobs(topology, replicated),
        ],
        sensors=[*sensors, *error_sensors],
        schedules=[
            verification_expiry_schedule(EXPIRY_JOB),
            *(consistency_schedule(job.name) for job in consistency_jobs),
        ],
        resources=resources,
    )


defs = build_definitions(load_connectors(strict=settings.strict_connectors()))
