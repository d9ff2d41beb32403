"""Topics: created when missing, with the settings their role needs."""

from __future__ import annotations

from collections.abc import Mapping

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from mungmo_pipelines.core.kafka.clients import KafkaSettings


def ensure_topic(
    settings: KafkaSettings,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
) -> bool:
    """Create ``name`` unless it exists; returns whether it was created."""
    admin = settings.admin()
    try:
        if name in admin.list_topics():
            return False
        admin.create_topics(
            [NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))], timeout_ms=30_000
        )
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()
