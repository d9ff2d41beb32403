"""Every connector operation of Kafka Connect's REST API, once, for the REST endpoint, the CLI and the UI job.

Inputs and outputs are Kafka Connect's JSON shapes; refusals raise :class:`OperationError`
subclasses carrying Kafka Connect's status code and message. What only the orchestrator knows
(run history, reloading definitions, launching a run) comes through :class:`Orchestrator`,
which the Dagster layer implements; without one, statuses carry no run and nothing is reloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.base import ConnectorConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.loader import CONNECTOR_CLASSES
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import BadRequest, Conflict, NotFound
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.connection import JdbcConnection
from mungmo_pipelines.core.operations.files import Catalog, ConnectorDirectory, ConnectorFile
from mungmo_pipelines.core.operations.offsets import offsets_json, offsets_of, parse_offsets_body
from mungmo_pipelines.core.operations.state import StateRecord, TargetState, TargetStateReader, TargetStateStore
from mungmo_pipelines.core.operations.validate import (
    config_class_of,
    connector_type,
    invalid_config_message,
    validate_config,
)
from mungmo_pipelines.core.sink.lag import measure_lag
from mungmo_pipelines.core.source.jdbc import source_tables
from mungmo_pipelines.core.source.offsets import SourceOffsetStore
from mungmo_pipelines.core.source.probe import probe_changes

RESET_MESSAGE = "The offsets for this connector have been reset successfully"
ALTERED_MESSAGE = "The offsets for this connector have been altered successfully"


@dataclass(frozen=True)
class RunInfo:
    """One run of a job that ran the connector, as the status shows it."""

    run_id: str
    job: str
    status: str
    created_at: str
    ended_at: str | None = None
    failure: str | None = None  # the connector's step error (or the run's), when it failed there

    def to_json(self) -> dict[str, Any]:
        shown = {"run_id": self.run_id, "job": self.job, "status": self.status, "created_at": self.created_at}
        if self.ended_at:
            shown["ended_at"] = self.ended_at
        if self.failure:
            shown["failure"] = self.failure
        return shown


class Orchestrator(Protocol):
    """What only the orchestrator knows or does: its runs, its sensors, reloading and launching."""

    def last_run(self, catalog: Catalog, name: str) -> RunInfo | None:
        """The newest finished run that ran this connector's step."""
        ...

    def runs_in_progress(self, catalog: Catalog, name: str) -> list[RunInfo]:
        """Runs of the connector's jobs that are starting or started (they may be moving data)."""
        ...

    def sensors(self, catalog: Catalog, name: str) -> dict[str, str]:
        """The connector's sensors and whether each is on in the orchestrator."""
        ...

    def reload(self) -> str:
        """Reload the definitions after the directory changed; says what happened."""
        ...

    def launch(self, catalog: Catalog, name: str) -> str:
        """Start a run of the connector's own job now; says which."""
        ...


