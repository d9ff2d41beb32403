"""The connector bodies the team POSTed to Kafka Connect (``../shared/seed.md``), verbatim."""

from __future__ import annotations

from typing import Any

SEED_SOURCE: dict[str, Any] = {
    "name": "test-connect-mungmo-test001",
    "config": {
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "connection.url": "jdbc:mysql://localhost:3306/mungMo",
        "connection.user": "mungmo",
        "connection.password": "1234",
        "mode": "incrementing",
        "incrementing.column.name": "seq",
        "table.whitelist": "test001",
        "topic.prefix": "my_topic_",
        "tasks.max": "1",
    },
}
SEED_SINK: dict[str, Any] = {
    "name": "my-sink-connect-member-test001",
    "config": {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "connection.url": "jdbc:mysql://localhost:3306/mungmoMember",
        "connection.user": "mungmo",
        "connection.password": "1234",
        "auto.create": "true",
        "auto.evolve": "true",
        "delete.enabled": "false",
        "tasks.max": "1",
        "topics": "my_topic_test001",
    },
}


def with_password(body: dict[str, Any], password: str) -> dict[str, Any]:
    """``body`` with its ``connection.password`` replaced (the seed's was a plain ``1234``)."""
    return {**body, "config": {**body["config"], "connection.password": password}}


# The seed bodies as committed in connectors/: the password read from the environment, set to ENV's here.
ENV = {"MUNGMO_DB_PASSWORD": "s3cr3t-pw"}
COMMITTED_SOURCE = with_password(SEED_SOURCE, "${env:MUNGMO_DB_PASSWORD}")
COMMITTED_SINK = with_password(SEED_SINK, "${env:MUNGMO_DB_PASSWORD}")
