"""A connector file that did not load, where an operator looks: an asset spec and a sensor named after it.

The spec sits in the ``connector_errors`` group with the error as its description and metadata;
the sensor is on by default and fails every tick with the error, so the Automation page shows
it red with the message, and it disappears once the file is fixed and the location reloaded.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec, DefaultSensorStatus, SensorDefinition, SensorEvaluationContext, sensor

from mungmo_pipelines.core.config.loader import connector_identifier
from mungmo_pipelines.core.errors import ConnectorConfigError, ConnectorLoadErrors

ERRORS_GROUP = "connector_errors"
ERROR_TICK_SECONDS = 60


def load_error_definitions(
    errors: tuple[ConnectorConfigError, ...],
) -> tuple[list[AssetSpec], list[SensorDefinition]]:
    by_identifier: dict[str, list[ConnectorConfigError]] = {}
    for error in errors:
        by_identifier.setdefault(connector_identifier(error.connector) or "unnamed", []).append(error)
    specs, sensors = [], []
    for identifier, group in by_identifier.items():
        message = "\n".join(str(e) for e in group)
        specs.append(
            AssetSpec(
                AssetKey([ERRORS_GROUP, identifier]),
                group_name=ERRORS_GROUP,
                description=f"FAILED: this connector did not load and runs nowhere.\n\n{message}",
                metadata={
                    "connector": ", ".join(sorted({e.connector for e in group})),
                    "files": ", ".join(e.origin for e in group),
                    "fields": ", ".join(e.field_name or "-" for e in group),
                    "error": message,
                },
            )
        )
        sensors.append(_error_sensor(identifier, tuple(group)))
    return specs, sensors


def _error_sensor(identifier: str, errors: tuple[ConnectorConfigError, ...]) -> SensorDefinition:
    @sensor(
        name=f"{identifier}_config_error",
        minimum_interval_seconds=ERROR_TICK_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="FAILED connector: " + "; ".join(str(e) for e in errors),
    )
    def config_error(context: SensorEvaluationContext) -> None:
        raise ConnectorLoadErrors(errors)

    return config_error
