"""The verification expiry's resource: the members table it works on, and where its events go."""

from __future__ import annotations

from datetime import timedelta

from dagster import ConfigurableResource
from pydantic import Field

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.expiry.members import MembersTable
from mungmo_pipelines.core.mariadb.connection import JdbcConnection, parse_jdbc_url
from mungmo_pipelines.core.mariadb.lock import lock_name
from mungmo_pipelines.core.secret import Secret

_DEFAULT_TABLE = MembersTable()


class VerificationExpiryResource(ConfigurableResource):
    """The members table the neighbourhood-verification expiry works on, and where its events go.

    The database is reached like a connector's: ``jdbc_url`` (a Kafka Connect-style URL; the
    default is the seed source connector's ``mungMo``), pointed at ``MUNGMO_MARIADB_URL``'s server
    when that is set. Asset keys follow the deployment's values of ``jdbc_url``, ``table`` and
    ``topic``; change those per deployment, not per run.
    """

    jdbc_url: str = Field(
        default=settings.MEMBERS_JDBC_URL.default or "", description="jdbc:mysql://host:port/database of the members"
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
        default=settings.VERIFICATION_EXPIRY_TOPIC.default or "",
        description="Kafka topic of expiry events, keyed by member id",
    )
    chunk_size: int = Field(default=1000, ge=1, description="members per transaction and per Kafka transaction")
    lock_lease_seconds: int = Field(
        default=300, ge=1, description="a lock holder silent this long loses the lock (ShedLock's lockAtMostFor)"
    )

    def connection(self) -> JdbcConnection:
        return JdbcConnection.from_jdbc_url(self.jdbc_url, self.user, Secret(self.password))

    @property
    def database(self) -> str:
        return parse_jdbc_url(self.jdbc_url).database

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
