"""Dagster resources: how runs reach MariaDB and Kafka, configured from the environment."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine, create_engine

from mungmo_pipelines.core import stack_env
from mungmo_pipelines.core.config import JdbcConnection
from mungmo_pipelines.core.kafka_io import KafkaSettings


class MariaDBResource(ConfigurableResource):
    """Engines for the databases that connector bodies name.

    Connector JSON carries its own ``connection.url``; ``server_url`` (``MUNGMO_MARIADB_URL``)
    points every connector at another server while keeping each one's database, which is how
    an existing MariaDB is used without editing the connector files.
    """

    server_url: str | None = Field(
        default=None, description="mysql+pymysql://user:password@host:port, overriding the connectors' server"
    )
    pool_size: int = Field(default=5, description="connections kept per database")

    _engines: dict[str, Engine] = PrivateAttr(default_factory=dict)

    def engine(self, connection: JdbcConnection) -> Engine:
        url = connection.on_server(self.server_url).sqlalchemy_url()
        cache_key = url.render_as_string(hide_password=False)
        if cache_key not in self._engines:
            self._engines[cache_key] = create_engine(
                url, pool_size=self.pool_size, pool_pre_ping=True, pool_recycle=3600
            )
        return self._engines[cache_key]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


class KafkaResource(ConfigurableResource):
    """The Kafka cluster the connectors produce to and consume from."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port...]")
    client_id: str = Field(default="mungmo-pipelines", description="client.id shown in broker logs and quotas")

    def settings(self) -> KafkaSettings:
        return KafkaSettings(self.bootstrap_servers, self.client_id)


def _from_env(name: str, default: str | None) -> str | EnvVar | None:
    """``EnvVar`` when the variable is set (the UI shows its name, never its value), else the default."""
    return EnvVar(name) if os.environ.get(name) else default


def default_resources() -> dict[str, ConfigurableResource]:
    return {
        "mariadb": MariaDBResource(server_url=_from_env("MUNGMO_MARIADB_URL", stack_env.mariadb_server_url())),
        "kafka": KafkaResource(bootstrap_servers=_from_env("MUNGMO_KAFKA_BOOTSTRAP", stack_env.kafka_bootstrap())),
    }
