"""Dagster resources: how runs reach MariaDB and Kafka, configured from the environment.

Values that come from environment variables are given as ``EnvVar``s, so the UI's run config
shows the variable's name, never its value.
"""

from __future__ import annotations

from dagster import ConfigurableResource, EnvVar

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.settings import Setting
from mungmo_pipelines.resources.kafka import KafkaResource
from mungmo_pipelines.resources.mariadb import MariaDBResource
from mungmo_pipelines.resources.verification import VerificationExpiryResource

__all__ = ["KafkaResource", "MariaDBResource", "VerificationExpiryResource", "default_resources"]


def _from_env(setting: Setting, default: str | None) -> str | None:
    """``EnvVar`` when the variable is set (the UI shows its name, never its value), else the default."""
    return EnvVar(setting.name) if setting.is_set() else default  # EnvVar is a str for Dagster's config


def default_resources() -> dict[str, ConfigurableResource]:
    return {
        "mariadb": MariaDBResource(server_url=_from_env(settings.MARIADB_URL, settings.mariadb_server_url())),
        "kafka": KafkaResource(
            bootstrap_servers=_from_env(settings.KAFKA_BOOTSTRAP, None) or settings.kafka_bootstrap()
        ),
        # Plain values, not EnvVars: the asset keys are built from them when the definitions load.
        "verification": VerificationExpiryResource(
            password=EnvVar(settings.DB_PASSWORD.name),
            jdbc_url=settings.MEMBERS_JDBC_URL.get() or "",
            topic=settings.VERIFICATION_EXPIRY_TOPIC.get() or "",
        ),
    }
