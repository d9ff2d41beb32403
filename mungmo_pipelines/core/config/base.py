"""What every connector config has: a name, where it came from, and (for JDBC connectors) a database."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from mungmo_pipelines.core.config.options import (
    JSON_CONVERTER,
    REQUIRED,
    ConverterClass,
    Int,
    Kind,
    Password,
    SchemasEnabled,
    Text,
    TimeZone,
    option,
)
from mungmo_pipelines.core.errors import ConnectorConfigError
from mungmo_pipelines.core.mariadb.connection import JdbcConnection, parse_jdbc_url
from mungmo_pipelines.core.secret import Secret


class JdbcUrl(Kind[str]):
    def parse(self, text: str) -> str:
        parse_jdbc_url(text)
        return text


@dataclass(frozen=True, kw_only=True)
class ConnectorConfig:
    """A validated connector body; subclasses declare their options with :func:`option`.

    ``NO_EFFECT`` lists options the connector class has that mean nothing here (a connection
    pool, another database's dialect): accepted and ignored, with why; a name ending in ``*``
    stands for every option starting with what precedes it.
    """

    NO_EFFECT: ClassVar[dict[str, str]] = {}

    name: str
    origin: str = ""

    @classmethod
    def has_no_effect(cls, key: str) -> bool:
        return any(key == name or (name.endswith("*") and key.startswith(name[:-1])) for name in cls.NO_EFFECT)

    def fail(self, field_name: str | None, problem: str) -> ConnectorConfigError:
        return ConnectorConfigError(self.name, field_name, problem, self.origin)

    def validate(self) -> None:
        """Checks across options, after each option parsed on its own; raise :meth:`fail`'s error."""


@dataclass(frozen=True, kw_only=True)
class JdbcConnectorConfig(ConnectorConfig):
    """The options Confluent's JDBC source and sink share."""

    connection_url: str = option("connection.url", JdbcUrl(), REQUIRED, "JDBC URL: jdbc:mysql:// or jdbc:mariadb://")
    connection_user: str | None = option("connection.user", Text(), None, "database user")
    connection_password: Secret | None = option(
        "connection.password", Password(), None, "database password; use ${env:NAME}"
    )
    db_timezone: str = option(
        "db.timezone",
        TimeZone(),
        "UTC",
        "zone of DATETIME values: sources read them as wall time in it, sinks write Timestamps as wall time in it and"
        " set the session's `time_zone` to it (non-UTC zones need MariaDB's time zone tables)",
    )
    tasks_max: int = option("tasks.max", Int(1), 1, "accepted; a run is one task")
    key_converter: str = option("key.converter", ConverterClass(), JSON_CONVERTER, "must be JsonConverter")
    value_converter: str = option("value.converter", ConverterClass(), JSON_CONVERTER, "must be JsonConverter")
    key_schemas_enable: bool = option("key.converter.schemas.enable", SchemasEnabled(), True, "must be true")
    value_schemas_enable: bool = option("value.converter.schemas.enable", SchemasEnabled(), True, "must be true")

    @functools.cached_property
    def connection(self) -> JdbcConnection:
        """The database, with user and password from the options or, failing those, the URL."""
        host, port, database, props = parse_jdbc_url(self.connection_url)
        user = self.connection_user or props.get("user")
        password = self.connection_password or (Secret(props["password"]) if props.get("password") else None)
        return JdbcConnection(host, port, database, user, password)

    @property
    def database(self) -> str:
        return self.connection.database
