"""Asset keys and job names derived from connector bodies, so lineage reads db.table → topic → db.table."""

from __future__ import annotations

from dagster import AssetKey

from mungmo_pipelines.core.config.loader import SourceConfig, connector_identifier
from mungmo_pipelines.core.config.sink import SinkConfig


def table_key(database: str, table: str) -> AssetKey:
    return AssetKey([database, table])


def topic_key(topic: str) -> AssetKey:
    return AssetKey(["kafka", topic])


def unlisted_topics_key(config: SourceConfig) -> AssetKey:
    """The one asset that stands for a source's topics when its tables could not be listed."""
    return AssetKey(["kafka", f"{job_name(config.name)}__topics"])


def job_name(connector_name: str) -> str:
    """The connector's name with every character outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    return connector_identifier(connector_name)


def pipeline_job_name(source: SourceConfig) -> str:
    """The job that runs a source connector and then every sink reading its topics, in one run."""
    return f"{job_name(source.name)}_pipeline"


def source_pool(source: SourceConfig) -> str:
    """The Dagster pool of a source connector's step: limited to one at a time (``dagster.yaml``)."""
    return f"mungmo/source/{source.name}"


def lag_sensor_name(sink: SinkConfig) -> str:
    return f"{job_name(sink.name)}_lag_sensor"


def change_sensor_name(source: SourceConfig) -> str:
    return f"{job_name(source.name)}_changes"
