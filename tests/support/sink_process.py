"""``python -m tests.support.sink_process <connector.json>``: one sink run in its own process, for the crash tests.

The connector body is a file as in ``connectors/``; servers come from the same environment
variables as everywhere else. Prints the run's record count when it finishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.connection import create_engine
from mungmo_pipelines.core.sink.runtime import JdbcSink


def main(path: str) -> None:
    config = parse_connector(json.loads(Path(path).read_text()), path)
    assert isinstance(config, JdbcSinkConfig)
    engine = create_engine(config.connection.on_server(settings.mariadb_server_url()).sqlalchemy_url())
    run = JdbcSink(config, engine, KafkaSettings(settings.kafka_bootstrap(), client_id="mungmo-crash-test")).run()
    print(json.dumps({"records": run.records}))


if __name__ == "__main__":
    main(sys.argv[1])
