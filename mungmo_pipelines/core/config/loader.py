"""Connector bodies (``{"name": ..., "config": {...}}``, as POSTed to Kafka Connect) parsed and validated.

Option names, defaults and value formats follow the connector class the body names. Everything
is checked when the file loads, before any run, and every error names the connector, the field
and what was expected. Secrets come from ``${env:NAME}`` or ``${file:path:key}`` references
(``providers.py``: a properties file, as Kafka Connect's FileConfigProvider reads it) and are never
printed.

A directory loads connector by connector: a bad file is reported (:attr:`Connectors.errors`)
and the others load, as Kafka Connect refuses one bad POST and keeps the other connectors.
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
from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS, DebeziumSinkConfig
from mungmo_pipelines.core.config.debezium_source import (
    MARIADB_CONNECTOR_CLASS,
    MYSQL_CONNECTOR_CLASS,
    DebeziumSourceConfig,
)
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS, JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS, JdbcSourceConfig
from mungmo_pipelines.core.config.options import REQUIRED, option_groups_of, options_of
from mungmo_pipelines.core.config.providers import resolve_references
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import ConfigProviderError, ConnectorConfigError, ConnectorLoadErrors

# Keys of a body that are not options of its class.
BODY_KEYS = ("name", "connector.class")

# connector.class (full and short names, as Kafka Connect accepts both) -> the config it parses into.
CONNECTOR_CLASSES: dict[str, type[ConnectorConfig]] = {
    JDBC_SOURCE_CLASS: JdbcSourceConfig,
    "JdbcSourceConnector": JdbcSourceConfig,
    JDBC_SINK_CLASS: JdbcSinkConfig,
    "JdbcSinkConnector": JdbcSinkConfig,
    DEBEZIUM_SINK_CLASS: DebeziumSinkConfig,
    MARIADB_CONNECTOR_CLASS: DebeziumSourceConfig,
    MYSQL_CONNECTOR_CLASS: DebeziumSourceConfig,
}
# A source connector's config: the JDBC source's or Debezium's.
SourceConfig = JdbcSourceConfig | DebeziumSourceConfig


def connector_identifier(name: str) -> str:
    """The connector's name with every character outside ``[A-Za-z0-9_]`` as ``_``: its job, sensor and
    asset names, so two connectors whose names differ only there (``dup-name``, ``dup_name``) collide."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def option_text(value: Any, name: str, key: str, origin: str, environ: Mapping[str, str]) -> str:
    """An option's JSON value as the text its kind parses, references resolved."""
    try:
        return resolve_references(_as_text(value, name, key, origin), environ)
    except ConfigProviderError as err:
        raise ConnectorConfigError(name, key, str(err), origin) from None


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
    by_alias = {alias: declared for declared in options.values() for alias in declared.aliases}
    groups = option_groups_of(config_class)
    values: dict[str, Any] = {}
    grouped: dict[str, list[tuple[str, str]]] = {group.attribute: [] for group in groups}
    given: dict[str, str] = {}  # attribute -> the option name the body used for it
    for key, value in raw.items():
        if key in BODY_KEYS:
            continue
        text = option_text(value, name, key, origin, environ)
        declared = options.get(key) or by_alias.get(key)
        if declared is None:
            group = next((g for g in groups if key.startswith(g.prefix)), None)
            if group is not None:
                grouped[group.attribute].append((key, text))
            elif not config_class.has_no_effect(key):
                raise ConnectorConfigError(name, key, "not an option this connector supports", origin)
            continue
        if declared.attribute in given:
            raise ConnectorConfigError(
                name, key, f"the same option as {given[declared.attribute]!r} under another name: give one", origin
            )
        given[declared.attribute] = key
        try:
            values[declared.attribute] = declared.kind.parse(text)
        except ValueError as err:
            raise ConnectorConfigError(name, key, f"{err} ({declared.doc})", origin) from None
    values.update({attribute: tuple(pairs) for attribute, pairs in grouped.items()})
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
    """Every connector of a directory that validated, the ones that did not, and findings worth a look."""

    sources: tuple[SourceConfig, ...]
    sinks: tuple[SinkConfig, ...]
    warnings: tuple[str, ...] = ()
    errors: tuple[ConnectorConfigError, ...] = ()

    def all(self) -> tuple[ConnectorConfig, ...]:
        return (*self.sources, *self.sinks)

    def raise_errors(self) -> None:
        """Strict mode: one error naming every connector that did not load."""
        if self.errors:
            raise ConnectorLoadErrors(self.errors)


