"""The UI's place for connector operations: the ``connector_operations`` job, launched from its Launchpad.

A job with config rather than a custom page: Dagster OSS has no plugin pages, while the
Launchpad builds the form from the config schema (the operation is a dropdown), every operation
is a run (who did what, when, with what outcome: the audit trail Kafka Connect lacks), and it
works wherever the UI works. The result is the run's metadata (JSON, and a table for ``list``);
a refusal fails the run with Kafka Connect's status code and message.
"""

import json
from enum import Enum
from typing import Any

from dagster import Config, Failure, JobDefinition, MetadataValue, OpExecutionContext, in_process_executor, job, op
from pydantic import Field

from mungmo_pipelines.core.errors import BadRequest, OperationError
from mungmo_pipelines.core.operations.service import Connect
from mungmo_pipelines.core.operations.state import TargetState

OPERATIONS_JOB = "connector_operations"


class Operation(Enum):
    LIST = "list"
    STATUS = "status"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    RESTART = "restart"
    OFFSETS_GET = "offsets_get"
    OFFSETS_RESET = "offsets_reset"
    OFFSETS_SET = "offsets_set"
    VALIDATE = "validate"
    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"


class ConnectorOperationConfig(Config):
    operation: Operation = Field(default=Operation.LIST, description="what to do (Kafka Connect's REST operations)")
    connector: str = Field(default="", description="the connector's name (every operation but list, validate, add)")
    body: str = Field(
        default="",
        description='JSON: {"offsets": [...]} for offsets_set; a connector body {"name", "config"} for add, '
        "validate and update",
    )
    keep_offsets: bool = Field(default=True, description="delete: keep the connector's offsets")
    only_failed: bool = Field(default=False, description="restart: only when its last run failed")


def _body(config: ConnectorOperationConfig) -> Any:
    try:
        return json.loads(config.body)
    except json.JSONDecodeError as err:
        raise BadRequest(f"body is not valid JSON: {err}") from None


def perform(connect: Connect, config: ConnectorOperationConfig) -> Any:
    """The operation's result, as the REST endpoint would answer it."""
    name, operation = config.connector, config.operation
    if operation is Operation.LIST:
        return connect.connectors(["status"])
    if operation is Operation.STATUS:
        return connect.status(name)
    if operation in (Operation.PAUSE, Operation.RESUME, Operation.STOP):
        state = {Operation.PAUSE: TargetState.PAUSED, Operation.RESUME: TargetState.RUNNING}.get(
            operation, TargetState.STOPPED
        )
        return {"message": connect.set_state(name, state).describe(name)}
    if operation is Operation.RESTART:
        status, launched = connect.restart(name, True, config.only_failed)
        return {"launched": launched, "status": status}
    if operation is Operation.OFFSETS_GET:
        return connect.offsets(name)
    if operation is Operation.OFFSETS_RESET:
        return connect.reset_offsets(name)
    if operation is Operation.OFFSETS_SET:
        return connect.alter_offsets(name, _body(config))
    if operation is Operation.DELETE:
        removed, reload = connect.delete(name, config.keep_offsets)
        return {"removed": removed, "reload": reload}
    body = _body(config)
    flat = {**body.get("config", {}), "name": body.get("name")} if isinstance(body, dict) and "config" in body else body
    if operation is Operation.VALIDATE:
        return connect.validate(str(flat.get("connector.class", "")), flat)
    if operation is Operation.ADD:
        info, reload = connect.create(body)
        return {"created": info, "reload": reload}
    info, created, reload = connect.put_config(name, flat)  # UPDATE
    return {"created" if created else "updated": info, "reload": reload}


def _markdown(statuses: dict[str, Any]) -> str:
    lines = ["| connector | type | state | task | last run | lag |", "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in statuses.items():
        status = entry["status"]
        extra = status.get("mungmo", {})
        last = extra.get("last_run")
        lines.append(
            f"| {name} | {status['type']} | {status['connector']['state']} | "
            f"{status['tasks'][0]['state'] if status['tasks'] else '-'} | "
            f"{(last['status'] + ' ' + last['created_at']) if last else '-'} | "
            f"{json.dumps(extra.get('lag', {}))[:120]} |"
        )
    return "\n".join(lines)


@op(name="connector_operation")
def connector_operation(context: OpExecutionContext, config: ConnectorOperationConfig) -> None:
    from mungmo_pipelines.operations.orchestrator import connect_from_environment

    connect = connect_from_environment("dagster", context.instance)
    try:
        result = perform(connect, config)
    except OperationError as err:
        raise Failure(description=f"{err.status}: {err.message}") from None
    finally:
        connect.close()
    context.log.info(f"{config.operation.value} {config.connector}: {json.dumps(result, ensure_ascii=False)[:2000]}")
    metadata: dict[str, Any] = {"result": MetadataValue.json(result)}
    if config.operation is Operation.LIST:
        metadata["connectors"] = MetadataValue.md(_markdown(result))
    context.add_output_metadata(metadata)


def connector_operations_job() -> JobDefinition:
    @job(
        name=OPERATIONS_JOB,
        executor_def=in_process_executor,
        description="Kafka Connect's REST operations from the Launchpad: list, status, pause, resume, stop, restart, "
        "offsets get/reset/set, validate, add, update, delete (docs/operations.md).",
    )
    def connector_operations() -> None:
        connector_operation()

    return connector_operations
