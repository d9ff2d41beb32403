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
    Long,
    Password,
    SchemasEnabled,
    Text,
    TimeZone,
    option,
)
from mungmo_pipelines.core.errors import ConnectorConfigError
from mungmo_pipelines.core.kafka.topics import topic_name_problem
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

    def check_topic(self, field_name: str, topic: str, made_from: str = "") -> None:
        """Fail naming ``field_name`` unless Kafka would take ``topic`` as a topic name."""
        problem = topic_name_problem(topic)
        if problem:
            raise self.fail(field_name, f"{made_from}{problem}")


@dataclass(frozen=True, kw_only=True)
class JdbcConnectorConfig(ConnectorConfig):
    """The options Confluent's JDBC source and sink share."""

    connection_url: str = option(
        "connection.url",
        JdbcUrl(),
        REQUIRED,
        "JDBC URL: jdbc:mysql:// or jdbc:mariadb://; properties `user`, `password` and Connector/J's TLS ones "
        "(docs/connections.md), any other refused by name",
    )
    connection_user: str | None = option("connection.user", Text(), None, "database user")
    connection_password: Secret | None = option(
        "connection.password", Password(), None, "database password; use ${env:NAME} or ${file:path:key}"
    )
    db_timezone: str = option(
        "db.timezone",
        TimeZone(),
        "UTC",
        "zone of DATETIME values: sources read them as wall time in it, sinks write Timestamps as wall time in it and"
        " set the session's `time_zone` to it (non-UTC zones need MariaDB's time zone tables)",
    )
    tasks_max: int = option("tasks.max", Int(1), 1, "accepted; a run is one task")
    errors_retry_timeout_ms: int = option(
        "errors.retry.timeout",
        Long(-1),
        0,
        "how long (ms) a run keeps retrying while the Kafka broker is unreachable before it fails saying so: "
        "0 not at all, -1 for ever (Kafka Connect's semantics)",
    )
    errors_retry_delay_max_ms: int = option(
        "errors.retry.delay.max.ms",
        Long(0),
        60000,
        "longest wait between those retries; they start at 300 ms and double (Kafka Connect's)",
    )
    key_converter: str = option("key.converter", ConverterClass(), JSON_CONVERTER, "must be JsonConverter")
    value_converter: str = option("value.converter", ConverterClass(), JSON_CONVERTER, "must be JsonConverter")
    key_schemas_enable: bool = option("key.converter.schemas.enable", SchemasEnabled(), True, "must be true")
    value_schemas_enable: bool = option("value.converter.schemas.enable", SchemasEnabled(), True, "must be true")

    @functools.cached_property
    def connection(self) -> JdbcConnection:
        """The database, with user and password from the options or, failing those, the URL."""
        return JdbcConnection.from_jdbc_url(self.connection_url, self.connection_user, self.connection_password)

    @property
    def database(self) -> str:
        return self.connection.database
