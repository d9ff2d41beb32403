"""``python -m tests.support.sink_process <connector.json>``: one sink run in its own process, for the crash tests.

The connector body is a file as in ``connectors/`` (either sink class); servers come from the same
environment variables as everywhere else. Prints the run's record count when it finishes.
``start_sink`` starts such a process, optionally set to kill itself at a fault point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.faults import FAULT_INJECTION_ENV
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.connection import create_engine
from mungmo_pipelines.core.sink.offsets import OFFSETS_TABLE
from mungmo_pipelines.core.sink.runtime import JdbcSink
from tests.support.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]


def start_sink(body: dict[str, Any], tmp_path: Path, fault: str | None = None) -> subprocess.Popen[str]:
    """A sink run of ``body`` in a new process; ``fault`` (``point:n``) makes it SIGKILL itself there."""
    path = tmp_path / "sink.json"
    path.write_text(json.dumps(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(FAULT_INJECTION_ENV, None)
    if fault:
        env[FAULT_INJECTION_ENV] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.sink_process", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> int:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, -signal.SIGKILL), stderr
    return process.returncode


def stored_total(sandbox: Sandbox, database: str) -> int:
    """The sum of stored next offsets: how many records the committed batches cover."""
    exists = sandbox.rows(
        database,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME = '{OFFSETS_TABLE}'",
    )
    if not exists[0][0]:
        return 0
    return int(sandbox.rows(database, f"SELECT COALESCE(SUM(next_offset), 0) FROM {OFFSETS_TABLE}")[0][0])


def main(path: str) -> None:
    config = parse_connector(json.loads(Path(path).read_text()), path)
    assert isinstance(config, SinkConfig)
    engine = create_engine(config.connection.on_server(settings.mariadb_server_url()).sqlalchemy_url())
    run = JdbcSink(config, engine, KafkaSettings(settings.kafka_bootstrap(), client_id="mungmo-crash-test")).run()
    print(json.dumps({"records": run.records}))


if __name__ == "__main__":
    main(sys.argv[1])
