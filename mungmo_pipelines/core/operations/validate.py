"""``PUT /connector-plugins/{class}/config/validate``: Kafka Connect's ``ConfigInfos``, built from the option
declarations (``core/config/options.py``), with every field's errors rather than the first one only.

Each option is parsed on its own; when all of them parse, the cross-option rules run and their
error is put on the field they name. Options the class does not declare are listed too, each
with its error, so the count matches what ``POST /connectors`` refuses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mungmo_pipelines.core.config.base import ConnectorConfig, JdbcConnectorConfig
from mungmo_pipelines.core.config.debezium_sink import DEBEZIUM_SINK_CLASS
from mungmo_pipelines.core.config.debezium_source import MARIADB_CONNECTOR_CLASS
from mungmo_pipelines.core.config.jdbc_sink import JDBC_SINK_CLASS
from mungmo_pipelines.core.config.jdbc_source import JDBC_SOURCE_CLASS
from mungmo_pipelines.core.config.loader import BODY_KEYS, CONNECTOR_CLASSES, option_text, parse_connector
from mungmo_pipelines.core.config.options import (
    REQUIRED,
    Bool,
    Csv,
    Int,
    Kind,
    Long,
    Option,
    OptionalLong,
    Password,
    Short,
    options_of,
)
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import BadRequest, ConnectorConfigError, NotFound

HIDDEN = "[hidden]"
COMMON = "Common"
CONNECTION = "Connection"
# The connector classes this project runs, with the version of the plugin whose behaviour it follows.
PLUGIN_VERSIONS = {
    JDBC_SOURCE_CLASS: "10.6.4-mungmo",
    JDBC_SINK_CLASS: "10.6.4-mungmo",
    DEBEZIUM_SINK_CLASS: "3.5.0.Final-mungmo",
    MARIADB_CONNECTOR_CLASS: "3.5.0.Final-mungmo",
}


def config_class_of(plugin: str) -> type[ConnectorConfig]:
    """The config class of a plugin, by full or short class name (as Kafka Connect accepts both)."""
    config_class = CONNECTOR_CLASSES.get(plugin)
    if config_class is None:
        raise NotFound(f"Unknown plugin {plugin}.")
    return config_class


def connector_type(config_class: type[ConnectorConfig]) -> str:
    """Kafka Connect's plugin type: ``sink`` or ``source``."""
    return "sink" if issubclass(config_class, SinkConfig) else "source"


def plugins() -> list[dict[str, str]]:
    """``GET /connector-plugins``."""
    return [
        {"class": name, "type": connector_type(CONNECTOR_CLASSES[name]), "version": version}
        for name, version in PLUGIN_VERSIONS.items()
    ]


def _type_of(kind: Kind[Any]) -> str:
    kinds = (
        (Password, "PASSWORD"),
        (Long, "LONG"),
        (Short, "SHORT"),
        (Int, "INT"),
        (OptionalLong, "LONG"),
        (Bool, "BOOLEAN"),
        (Csv, "LIST"),
    )
    for cls, name in kinds:
        if isinstance(kind, cls):
            return name
    return "STRING"


def _definition(
    name: str, kind: str, required: bool, default: str | None, doc: str, group: str, order: int
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "required": required,
        "default_value": default,
        "importance": "HIGH" if required else "MEDIUM",
        "documentation": doc,
        "group": group,
        "width": "NONE",
        "display_name": name,
        "dependents": [],
        "order": order,
    }


