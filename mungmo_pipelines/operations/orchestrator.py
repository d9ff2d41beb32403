"""What Dagster knows about a connector and does for it: its runs, its sensors, reloading and launching.

Runs come from the instance (``DAGSTER_HOME``): every job that runs the connector's step (its own
job, the pipelines it is in, ``replicate_all``), judged by that step's events, so a
``replicate_all`` run that failed in another connector does not mark this one failed. Reloading
and launching go through the webserver's GraphQL API when ``MUNGMO_DAGSTER_URL`` names one;
without it, a launch is ``dagster job launch`` (queued until a daemon starts it) and a reload is
left to the daemon, which reloads its workspace every minute.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from urllib.parse import urlparse

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import RunRecord
from dagster_graphql import DagsterGraphQLClient

from mungmo_pipelines.assets.keys import change_sensor_name, job_name, lag_sensor_name, pipeline_job_name
from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.loader import SourceConfig
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.operations.files import Catalog, ConnectorDirectory, SecretsFile
from mungmo_pipelines.core.operations.service import Connect, RunInfo
from mungmo_pipelines.core.topology import Topology
from mungmo_pipelines.jobs import REPLICATE_ALL_JOB

LOCATION = "mungmo_pipelines"
REPOSITORY = "__repository__"
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
MOVING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
RUNS_LOOKED_AT = 10
RESTART_TAG = "mungmo/restart"
SOURCE_CLASSES = (JdbcSourceConfig, DebeziumSourceConfig)


def _listed_tables(config: SourceConfig) -> tuple[str, ...] | None:
    """The tables a source names (no database round trip: a status must answer quickly)."""
    if not isinstance(config, JdbcSourceConfig):
        return None  # a CDC source captures what its filters match: unknown without the database
    if config.query:
        return ()
    return tuple(t.rpartition(".")[2].strip("`") for t in config.table_whitelist) or None


def _iso(timestamp: float | None) -> str | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds") if timestamp else None


class DagsterOrchestrator:
    def __init__(self, instance: DagsterInstance | None, webserver_url: str | None = None) -> None:
        self.instance = instance
        self.webserver_url = webserver_url

    @classmethod
    def from_environment(cls) -> DagsterOrchestrator:
        """The instance of ``DAGSTER_HOME`` (none without it) and the webserver of ``MUNGMO_DAGSTER_URL``."""
        instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
        return cls(instance, settings.DAGSTER_URL.get())

    # --- runs ------------------------------------------------------------------------------

    def jobs_of(self, catalog: Catalog, name: str) -> list[str]:
        """Every job that runs this connector's step."""
        found = catalog.files[name]
        topology = Topology.build(catalog.connectors, tables_of=_listed_tables)
        jobs = [job_name(name), REPLICATE_ALL_JOB]
        if isinstance(found.config, SinkConfig):
            jobs += [pipeline_job_name(p.source) for p in topology.pipelines_with(found.config)]
        elif isinstance(found.config, SOURCE_CLASSES) and topology.pipeline_of(found.config) is not None:
            jobs.append(pipeline_job_name(found.config))
        return jobs

    @staticmethod
    def step_of(catalog: Catalog, name: str) -> str:
        """The connector's step: a sink's ``_write``, a source's (JDBC or CDC) ``_publish``."""
        suffix = "_write" if isinstance(catalog.files[name].config, SinkConfig) else "_publish"
        return job_name(name) + suffix

    def _records(self, jobs: list[str], statuses: list[DagsterRunStatus], limit: int) -> list[RunRecord]:
        assert self.instance is not None
        records = [
            record
            for job in jobs
            for record in self.instance.get_run_records(RunsFilter(job_name=job, statuses=statuses), limit=limit)
        ]
        return sorted(records, key=lambda r: r.create_timestamp, reverse=True)[:limit]

    def last_run(self, catalog: Catalog, name: str) -> RunInfo | None:
        if self.instance is None:
            return None
        step, own = self.step_of(catalog, name), job_name(name)
        for record in self._records(self.jobs_of(catalog, name), FINISHED, RUNS_LOOKED_AT):
            run = record.dagster_run
            events = self.instance.all_logs(
                run.run_id,
                of_type={DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE},
            )
            ours = [e for e in events if e.step_key == step]
            failure = next((e for e in ours if e.dagster_event_type == DagsterEventType.STEP_FAILURE), None)
            if not ours and not (run.job_name == own and run.status == DagsterRunStatus.FAILURE):
                continue  # this run did not get to the connector's step: look further back
            message = None
            if failure is not None and failure.dagster_event is not None:
                error = failure.dagster_event.step_failure_data.error
                message = error.to_string() if error is not None else failure.message
            elif not ours:
                run_failure = next((e for e in events if e.dagster_event_type == DagsterEventType.RUN_FAILURE), None)
                message = run_failure.message if run_failure is not None else f"run {run.run_id} failed"
            return RunInfo(
                run.run_id,
                run.job_name,
                run.status.value,
                _iso_of(record),
                _iso(record.end_time),
                message,
            )
        return None

    def runs_in_progress(self, catalog: Catalog, name: str) -> list[RunInfo]:
        if self.instance is None:
            return []
        return [
            RunInfo(r.dagster_run.run_id, r.dagster_run.job_name, r.dagster_run.status.value, _iso_of(r))
            for r in self._records(self.jobs_of(catalog, name), MOVING, RUNS_LOOKED_AT)
        ]

    def sensors(self, catalog: Catalog, name: str) -> dict[str, str]:
        found = catalog.files[name]
        if isinstance(found.config, SOURCE_CLASSES):
            sensor = change_sensor_name(found.config)
        elif isinstance(found.config, SinkConfig):
            sensor = lag_sensor_name(found.config)
        else:
            return {}
        if self.instance is None:
            return {sensor: "unknown (no DAGSTER_HOME)"}
        states = {state.name: state.status.value for state in self.instance.all_instigator_state()}
        return {sensor: states.get(sensor, "STOPPED (default)")}

    # --- reload and launch -------------------------------------------------------------------

    def _client(self) -> DagsterGraphQLClient:
        url = urlparse(self.webserver_url or "")
        return DagsterGraphQLClient(
            url.hostname or "127.0.0.1", port_number=url.port, use_https=url.scheme == "https", timeout=60
        )

    def reload(self) -> str:
        if not self.webserver_url:
            return "no webserver configured (MUNGMO_DAGSTER_URL): the daemon reloads within a minute"
        try:
            info = self._client().reload_repository_location(LOCATION)
        except Exception as err:  # the file is written; the reload is best effort and says why it failed
            return f"reload at {self.webserver_url} failed: {type(err).__name__}: {err}"
        if info.failure_type is not None:
            return f"reload at {self.webserver_url}: {info.status.value} ({info.failure_type}: {info.message})"
        return f"reloaded code location {LOCATION} at {self.webserver_url}"

    def launch(self, catalog: Catalog, name: str) -> str:
        job, tags = job_name(name), {RESTART_TAG: name}
        if self.webserver_url:
            run_id = self._client().submit_job_execution(
                job, repository_location_name=LOCATION, repository_name=REPOSITORY, tags=tags
            )
            return f"run {run_id} of {job} submitted through {self.webserver_url}"
        run_id = str(uuid.uuid4())
        command = [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "launch",
            "-w",
            str(settings.PROJECT_ROOT / "workspace.yaml"),
        ]
        command += ["-j", job, "--run-id", run_id, "--tags", json.dumps(tags)]
        # Not from the project root: there Dagster's CLI lets a developer's .env (`make demo` writes one)
        # replace this process's DAGSTER_HOME and settings, and the run would go to another instance.
        done = subprocess.run(
            command,
            cwd=self.instance.root_directory if self.instance is not None else tempfile.gettempdir(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dagster job launch -j {job} failed:\n{done.stdout}\n{done.stderr}")
        return f"run {run_id} of {job} submitted (a queued run waits for the daemon)"


def _iso_of(record: RunRecord) -> str:
    return record.create_timestamp.isoformat(timespec="seconds")


def connect_from_environment(by: str, instance: DagsterInstance | None = None) -> Connect:
    """The operations on the configured connectors directory, Kafka cluster and Dagster instance."""
    orchestrator = (
        DagsterOrchestrator(instance, settings.DAGSTER_URL.get())
        if instance
        else DagsterOrchestrator.from_environment()
    )
    return Connect(
        ConnectorDirectory(settings.connectors_dir(), SecretsFile(settings.secrets_file())),
        KafkaSettings(settings.kafka_bootstrap(), client_id="mungmo-connect"),
        orchestrator,
        worker_id=f"{settings.CONNECT_API_HOST.get()}:{settings.CONNECT_API_PORT.get()}",
        by=by,
    )
