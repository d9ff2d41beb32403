"""The MariaDB resource: engines for the databases connector bodies name."""

from __future__ import annotations

from typing import ClassVar

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from mungmo_pipelines.core.mariadb.connection import JdbcConnection, create_engine


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
    # Engines that outlive one evaluation, for schedules that tick in the same code server all day.
    _kept: ClassVar[dict[str, Engine]] = {}

    def engine(self, connection: JdbcConnection) -> Engine:
        return self._cached(connection, self._engines)

    def kept_engine(self, connection: JdbcConnection) -> Engine:
        """An engine kept for the life of the process: a schedule's tick then reads on a pooled
        connection (about a millisecond) instead of opening one (tens of milliseconds)."""
        return self._cached(connection, MariaDBResource._kept)

    def _cached(self, connection: JdbcConnection, engines: dict[str, Engine]) -> Engine:
        url = connection.on_server(self.server_url).sqlalchemy_url()
        cache_key = url.render_as_string(hide_password=False)
        if cache_key not in engines:
            engines[cache_key] = create_engine(url, pool_size=self.pool_size, pool_pre_ping=True, pool_recycle=3600)
        return engines[cache_key]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