def _shown(declared: Option, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(declared.kind, Password):
        return HIDDEN
    return str(value).lower() if isinstance(value, bool) else str(value)


def _default(declared: Option) -> str | None:
    if declared.default is REQUIRED:
        return None
    value = declared.resolve_default()
    if value in ("", (), None):
        return None if value is None else ""
    return declared.kind.show(value)


def validate_config(plugin: str, config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Kafka Connect's ``ConfigInfos`` for ``config`` (a flat config map) against ``plugin``."""
    if not isinstance(config, Mapping):
        raise BadRequest("expected the connector config as a JSON object of options")
    environ = os.environ if environ is None else environ
    config_class = config_class_of(plugin)
    declared = options_of(config_class)
    name = config.get("name")
    label = name if isinstance(name, str) and name else "<unnamed>"
    errors: dict[str, list[str]] = {key: [] for key in (*BODY_KEYS, *declared, *config)}
    if not isinstance(name, str) or not name.strip():
        errors["name"].append('Missing required configuration "name" which has no default value.')
    if "connector.class" not in config:
        errors["connector.class"].append('Missing required configuration "connector.class" which has no default value.')
    elif CONNECTOR_CLASSES.get(config["connector.class"]) is not config_class:
        given = config["connector.class"]
        errors["connector.class"].append(f"expected {plugin}, as in the validate URL, got {given!r}")
    for key, value in config.items():
        if key in BODY_KEYS:
            continue
        option = declared.get(key)
        if option is None:
            errors[key].append(f"{key} is not an option of {plugin}")
            continue
        try:
            option.kind.parse(option_text(value, label, key, "", environ))
        except ConnectorConfigError as err:
            errors[key].append(err.problem)
        except ValueError as err:
            errors[key].append(f"Invalid value {_shown(option, value)} for configuration {key}: {err}")
    for key, option in declared.items():
        if option.default is REQUIRED and key not in config:
            errors[key].append(f'Missing required configuration "{key}" which has no default value.')
    if not any(errors.values()):
        try:
            parse_connector({"name": label, "config": dict(config)}, environ=environ)
        except ConnectorConfigError as err:
            errors[err.field_name if err.field_name in errors else "connector.class"].append(err.problem)
    return _config_infos(plugin, config_class, config, declared, errors)


def _config_infos(
    plugin: str,
    config_class: type[ConnectorConfig],
    config: Mapping[str, Any],
    declared: dict[str, Option],
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    connection = options_of(JdbcConnectorConfig)
    own_group = connector_type(config_class).capitalize()
    configs = [
        _config_info(
            _definition("name", "STRING", True, None, "unique connector name", COMMON, 1),
            "name",
            config.get("name"),
            errors["name"],
        ),
        _config_info(
            _definition("connector.class", "STRING", True, None, "the connector's class", COMMON, 2),
            "connector.class",
            config.get("connector.class"),
            errors["connector.class"],
        ),
    ]
    for order, (key, option) in enumerate(declared.items(), start=3):
        group = CONNECTION if key in connection else own_group
        definition = _definition(
            key, _type_of(option.kind), option.default is REQUIRED, _default(option), option.doc, group, order
        )
        configs.append(_config_info(definition, key, _shown(option, config.get(key)), errors[key]))
    for key in config:
        if key not in declared and key not in BODY_KEYS:
            definition = _definition(key, "STRING", False, None, "not an option of this connector", own_group, 0)
            configs.append(_config_info(definition, key, str(config[key]), errors[key]))
    return {
        "name": plugin,
        "error_count": sum(len(e) for e in errors.values()),
        "groups": [COMMON, CONNECTION, own_group],
        "configs": configs,
    }


def _config_info(definition: dict[str, Any], key: str, value: Any, errors: list[str]) -> dict[str, Any]:
    return {
        "definition": definition,
        "value": {"name": key, "value": value, "recommended_values": [], "errors": errors, "visible": True},
    }


def invalid_config_message(infos: dict[str, Any]) -> str:
    """What ``POST /connectors`` answers for an invalid body, as Kafka Connect words it."""
    lines = [f"Connector configuration is invalid and contains the following {infos['error_count']} error(s):"]
    lines += [error for config in infos["configs"] for error in config["value"]["errors"]]
    lines.append(
        "You can also find the above list of errors at the endpoint "
        "`/connector-plugins/{connectorType}/config/validate`"
    )
    return "\n".join(lines)
