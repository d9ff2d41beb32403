"""Which tables each source reads, which topics it fills, and which sinks read them: the pipelines.

Built once when the definitions load, from the connector bodies and (for sources without a
whitelist) the database's tables; the Dagster layer turns it into assets, jobs and sensors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import bare_table
from mungmo_pipelines.core.config.loader import Connectors, SourceConfig
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.errors import MungmoError
from mungmo_pipelines.core.mariadb.connection import create_engine
from mungmo_pipelines.core.source.cdc.reader import captured_tables_now
from mungmo_pipelines.core.source.jdbc import source_tables

log = logging.getLogger(__name__)


def discover_tables(config: SourceConfig) -> tuple[str, ...] | None:
    """The tables a source reads: its whitelist, or discovered in the database now (a CDC source's
    as ``<db>.<table>``).

    A query reads from no single table (``()``). Discovery needs the database; when it is
    unreachable the answer is ``None`` (unknown), and the source still copies every table at
    run time.
    """
    if isinstance(config, DebeziumSourceConfig):
        try:
            return tuple(f"{db}.{table}" for db, table in captured_tables_now(config, settings.mariadb_server_url()))
        except Exception as err:  # any failure to reach the database must not break loading definitions
            log.warning(
                "connector %r: could not list the captured tables on %s:%s (%s); one placeholder asset stands "
                "for all of them",
                config.name,
                config.hostname,
                config.port,
                type(err).__name__,
            )
            return None
    if config.query:
        return ()
    if config.table_whitelist:
        return tuple(bare_table(t) for t in config.table_whitelist)
    url = config.connection.on_server(settings.mariadb_server_url()).sqlalchemy_url()
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        return tuple(source_tables(config, engine))
    except Exception as err:  # any failure to reach the database must not break loading definitions
        log.warning(
            "connector %r: could not list the tables of %s (%s); one placeholder asset stands for all of them",
            config.name,
            config.connection.describe(),
            err if isinstance(err, MungmoError) else type(err).__name__,
        )
        return None
    finally:
        engine.dispose()


@dataclass(frozen=True)
class SourceNode:
    """A source connector and what it reads; ``tables`` is ``None`` when they could not be listed."""

    config: SourceConfig
    tables: tuple[str, ...] | None

    def table_names(self) -> list[tuple[str, str]]:
        """``(database, table)`` of each table read (a JDBC source's are in its own database)."""
        if isinstance(self.config, DebeziumSourceConfig):
            return [(t.partition(".")[0], t.partition(".")[2]) for t in self.tables or ()]
        return [(self.config.database, t) for t in self.tables or ()]

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics its records go to (none listed when its tables are unknown)."""
        if self.tables is None:
            return ()
        return tuple(self.config.topic_for(table) for table in (self.tables or ("",)))


@dataclass(frozen=True)
class SinkNode:
    """A sink connector and the topics it reads: explicit ones, or the known topics ``topics.regex`` matches."""

    config: SinkConfig
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Pipeline:
    """A source and every sink that reads a topic it may produce: one run replicates end to end."""

    source: SourceConfig
    sinks: tuple[SinkConfig, ...]


@dataclass(frozen=True)
class Topology:
    sources: tuple[SourceNode, ...]
    sinks: tuple[SinkNode, ...]
    pipelines: tuple[Pipeline, ...]
    warnings: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        connectors: Connectors,
        tables_of: Callable[[SourceConfig], tuple[str, ...] | None] = discover_tables,
    ) -> Topology:
        sources = tuple(SourceNode(source, tables_of(source)) for source in connectors.sources)
        known = {topic for node in sources for topic in node.topics}
        sinks = tuple(
            SinkNode(
                sink,
                tuple(sink.topics) if sink.topics else tuple(sorted(t for t in known if sink.reads_topic(t))),
            )
            for sink in connectors.sinks
        )
        pipelines = []
        for node in sources:
            readers = tuple(
                sink.config for sink in sinks if any(node.config.may_produce(topic) for topic in sink.topics)
            )
            if readers:
                pipelines.append(Pipeline(node.config, readers))
        return cls(sources, sinks, tuple(pipelines), connectors.warnings)

    def pipeline_of(self, source: SourceConfig) -> Pipeline | None:
        return next((p for p in self.pipelines if p.source.name == source.name), None)

    def producer_of(self, topic: str) -> SourceConfig | None:
        """The source whose tables fill ``topic``, if one of them does."""
        return next((node.config for node in self.sources if topic in node.topics), None)

    def pipelines_with(self, sink: SinkConfig) -> list[Pipeline]:
        return [p for p in self.pipelines if any(s.name == sink.name for s in p.sinks)]
