"""A test's private databases, topics and connector names, dropped afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka.errors import UnknownTopicOrPartitionError
from sqlalchemy import Engine, create_engine, make_url

from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.settings import mariadb_admin_url


@dataclass
class Sandbox:
    """One test's private databases, topics and connector names."""

    admin: Engine
    kafka: KafkaSettings
    suffix: str
    databases: list[str] = field(default_factory=list)
    topics: set[str] = field(default_factory=set)

    def database(self, label: str) -> str:
        name = f"mungmo_test_{self.suffix}_{label}"
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` DEFAULT CHARACTER SET utf8mb4")
        self.databases.append(name)
        return name

    def engine(self, database: str) -> Engine:
        return create_engine(make_url(mariadb_admin_url()).set(database=database))

    def execute(self, database: str, *statements: str) -> None:
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"USE `{database}`")
            for statement in statements:
                conn.exec_driver_sql(statement)

    def rows(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"USE `{database}`")
            return [tuple(r) for r in conn.exec_driver_sql(sql).all()]

    def topic(self, label: str) -> str:
        name = f"mungmo_test_{self.suffix}_{label}"
        self.topics.add(name)
        return name

    def jdbc_url(self, database: str) -> str:
        url = make_url(mariadb_admin_url())
        return f"jdbc:mysql://{url.host}:{url.port or 3306}/{database}"

    def source_body(self, database: str, **config: str) -> dict[str, Any]:
        """A JdbcSourceConnector body on ``database`` as the ``mungmo`` user, like the team's."""
        prefix = config.pop("topic.prefix", f"mungmo_test_{self.suffix}_")
        offsets = self.topic("offsets")
        return {
            "name": f"test-source-{self.suffix}",
            "config": {
                "connector.class": JDBC_SOURCE_CLASS,
                "connection.url": self.jdbc_url(database),
                "connection.user": "mungmo",
                "connection.password": "${env:MUNGMO_DB_PASSWORD}",
                "topic.prefix": prefix,
                "offsets.storage.topic": offsets,
                **config,
            },
        }

    def sink_body(self, database: str, **config: str) -> dict[str, Any]:
        return {
            "name": f"test-sink-{self.suffix}",
            "config": {
                "connector.class": JDBC_SINK_CLASS,
                "connection.url": self.jdbc_url(database),
                "connection.user": "mungmo",
                "connection.password": "${env:MUNGMO_DB_PASSWORD}",
                **config,
            },
        }

    def cleanup(self) -> None:
        with self.admin.begin() as conn:
            for database in self.databases:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        if self.topics:
            admin = self.kafka.admin()
            try:
                existing = set(admin.list_topics()) & self.topics
                if existing:
                    admin.delete_topics(sorted(existing))
            except UnknownTopicOrPartitionError:
                pass
            finally:
                admin.close()
