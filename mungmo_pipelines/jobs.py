"""Jobs, built from the topology: one per connector, one pipeline per source with sinks, all, the expiry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    AssetsDefinition,
    AssetSelection,
    JobDefinition,
    OpDefinition,
    define_asset_job,
    in_process_executor,
    job,
)

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.assets.verification import EXPIRY_JOB, EXPIRY_JOB_TAGS
from mungmo_pipelines.core.topology import Topology
from mungmo_pipelines.sensors.source_changes import CONNECTOR_TAG

if TYPE_CHECKING:  # what define_asset_job returns; Dagster exports no public name for it
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

REPLICATE_ALL_JOB = "replicate_all"


def connector_jobs(
    topology: Topology, source_assets: dict[str, AssetsDefinition], sink_assets: dict[str, AssetsDefinition]
) -> list[UnresolvedAssetJobDefinition]:
    """A job per connector, a pipeline job per source that has sinks, and ``replicate_all``.

    One step per job: the in-process executor saves the per-step subprocess (seconds of latency).
    Runs of a source's own job and of its pipeline carry its name in ``CONNECTOR_TAG``, which the
    project's dagster.yaml limits to one run at a time per value: however they are launched,
    queued runs of one source never overlap (they would fence each other's producer).
    """
    jobs = [
        define_asset_job(
            job_name(name),
            selection=AssetSelection.assets(asset),
            executor_def=in_process_executor,
            tags={CONNECTOR_TAG: name} if name in source_assets else None,
        )
        for name, asset in {**source_assets, **sink_assets}.items()
    ]
    for pipeline in topology.pipelines:
        sinks = [sink.name for sink in pipeline.sinks]
        jobs.append(
            define_asset_job(
                pipeline_job_name(pipeline.source),
                selection=AssetSelection.assets(
                    source_assets[pipeline.source.name], *(sink_assets[name] for name in sinks)
                ),
                executor_def=in_process_executor,
                tags={CONNECTOR_TAG: pipeline.source.name},
                description=f"Source `{pipeline.source.name}` then the sinks reading its topics "
                f"({', '.join(sinks)}), in one in-process run for latency.",
            )
        )
    jobs.append(
        define_asset_job(
            REPLICATE_ALL_JOB,
            selection=AssetSelection.assets(*source_assets.values(), *sink_assets.values()),
            description="Every connector, sources before the sinks that read their topics.",
        )
    )
    return jobs


def expiry_job(expire: OpDefinition) -> JobDefinition:
    """An op job, not an asset job: the assets it reports on are external, so only this job runs it."""

    # One step, run in the run worker itself: killing the worker frees the MariaDB lock it holds.
    @job(
        name=EXPIRY_JOB,
        executor_def=in_process_executor,
        tags=EXPIRY_JOB_TAGS,
        description="Cancel neighbourhood verifications past their time-to-live; publish an event for each.",
    )
    def neighbourhood_verification_expiry() -> None:
        expire()

    return neighbourhood_verification_expiry
