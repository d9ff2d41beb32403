"""Connector bodies (``{"name": ..., "config": {...}}``, as POSTed to Kafka Connect) parsed and validated.

Option names, defaults and value formats follow the connector class the body names. Everything
is checked when the file loads, before any run, and every error names the connector, the field
and what was expected. Secrets are interpolated from ``${env:NAME}`` and never printed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.base import ConnectorConfig
from mungmo_pipelines.core.config.debezium_source import (
    MARIADB_CONNECTOR_CLASS,
    MYSQL_CONNECTOR_CLASS,
    DebeziumSourceConfig,
    without_effect,
)
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS, JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS, JdbcSourceConfig
from mungmo_pipelines.core.config.options import REQUIRED, options_of
from mungmo_pipelines.core.errors import ConnectorConfigError

_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys of a body that are not options of its class.
_BODY_KEYS = ("name", "connector.class")

# connector.class (full and short names, as Kafka Connect accepts both) -> the config it parses into.
CONNECTOR_CLASSES: dict[str, type[ConnectorConfig]] = {
    JDBC_SOURCE_CLASS: JdbcSourceConfig,
    "JdbcSourceConnector": JdbcSourceConfig,
    JDBC_SINK_CLASS: JdbcSinkConfig,
    "JdbcSinkConnector": JdbcSinkConfig,
    MARIADB_CONNECTOR_CLASS: DebeziumSourceConfig,
    MYSQL_CONNECTOR_CLASS: DebeziumSourceConfig,
}
# A source connector's config: the JDBC source's or Debezium's.
SourceConfig = JdbcSourceConfig | DebeziumSourceConfig


def _interpolate(value: str, name: str, key: str, origin: str, environ: Mapping[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        variable = match[1]
        if variable not in environ:
            raise ConnectorConfigError(name, key, f"environment variable {variable} is not set", origin)
        return environ[variable]

    return _ENV_REFERENCE.sub(lookup, value)


def _as_text(value: Any, name: str, key: str, origin: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise ConnectorConfigError(name, key, f"expected a string, got {type(value).__name__}", origin)


def parse_options(
    config_class: type[ConnectorConfig],
    raw: Mapping[str, Any],
    name: str,
    origin: str,
    environ: Mapping[str, str],
) -> ConnectorConfig:
    """Each option of ``raw`` parsed by its declaration; defaults for the rest; then cross-option checks."""
    options = options_of(config_class)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _BODY_KEYS:
            continue
        declared = options.get(key)
        if declared is None:
            if config_class is DebeziumSourceConfig and without_effect(key) is not None:
                continue  # accepted, no effect here: listed in docs/cdc.md
            raise ConnectorConfigError(name, key, "not an option this connector supports", origin)
        text = _interpolate(_as_text(value, name, key, origin), name, key, origin, environ)
        try:
            values[declared.attribute] = declared.kind.parse(text)
        except ValueError as err:
            raise ConnectorConfigError(name, key, f"{err} ({declared.doc})", origin) from None
    for declared in options.values():
        if declared.attribute not in values:
            if declared.default is REQUIRED:
                raise ConnectorConfigError(name, declared.name, f"required option is missing ({declared.doc})", origin)
            values[declared.attribute] = declared.resolve_default()
    config = config_class(name=name, origin=origin, **values)
    try:
        config.validate()
    except ValueError as err:
        if isinstance(err, ConnectorConfigError):
            raise
        raise config.fail(None, str(err)) from None
    return config


def parse_connector(body: Any, origin: str = "", environ: Mapping[str, str] | None = None) -> ConnectorConfig:
    """Validate one connector body, as POSTed to ``/connectors`` (or a bare config map)."""
    environ = os.environ if environ is None else environ
    unnamed = Path(origin).stem if origin else "<unnamed>"
    if not isinstance(body, dict):
        raise ConnectorConfigError(unnamed, None, 'expected a JSON object {"name": ..., "config": {...}}', origin)
    raw = body.get("config", body)
    if not isinstance(raw, dict):
        raise ConnectorConfigError(unnamed, "config", "expected a JSON object of options", origin)
    name = body.get("name") or raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConnectorConfigError(unnamed, "name", "expected a non-empty connector name", origin)
    if raw.get("name", name) != name:
        raise ConnectorConfigError(name, "config.name", f"expected the same name as the body ({name!r})", origin)
    connector_class = raw.get("connector.class")
    config_class = CONNECTOR_CLASSES.get(connector_class) if isinstance(connector_class, str) else None
    if config_class is None:
        raise ConnectorConfigError(
            name,
            "connector.class",
            f"expected one of {', '.join(sorted(c for c in CONNECTOR_CLASSES if '.' in c))}, got {connector_class!r}",
            origin,
        )
    return parse_options(config_class, raw, name, origin, environ)


@dataclass(frozen=True)
class Connectors:
    """Every connector of a directory, plus findings that are worth a look but not fatal."""

    sources: tuple[SourceConfig, ...]
    sinks: tuple[JdbcSinkConfig, ...]
    warnings: tuple[str, ...] = ()

    def all(self) -> tuple[ConnectorConfig, ...]:
        return (*self.sources, *self.sinks)


def load_connectors(directory: Path | None = None, environ: Mapping[str, str] | None = None) -> Connectors:
    """Every ``*.json`` body of ``directory``, validated; duplicate names are an error."""
    directory = settings.connectors_dir() if directory is None else directory
    if not directory.is_dir():
        raise FileNotFoundError(f"connector directory {directory} does not exist (set {settings.CONNECTORS_DIR.name})")
    parsed: list[ConnectorConfig] = []
    for path in sorted(directory.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConnectorConfigError(path.stem, None, f"not valid JSON: {err}", str(path)) from None
        parsed.append(parse_connector(body, str(path), environ))
    seen: dict[str, str] = {}
    for connector in parsed:
        if connector.name in seen:
            raise ConnectorConfigError(
                connector.name, "name", f"already used by {seen[connector.name]}", connector.origin
            )
        seen[connector.name] = connector.origin
    sources = tuple(c for c in parsed if isinstance(c, JdbcSourceConfig | DebeziumSourceConfig))
    sinks = tuple(c for c in parsed if isinstance(c, JdbcSinkConfig))
    return Connectors(sources, sinks, tuple(_orphan_topics(sources, sinks)))


def _orphan_topics(sources: tuple[SourceConfig, ...], sinks: tuple[JdbcSinkConfig, ...]) -> list[str]:
    """Sink topics that no source here produces: allowed (another producer may), but reported."""
    return [
        f"connector {sink.name!r}: topic {topic!r} is produced by no source connector in this directory"
        for sink in sinks
        for topic in sink.topics
        if not any(source.may_produce(topic) for source in sources)
    ]
