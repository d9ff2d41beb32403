"""The Kafka resource: the cluster connectors produce to and consume from."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from mungmo_pipelines.core.kafka.clients import KafkaSettings


class KafkaResource(ConfigurableResource):
    """The Kafka cluster the connectors produce to and consume from."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port...]")
    client_id: str = Field(default="mungmo-pipelines", description="client.id shown in broker logs and quotas")

    def settings(self) -> KafkaSettings:
        return KafkaSettings(self.bootstrap_servers, self.client_id)
