"""Topics: created when missing, with the settings their role needs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from mungmo_pipelines.core.kafka.clients import KafkaSettings

# Kafka's own rule (org.apache.kafka.common.internals.Topic.validate).
MAX_TOPIC_LENGTH = 249
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")


def topic_name_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic name, or ``None`` when it is legal."""
    if not name:
        return "expected a topic name, got an empty one"
    if name in (".", ".."):
        return f"{name!r} is not a legal topic name"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"topic name {name[:40]!r}... is {len(name)} characters; Kafka allows at most {MAX_TOPIC_LENGTH}"
    return _characters_problem("topic name", name)


def topic_prefix_problem(prefix: str) -> str | None:
    """Why no topic can start with ``prefix`` (characters, or no room left for a name after it), or ``None``."""
    if len(prefix) >= MAX_TOPIC_LENGTH:
        return f"topic prefix is {len(prefix)} characters; Kafka allows at most {MAX_TOPIC_LENGTH} for a whole name"
    return _characters_problem("topic prefix", prefix) if prefix else None


def _characters_problem(what: str, text: str) -> str | None:
    if _LEGAL_TOPIC.fullmatch(text):
        return None
    illegal = "".join(sorted({c for c in text if not _LEGAL_TOPIC.fullmatch(c)}))
    return f"{what} {text!r} has characters Kafka refuses ({illegal!r}); legal are a-z, A-Z, 0-9, '.', '_', '-'"


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


def max_message_bytes(settings: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    """Each existing topic's ``max.message.bytes`` (its own, or the broker's default); missing topics are left out."""
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": None}) for topic in topics
    ]
    if not resources:
        return {}
    admin = settings.admin()
    try:
        described = admin.describe_configs(resources, config_filter="all").get("topic", {})
    finally:
        admin.close()
    return {
        topic: int(configs["max.message.bytes"]["value"])
        for topic, configs in described.items()
        if "max.message.bytes" in configs
    }
