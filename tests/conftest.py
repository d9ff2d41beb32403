"""Fixtures for tests against the real MariaDB and Kafka of ``scripts/stack`` (or external ones).

Every test gets its own databases (``mungmo_test_<hex>``), topics and connector names, and
drops them afterwards, so runs never see each other's data. A test that uses the servers (through
these fixtures, or marked ``stack`` by hand) is in the ``stack`` tier; the rest run without them
(``make test-fast``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.settings import kafka_bootstrap, mariadb_admin_url
from tests.support.sandbox import Sandbox

os.environ.setdefault("MUNGMO_DB_PASSWORD", "mungmo-local-dev")

SERVER_FIXTURES = frozenset({"admin_engine", "kafka_settings", "sandbox"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the servers through a fixture as ``stack``."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def admin_engine() -> Iterator[Engine]:
    engine = create_engine(mariadb_admin_url(), pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap(), client_id="mungmo-tests")


@pytest.fixture
def sandbox(admin_engine: Engine, kafka_settings: KafkaSettings) -> Iterator[Sandbox]:
    box = Sandbox(admin_engine, kafka_settings, uuid.uuid4().hex[:10])
    yield box
    box.cleanup()