@dataclass
class Connect:
    """The operations on one connectors directory, one Kafka cluster and one orchestrator."""

    directory: ConnectorDirectory
    kafka: KafkaSettings
    orchestrator: Orchestrator | None = None
    worker_id: str = "mungmo-connect"
    by: str = "rest"  # recorded with each target state: through what it was set
    states: TargetStateReader | None = None
    _engines: dict[str, Engine] = field(default_factory=dict)
    _engines_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.store = TargetStateStore(self.kafka, settings.status_topic())
        if self.states is None:
            self.states = TargetStateReader(self.kafka, settings.status_topic())

    # --- reading ---------------------------------------------------------------------------

    def _state(self, name: str) -> StateRecord:
        assert self.states is not None
        return self.states.get(name)

    def _file(self, catalog: Catalog, name: str, message: str) -> ConnectorFile:
        found = catalog.find(name)
        if found is None:
            raise NotFound(message)
        return found

    def _config(self, name: str) -> ConnectorConfig:
        found = self._file(self.directory.catalog(), name, f"Connector {name} not found")
        if found.config is None:
            raise BadRequest(f"connector {name!r} did not validate, fix or replace it first: {found.error}")
        return found.config

    def names(self) -> list[str]:
        return list(self.directory.catalog().files)

    def connectors(self, expand: list[str]) -> Any:
        """``GET /connectors`` (names), or with ``?expand=status``/``info`` a map of each."""
        catalog = self.directory.catalog()
        if not expand:
            return list(catalog.files)
        result: dict[str, dict[str, Any]] = {}
        for name in catalog.files:
            entry: dict[str, Any] = {}
            if "status" in expand:
                entry["status"] = self._status(catalog, name)
            if "info" in expand:
                entry["info"] = self._info(catalog, name)
            result[name] = entry
        return result

    def info(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}``."""
        catalog = self.directory.catalog()
        self._file(catalog, name, f"Connector {name} not found")
        return self._info(catalog, name)

    def _info(self, catalog: Catalog, name: str) -> dict[str, Any]:
        found = catalog.files[name]
        stopped = self._state(name).state is TargetState.STOPPED
        return {
            "name": name,
            "config": found.raw_config(),
            "tasks": [] if stopped or found.config is None else [{"connector": name, "task": 0}],
            "type": _type_of(found),
        }

    def config(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/config``: as written, references unresolved, so never a password."""
        return self._file(self.directory.catalog(), name, f"Connector {name} not found").raw_config()

    def status(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/status``, with this project's own findings under ``mungmo``."""
        catalog = self.directory.catalog()
        self._file(catalog, name, f"No status found for connector {name}")
        return self._status(catalog, name)

    def _status(self, catalog: Catalog, name: str) -> dict[str, Any]:
        found = catalog.files[name]
        record = self._state(name)
        worker = self.worker_id
        extra: dict[str, Any] = {
            "target_state": record.state.value,
            "target_state_since": record.updated_at,
            "target_state_set_through": record.by,
            "file": str(found.path),
        }
        if found.error is not None:
            connector = {"state": "FAILED", "worker_id": worker, "trace": str(found.error)}
            extra["error"] = {"file": found.error.origin, "field": found.error.field_name, "message": str(found.error)}
            return {"name": name, "connector": connector, "tasks": [], "type": _type_of(found), "mungmo": extra}
        last = self.orchestrator.last_run(catalog, name) if self.orchestrator else None
        extra["last_run"] = last.to_json() if last else None
        if self.orchestrator:
            extra["runs_in_progress"] = [run.to_json() for run in self.orchestrator.runs_in_progress(catalog, name)]
            extra["sensors"] = self.orchestrator.sensors(catalog, name)
        assert found.config is not None
        extra["lag"] = self._lag(found.config)
        connector = {"state": record.state.value, "worker_id": worker}
        if record.state is TargetState.STOPPED:
            tasks: list[dict[str, Any]] = []
        elif record.state is TargetState.PAUSED:
            tasks = [{"id": 0, "state": "PAUSED", "worker_id": worker}]
        elif last is not None and last.failure:
            tasks = [{"id": 0, "state": "FAILED", "worker_id": worker, "trace": last.failure}]
        else:
            tasks = [{"id": 0, "state": "RUNNING", "worker_id": worker}]
        return {"name": name, "connector": connector, "tasks": tasks, "type": _type_of(found), "mungmo": extra}

    def engine(self, connection: JdbcConnection) -> Engine:
        url = connection.on_server(settings.mariadb_server_url()).sqlalchemy_url()
        key = url.render_as_string(hide_password=False)
        with self._engines_lock:
            if key not in self._engines:
                self._engines[key] = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
            return self._engines[key]

    def _lag(self, config: ConnectorConfig) -> dict[str, Any]:
        """How far behind: a sink per partition, a source per table (rows past its stored offset)."""
        try:
            if isinstance(config, SinkConfig):
                lag = measure_lag(config, self.engine(config.connection), self.kafka)
                return {
                    "records": lag.total,
                    "partitions": [
                        {"topic": p.topic, "partition": p.partition, "position": p.position, "end": p.end, "lag": p.lag}
                        for p in lag.partitions
                    ],
                    "missing_topics": list(lag.missing_topics),
                }
            if isinstance(config, JdbcSourceConfig):
                try:
                    stored = SourceOffsetStore(self.kafka, config.offsets_topic).load(config.name)
                except LookupError:
                    stored = {}
                probes = probe_changes(config, self.engine(config.connection), stored)
                return {
                    "tables_behind": sum(p.behind for p in probes),
                    "tables": [
                        {"table": p.table, "behind": p.behind, "newest": p.newest, "offset": p.stored} for p in probes
                    ],
                }
        except Exception as err:  # the status stays answerable when a server is down
            return {"error": f"{type(err).__name__}: {err}"}
        return {}

    def topics(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/topics``: the topics it produces (source) or reads (sink)."""
        config = self._config(name)
        topics: list[str] = []
        if isinstance(config, JdbcSourceConfig):
            if config.query:
                topics = [config.topic_prefix]
            else:
                tables = config.table_whitelist or source_tables(config, self.engine(config.connection))
                topics = sorted({config.topic_for(table.rpartition(".")[2].strip("`")) for table in tables})
        elif isinstance(config, SinkConfig):
            if config.topics:
                topics = list(config.topics)
            else:
                consumer = self.kafka.consumer(enable_auto_commit=False)
                try:
                    topics = sorted(t for t in consumer.topics() if config.reads_topic(t) and not t.startswith("__"))
                finally:
                    consumer.close()
        return {name: {"topics": topics}}

    # --- target states -------------------------------------------------------------------------

    def set_state(self, name: str, state: TargetState) -> StateRecord:
        """``PUT /connectors/{name}/pause``, ``…/resume``, ``…/stop`` (idempotent)."""
        self._file(self.directory.catalog(), name, f"Unknown connector {name}")
        return self.store.put(name, state, self.by)

    def restart(self, name: str, include_tasks: bool, only_failed: bool) -> tuple[dict[str, Any], str | None]:
        """``POST /connectors/{name}/restart``: a run of the connector's job, when it is running.

        ``only_failed`` restarts only a connector whose last run failed. A paused or stopped
        connector stays as it is (Kafka Connect restarts it into its target state). Returns the
        status, with the restarted parts ``RESTARTING``, and what was launched.
        """
        catalog = self.directory.catalog()
        self._file(catalog, name, f"Unknown connector: {name}")
        status = self._status(catalog, name)
        task = status["tasks"][0] if status["tasks"] else None
        if task is None or status["connector"]["state"] != "RUNNING" or self.orchestrator is None:
            return status, None  # failed validation, paused or stopped: a run would do nothing
        if only_failed and task["state"] != "FAILED":
            return status, None
        launched = self.orchestrator.launch(catalog, name)
        status["connector"]["state"] = "RESTARTING"
        if include_tasks or task["state"] == "FAILED":
            task["state"] = "RESTARTING"
        return status, launched

    # --- offsets -------------------------------------------------------------------------------

    def offsets(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/offsets``."""
        config = self._config(name)
        return offsets_json(offsets_of(config, self.kafka, self.engine).read())

    def _modifiable(self, name: str) -> ConnectorConfig:
        """KIP-875: offsets change only while the connector is stopped and no run of it is going."""
        config = self._config(name)
        if self._state(name).state is not TargetState.STOPPED:
            raise BadRequest(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for "
                f"the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )
        self._no_runs_in_progress(name, "its offsets can be modified")
        return config

    def _no_runs_in_progress(self, name: str, then: str) -> None:
        if self.orchestrator is None:
            return
        going = self.orchestrator.runs_in_progress(self.directory.catalog(), name)
        if going:
            run = going[0]
            raise Conflict(
                f"connector {name!r} is stopped but run {run.run_id} of {run.job} is still {run.status}; "
                f"{then} once it has ended"
            )

    def reset_offsets(self, name: str) -> dict[str, str]:
        """``DELETE /connectors/{name}/offsets``: the next run replicates from the start."""
        offsets_of(self._modifiable(name), self.kafka, self.engine).reset()
        return {"message": RESET_MESSAGE}

    def alter_offsets(self, name: str, body: Any) -> dict[str, str]:
        """``PATCH /connectors/{name}/offsets``."""
        config = self._modifiable(name)
        offsets_of(config, self.kafka, self.engine).alter(parse_offsets_body(body))
        return {"message": ALTERED_MESSAGE}

    # --- validate, add, update, delete ----------------------------------------------------------

    def validate(self, plugin: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /connector-plugins/{class}/config/validate``."""
        return validate_config(plugin, config, self.directory.environ)

    def create(self, body: Any) -> tuple[dict[str, Any], str]:
        """``POST /connectors``: the connector's info (201) and what the reload did."""
        if not isinstance(body, dict):
            raise BadRequest('expected a JSON object {"name": ..., "config": {...}}')
        name = (body.get("name") or "").strip() if isinstance(body.get("name"), str) else ""
        config = body.get("config")
        if not isinstance(config, dict):
            raise BadRequest("Connector config is missing or not a JSON object")
        initial = body.get("initial_state") or "RUNNING"
        if initial not in ("RUNNING", "PAUSED", "STOPPED"):
            raise BadRequest(f"initial_state must be RUNNING, PAUSED or STOPPED, got {initial!r}")
        config = _named(name, config)
        info, _, reload = self._put(name, config, allow_replace=False, initial=TargetState(initial))
        return info, reload

    def put_config(self, name: str, config: Any) -> tuple[dict[str, Any], bool, str]:
        """``PUT /connectors/{name}/config``: create (201) or replace (200)."""
        if not isinstance(config, dict):
            raise BadRequest("expected the connector config as a JSON object of options")
        return self._put(name, _named(name, config), allow_replace=True, initial=None)

    def _put(
        self, name: str, config: dict[str, Any], allow_replace: bool, initial: TargetState | None
    ) -> tuple[dict[str, Any], bool, str]:
        if not name:
            raise BadRequest("Connector name cannot be empty")
        with self.directory.locked():
            catalog = self.directory.catalog()
            existing = catalog.find(name)
            if existing is not None and not allow_replace:
                raise Conflict(f"Connector {name} already exists")
            clash = catalog.identifier_owner(name)
            if clash is not None:
                raise Conflict(
                    f"Connector {name} would share its job name with connector {clash.name} ({clash.path}); "
                    "choose a name that differs in more than punctuation"
                )
            plugin = config.get("connector.class")
            if not isinstance(plugin, str) or plugin not in CONNECTOR_CLASSES:
                raise BadRequest(f"Connector config {config} contains no connector type")
            infos = self.validate(plugin, config)
            if infos["error_count"]:
                raise BadRequest(invalid_config_message(infos))
            stored = self.directory.secrets.externalize(name, config, config_class_of(plugin))
            body = {"name": name, "config": {k: v for k, v in stored.items() if k != "name"}}
            path = existing.path if existing is not None else self.directory.new_path(name)
            self.directory.write(path, body)
        if initial is not None:
            self.store.put(name, initial, self.by)
        reload = self.orchestrator.reload() if self.orchestrator else _NO_RELOAD
        return self.info(name), existing is None, reload

    def delete(self, name: str, keep_offsets: bool) -> tuple[list[str], str]:
        """``DELETE /connectors/{name}``: the file, its secrets, its state and (unless kept) its offsets.

        Returns what was removed, and what the reload did.
        """
        with self.directory.locked():
            catalog = self.directory.catalog()
            found = self._file(catalog, name, f"Connector {name} not found")
            removed = [str(found.path)]
            if not keep_offsets and found.config is not None:
                self._no_runs_in_progress(name, "its offsets can be deleted")
                offsets_of(found.config, self.kafka, self.engine).reset()
                removed.append("offsets")
            found.path.unlink()
            self.directory.secrets.forget(name)
        self.store.remove(name)
        removed.append("target state")
        reload = self.orchestrator.reload() if self.orchestrator else _NO_RELOAD
        return removed, reload

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        if self.states is not None:
            self.states.close()


_NO_RELOAD = "no orchestrator: the daemon picks the change up within a minute, a webserver on Reload"


def _named(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Kafka Connect's check: a ``name`` in the config must be the connector's."""
    included = config.get("name")
    if included is not None and included != name:
        raise BadRequest(f"Connector name configuration ({included}) doesn't match connector name in the URL ({name})")
    return {**config, "name": name}


def _type_of(found: ConnectorFile) -> str:
    if found.config is not None:
        return connector_type(type(found.config))
    plugin = found.raw_config().get("connector.class")
    config_class = CONNECTOR_CLASSES.get(plugin) if isinstance(plugin, str) else None
    return connector_type(config_class) if config_class else "unknown"
