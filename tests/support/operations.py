"""Shared by the operations tests: a project of connector files and its Dagster instance, the REST endpoint."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from dagster import DagsterInstance, Definitions

from mungmo_pipelines.assets.keys import job_name
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.operations.files import ConnectorDirectory, SecretsFile
from mungmo_pipelines.core.operations.service import Connect
from mungmo_pipelines.definitions import build_definitions
from mungmo_pipelines.operations.orchestrator import DagsterOrchestrator
from mungmo_pipelines.operations.rest import create_app
from tests.support.expiry import dagster_home
from tests.support.sandbox import Sandbox
from tests.support.tables import TEST001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(connect: Connect, credentials: tuple[str, str] | None = None) -> Iterator[httpx.Client]:
    """The REST app under a real uvicorn server on a free loopback port, and an HTTP client for it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(connect, credentials), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Project:
    """A connectors directory, a secrets file, a status topic and a Dagster instance of one test."""

    sandbox: Sandbox
    root: Path
    instance: DagsterInstance
    status_topic: str

    @property
    def connectors(self) -> Path:
        return self.root / "connectors"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets" / "connectors.properties"

    def connect(self, by: str = "rest", webserver_url: str | None = None) -> Connect:
        directory = ConnectorDirectory(self.connectors, SecretsFile(self.secrets))
        return Connect(directory, self.sandbox.kafka, DagsterOrchestrator(self.instance, webserver_url), by=by)

    def write(self, body: dict[str, Any], file_name: str | None = None) -> Path:
        path = self.connectors / (file_name or f"{body['name']}.json")
        path.write_text(json.dumps(body))
        return path

    def definitions(self) -> Definitions:
        return build_definitions(load_connectors(self.connectors))

    def run(self, defs: Definitions, connector: str, job: str | None = None, raise_on_error: bool = True) -> Any:
        return defs.resolve_job_def(job or job_name(connector)).execute_in_process(
            instance=self.instance, raise_on_error=raise_on_error
        )


@contextmanager
def project(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project whose state topic, connectors directory and secrets file are the test's own."""
    status_topic = sandbox.topic("status")
    monkeypatch.setenv("MUNGMO_STATUS_TOPIC", status_topic)
    (tmp_path / "connectors").mkdir()
    home = dagster_home(tmp_path / "dagster_home")
    instance = DagsterInstance.from_config(str(home))
    try:
        yield Project(sandbox, tmp_path, instance, status_topic)
    finally:
        instance.dispose()


@dataclass
class Pipeline:
    """A source on ``test001`` with rows, and an upserting sink of its topic."""

    source: dict[str, Any]
    sink: dict[str, Any]
    source_db: str
    target_db: str
    topic: str


def pipeline(sandbox: Sandbox, rows: int) -> Pipeline:
    source_db, target_db = sandbox.database("src"), sandbox.database("dst")
    sandbox.execute(source_db, TEST001)
    insert_rows(sandbox, source_db, rows)
    topic = sandbox.topic("test001")
    source = sandbox.source_body(
        source_db, mode="incrementing", **{"incrementing.column.name": "seq", "table.whitelist": "test001"}
    )
    sink = sandbox.sink_body(
        target_db,
        topics=topic,
        **{"auto.create": "true", "insert.mode": "upsert", "pk.mode": "record_key", "pk.fields": "seq"},
    )
    return Pipeline(source, sink, source_db, target_db, topic)


def insert_rows(sandbox: Sandbox, database: str, rows: int) -> None:
    sandbox.execute(
        database,
        *[
            "INSERT INTO test001 (member_name, pet_name, created_at) VALUES ('멍멍', '보리', NOW(3))"
            for _ in range(rows)
        ],
    )


def materialized(result: Any) -> dict[Any, dict[str, Any]]:
    return {
        event.materialization.asset_key: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }
