"""Connector configuration: each option defined once (``options.py``), one module per connector class,
and the loader that turns connector bodies into validated configs (``loader.py``)."""

from mungmo_pipelines.core.config.base import ConnectorConfig, JdbcConnectorConfig
from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS, DebeziumSinkConfig
from mungmo_pipelines.core.config.jdbc_sink import (
    JDBC_SINK_CLASS,
    ErrorsTolerance,
    InsertMode,
    JdbcSinkConfig,
    PkMode,
)
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS, JdbcSourceConfig, SourceMode
from mungmo_pipelines.core.config.loader import CONNECTOR_CLASSES, Connectors, load_connectors, parse_connector
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import ConnectorConfigError

__all__ = [
    "CONNECTOR_CLASSES",
    "DEBEZIUM_SINK_CLASS",
    "JDBC_SINK_CLASS",
    "JDBC_SOURCE_CLASS",
    "ConnectorConfig",
    "ConnectorConfigError",
    "Connectors",
    "DebeziumSinkConfig",
    "ErrorsTolerance",
    "InsertMode",
    "JdbcConnectorConfig",
    "JdbcSinkConfig",
    "JdbcSourceConfig",
    "PkMode",
    "SinkConfig",
    "SourceMode",
    "load_connectors",
    "parse_connector",
]