def read_connector_file(path: Path, environ: Mapping[str, str] | None = None) -> ConnectorConfig:
    """One connector file, validated; any problem (even invalid JSON) as a :class:`ConnectorConfigError`."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConnectorConfigError(path.stem, None, f"not valid JSON: {err}", str(path)) from None
    return parse_connector(body, str(path), environ)


def load_connectors(
    directory: Path | None = None, environ: Mapping[str, str] | None = None, strict: bool = False
) -> Connectors:
    """Every ``*.json`` body of ``directory``, each validated on its own.

    A file that fails goes to :attr:`Connectors.errors` and the rest load. Two files with one
    connector name, or with names that make one identifier (``dup-name``, ``dup_name``), are
    both left out, each error naming the other file: which one was meant is the operator's call.
    ``strict`` raises instead (``make check``, ``MUNGMO_STRICT_CONNECTORS``).
    """
    directory = settings.connectors_dir() if directory is None else directory
    if not directory.is_dir():
        raise FileNotFoundError(f"connector directory {directory} does not exist (set {settings.CONNECTORS_DIR.name})")
    parsed: list[ConnectorConfig] = []
    errors: list[ConnectorConfigError] = []
    for path in sorted(directory.glob("*.json")):
        try:
            parsed.append(read_connector_file(path, environ))
        except ConnectorConfigError as err:
            errors.append(err)
    clashes = _clashes(parsed)
    errors += clashes.values()
    good = [c for c in parsed if c.origin not in clashes]
    sources = tuple(c for c in good if isinstance(c, JdbcSourceConfig | DebeziumSourceConfig))
    sinks = tuple(c for c in good if isinstance(c, SinkConfig))
    warnings = _orphan_topics(sources, sinks) + _unproduced_schema_changes(sources)
    connectors = Connectors(sources, sinks, tuple(warnings), tuple(errors))
    if strict:
        connectors.raise_errors()
    return connectors


def _clashes(parsed: list[ConnectorConfig]) -> dict[str, ConnectorConfigError]:
    """Per file: the error of a connector whose name, or identifier, another file uses too."""
    by_identifier: dict[str, list[ConnectorConfig]] = {}
    for connector in parsed:
        by_identifier.setdefault(connector_identifier(connector.name), []).append(connector)
    clashes: dict[str, ConnectorConfigError] = {}
    for identifier, group in by_identifier.items():
        for connector in group if len(group) > 1 else ():
            others = [o for o in group if o is not connector]
            named = ", ".join(f"{o.name!r} in {o.origin}" for o in others)
            problem = (
                f"already used by {named}"
                if all(o.name == connector.name for o in others)
                else f"connector names {connector.name!r} and {named} make the same job name {identifier!r}"
            )
            clashes[connector.origin] = ConnectorConfigError(
                connector.name, "name", f"{problem}; rename or remove one of the files", connector.origin
            )
    return clashes


def _unproduced_schema_changes(sources: tuple[SourceConfig, ...]) -> list[str]:
    """CDC sources left at Debezium's ``include.schema.changes=true``: accepted, but nothing is produced."""
    return [
        f"connector {source.name!r}: include.schema.changes is true (Debezium's default), but schema-change "
        f"records are not produced here (docs/cdc.md); set it to false to say so"
        for source in sources
        if isinstance(source, DebeziumSourceConfig) and source.include_schema_changes
    ]


def _orphan_topics(sources: tuple[SourceConfig, ...], sinks: tuple[SinkConfig, ...]) -> list[str]:
    """Sink topics that no source here produces: allowed (another producer may), but reported."""
    return [
        f"connector {sink.name!r}: topic {topic!r} is produced by no source connector in this directory"
        for sink in sinks
        for topic in sink.topics
        if not any(source.may_produce(topic) for source in sources)
    ]
