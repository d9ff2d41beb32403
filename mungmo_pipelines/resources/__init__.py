"""Dagster resources: how runs reach MariaDB and Kafka, configured from the environment."""

from __future__ import annotations

import os
from datetime import timedelta

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine, create_engine

from mungmo_pipelines.core import stack_env
from mungmo_pipelines.core.config import JdbcConnection, Secret, parse_jdbc_url
from mungmo_pipelines.core.expiry import MembersTable
from mungmo_pipelines.core.kafka_io import KafkaSettings
from mungmo_pipelines.core.named_lock import lock_name


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


MEMBERS_JDBC_URL_ENV = "MUNGMO_MEMBERS_JDBC_URL"
VERIFICATION_TOPIC_ENV = "MUNGMO_VERIFICATION_EXPIRY_TOPIC"
_DEFAULT_TABLE = MembersTable()


class VerificationExpiryResource(ConfigurableResource):
    """The members table the neighbourhood-verification expiry works on, and where its events go.

    The database is reached like a connector's: ``jdbc_url`` (a Kafka Connect-style URL; the
    default is the seed source connector's ``mungMo``), pointed at ``MUNGMO_MARIADB_URL``'s server
    when that is set. Asset keys follow the deployment's values of ``jdbc_url``, ``table`` and
    ``topic``; change those per deployment, not per run.
    """

    jdbc_url: str = Field(
        default="jdbc:mysql://localhost:3306/mungMo", description="jdbc:mysql://host:port/database of the members"
    )
    user: str = Field(default="mungmo", description="database account with SELECT, UPDATE, INSERT, DELETE, CREATE")
    password: str = Field(description="the account's password; give it as EnvVar('MUNGMO_DB_PASSWORD')")
    table: str = Field(default=_DEFAULT_TABLE.name, description="members table")
    id_column: str = Field(default=_DEFAULT_TABLE.id_column, description="member id (primary key)")
    verified_column: str = Field(default=_DEFAULT_TABLE.verified_column, description="1 while verified")
    verified_at_column: str = Field(
        default=_DEFAULT_TABLE.verified_at_column, description="DATETIME the verification was granted"
    )
    updated_at_column: str = Field(
        default=_DEFAULT_TABLE.updated_at_column, description="DATETIME bumped on every change"
    )
    db_time_zone: str = Field(
        default=_DEFAULT_TABLE.time_zone, description="IANA zone the DATETIME columns are written in"
    )
    ttl_days: int = Field(default=_DEFAULT_TABLE.ttl.days, ge=1, description="days a verification lasts")
    outbox_table: str = Field(
        default=_DEFAULT_TABLE.outbox_table, description="events not yet published (created by the job)"
    )
    topic: str = Field(
        default="neighbourhood-verification-expired", description="Kafka topic of expiry events, keyed by member id"
    )
    chunk_size: int = Field(default=1000, ge=1, description="members per transaction and per Kafka transaction")
    lock_lease_seconds: int = Field(
        default=300, ge=1, description="a lock holder silent this long loses the lock (ShedLock's lockAtMostFor)"
    )

    def connection(self) -> JdbcConnection:
        host, port, database, _ = parse_jdbc_url(self.jdbc_url)
        return JdbcConnection(host, port, database, self.user, Secret(self.password))

    @property
    def database(self) -> str:
        return parse_jdbc_url(self.jdbc_url)[2]

    def members_table(self) -> MembersTable:
        return MembersTable(
            name=self.table,
            id_column=self.id_column,
            verified_column=self.verified_column,
            verified_at_column=self.verified_at_column,
            updated_at_column=self.updated_at_column,
            ttl=timedelta(days=self.ttl_days),
            time_zone=self.db_time_zone,
            outbox_table=self.outbox_table,
        )

    def lock_name(self) -> str:
        """One lock per members table, whichever deployment or launch path runs the job."""
        return lock_name("mungmo-verification-expiry", f"{self.database}.{self.table}")


def _from_env(name: str, default: str | None) -> str | EnvVar | None:
    """``EnvVar`` when the variable is set (the UI shows its name, never its value), else the default."""
    return EnvVar(name) if os.environ.get(name) else default


def default_resources() -> dict[str, ConfigurableResource]:
    return {
        "mariadb": MariaDBResource(server_url=_from_env("MUNGMO_MARIADB_URL", stack_env.mariadb_server_url())),
        "kafka": KafkaResource(bootstrap_servers=_from_env("MUNGMO_KAFKA_BOOTSTRAP", stack_env.kafka_bootstrap())),
        # Plain values, not EnvVars: the asset keys are built from them when the definitions load.
        "verification": VerificationExpiryResource(
            password=EnvVar("MUNGMO_DB_PASSWORD"),
            **{
                field: os.environ[env]
                for field, env in (("jdbc_url", MEMBERS_JDBC_URL_ENV), ("topic", VERIFICATION_TOPIC_ENV))
                if os.environ.get(env)
            },
        ),
    }
