"""Kafka Connect connector bodies (``{"name": ..., "config": {...}}``) parsed and validated.

The bodies are the ones the team POSTed to Kafka Connect, so option names, defaults and
value formats follow Confluent's JDBC source and sink connectors. Everything is checked
when the file loads, before any run, and every error names the connector, the field and
what was expected. Secrets are interpolated from ``${env:NAME}`` and never printed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import URL, make_url

SOURCE_CLASS = "io.confluent.connect.jdbc.JdbcSourceConnector"
SINK_CLASS = "io.confluent.connect.jdbc.JdbcSinkConnector"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
DEFAULT_OFFSETS_TOPIC = "mungmo-connect-offsets"
CONNECTORS_DIR_ENV = "MUNGMO_CONNECTORS_DIR"

_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_JDBC_URL = re.compile(
    r"^jdbc:(?P<scheme>mysql|mariadb)://(?P<hosts>[^/?]*)(?:/(?P<database>[^?]*))?(?:\?(?P<props>.*))?$"
)


class ConnectorConfigError(ValueError):
    """A connector body that cannot run; the message names connector, field and expectation."""

    def __init__(self, connector: str, field_name: str | None, problem: str, origin: str = "") -> None:
        where = f" ({origin})" if origin else ""
        subject = f"field {field_name!r}: " if field_name else ""
        super().__init__(f"connector {connector!r}{where}: {subject}{problem}")
        self.connector = connector
        self.field_name = field_name


class Secret:
    """A credential that prints as ``***`` in reprs, logs and error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class JdbcConnection:
    """Where a connector's database lives, from ``connection.url``/``user``/``password``."""

    host: str
    port: int
    database: str
    user: str | None
    password: Secret | None = field(default=None, repr=False)

    def sqlalchemy_url(self) -> URL:
        return URL.create(
            "mysql+pymysql",
            username=self.user,
            password=self.password.reveal() if self.password else None,
            host=self.host,
            port=self.port,
            database=self.database,
            query={"charset": "utf8mb4"},
        )

    def on_server(self, server_url: str | None) -> JdbcConnection:
        """Point this connection at another server (``MUNGMO_MARIADB_URL``), keeping the database.

        The server URL's user and password, when given, replace the connector's own.
        """
        if not server_url:
            return self
        url = make_url(server_url)
        return replace(
            self,
            host=url.host or self.host,
            port=url.port or self.port,
            user=url.username or self.user,
            password=Secret(url.password) if url.password else self.password,
        )

    def describe(self) -> str:
        return f"{self.user or ''}@{self.host}:{self.port}/{self.database}"


def parse_jdbc_url(url: str) -> tuple[str, int, str, dict[str, str]]:
    """``jdbc:mysql://host:port/db?k=v`` (or ``jdbc:mariadb://``) to its parts."""
    match = _JDBC_URL.match(url.strip())
    if not match:
        raise ValueError("expected jdbc:mysql://host[:port]/database or jdbc:mariadb://host[:port]/database")
    hosts = match["hosts"]
    if not hosts or "," in hosts:
        raise ValueError("expected exactly one host (failover and load-balanced host lists are not supported)")
    host, _, port = hosts.rpartition(":") if ":" in hosts else (hosts, "", "3306")
    if not port.isdigit():
        raise ValueError(f"expected a numeric port, got {port!r}")
    database = unquote(match["database"] or "")
    if not database:
        raise ValueError("expected a database name after the host, as in jdbc:mysql://localhost:3306/mungMo")
    props = dict(parse_qsl(match["props"] or "", keep_blank_values=True))
    return host, int(port), database, props


# --- option table -------------------------------------------------------------------------


REQUIRED = object()


def _string(value: str) -> str:
    return value


def _int(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {number}")
        return number

    return parse


def _optional_int(value: str) -> int | None:
    return None if value == "" else _int(-(2**63))(value)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return lowered == "true"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return lowered

    return parse


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"expected an IANA time zone such as UTC or Asia/Seoul, got {value!r}") from None
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"expected a regular expression ({err})") from None
    return value


def _select(value: str) -> str:
    statement = value.strip().rstrip(";").strip()
    if statement and not re.match(r"(?is)^(select|with)\b", statement):
        raise ValueError("expected a SELECT statement")
    return statement


def _json_converter(value: str) -> str:
    if value != JSON_CONVERTER:
        raise ValueError(f"expected {JSON_CONVERTER} (the only converter this project speaks), got {value!r}")
    return value


def _schemas_enabled(value: str) -> bool:
    if not _bool(value):
        raise ValueError("expected true: records carry their schema, as the JDBC connectors need")
    return True


@dataclass(frozen=True)
class Option:
    """One connector option, as in Kafka Connect's ``ConfigDef``."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str


def _options(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


_COMMON_OPTIONS = _options(
    Option("connection.url", _string, REQUIRED, "JDBC URL: jdbc:mysql:// or jdbc:mariadb://"),
    Option("connection.user", _string, None, "database user"),
    Option("connection.password", _string, None, "database password; use ${env:NAME}"),
    Option("db.timezone", _timezone, "UTC", "zone of DATETIME values without one"),
    Option("tasks.max", _int(1), 1, "accepted for compatibility; runs are single-task"),
    Option("key.converter", _json_converter, JSON_CONVERTER, "must be JsonConverter"),
    Option("value.converter", _json_converter, JSON_CONVERTER, "must be JsonConverter"),
    Option("key.converter.schemas.enable", _schemas_enabled, True, "must be true"),
    Option("value.converter.schemas.enable", _schemas_enabled, True, "must be true"),
)

SOURCE_OPTIONS = _COMMON_OPTIONS | _options(
    Option(
        "mode",
        _choice("bulk", "incrementing", "timestamp", "timestamp+incrementing"),
        REQUIRED,
        "how new rows are found",
    ),
    Option("incrementing.column.name", _string, "", "strictly increasing column (default: the AUTO_INCREMENT one)"),
    Option("timestamp.column.name", _csv, (), "comma list; the first non-null one is the row's time"),
    Option("table.whitelist", _csv, (), "tables to copy"),
    Option("table.blacklist", _csv, (), "tables not to copy"),
    Option("table.types", _choice("table"), "table", "only base tables"),
    Option("query", _select, "", "custom SELECT instead of tables"),
    Option("topic.prefix", _string, REQUIRED, "topic = prefix + table (or the prefix alone with query)"),
    Option("batch.max.rows", _int(1), 100, "rows per fetch (and per transaction with transaction.boundary=poll)"),
    Option("poll.interval.ms", _int(1), 5000, "how often the sensor looks for new rows"),
    Option("timestamp.delay.interval.ms", _int(0), 0, "rows younger than this wait"),
    Option("timestamp.initial", _optional_int, None, "first timestamp offset (ms since epoch, -1 = now)"),
    Option("validate.non.null", _bool, True, "offset columns must be NOT NULL"),
    Option(
        "numeric.mapping",
        _choice("none", "precision_only", "best_fit", "best_fit_eager_double"),
        "none",
        "NUMERIC mapping; no effect with MariaDB, whose DECIMAL is not JDBC NUMERIC",
    ),
    Option(
        "transaction.boundary",
        _choice("poll", "interval"),
        "interval",
        "when records and offsets commit: every batch.max.rows rows (poll) or every interval",
    ),
    Option("transaction.boundary.interval.ms", _int(1), 1000, "commit interval with transaction.boundary=interval"),
    Option("topic.creation.default.partitions", _int(1), 1, "partitions of created topics"),
    Option("topic.creation.default.replication.factor", _int(1), 1, "replication of created topics"),
    Option("offsets.storage.topic", _string, "", "compacted topic holding source offsets"),
)

SINK_OPTIONS = _COMMON_OPTIONS | _options(
    Option("topics", _csv, (), "topics to read"),
    Option("topics.regex", _regex, "", "topics to read, as a regular expression"),
    Option("table.name.format", _string, "${topic}", "target table; ${topic} is replaced"),
    Option("insert.mode", _choice("insert", "upsert", "update"), "insert", "how rows are written"),
    Option(
        "pk.mode", _choice("none", "kafka", "record_key", "record_value"), "none", "where the primary key comes from"
    ),
    Option("pk.fields", _csv, (), "primary key fields"),
    Option("fields.whitelist", _csv, (), "value fields to write (all when empty)"),
    Option("auto.create", _bool, False, "create missing tables"),
    Option("auto.evolve", _bool, False, "add columns for new fields"),
    Option("delete.enabled", _bool, False, "tombstones delete rows"),
    Option("batch.size", _int(1), 3000, "records per write"),
    Option("max.retries", _int(0), 10, "retries of a failed write"),
    Option("retry.backoff.ms", _int(0), 3000, "wait between retries"),
    Option(
        "errors.tolerance", _choice("none", "all"), "none", "stop on a bad record, or send it to the dead-letter topic"
    ),
    Option("errors.deadletterqueue.topic.name", _string, "", "dead-letter topic"),
    Option("errors.deadletterqueue.topic.replication.factor", _int(1), 1, "replication of the dead-letter topic"),
    Option(
        "errors.deadletterqueue.context.headers.enable",
        _bool,
        True,
        "__connect.errors.* headers name the failed record and the error (on by default here)",
    ),
    Option("errors.log.enable", _bool, False, "log every record sent to the dead-letter topic"),
    Option("errors.log.include.messages", _bool, False, "include the record's key and value in that log"),
    Option(
        "upsert.allow.other.unique.keys",
        _bool,
        False,
        "this project's own: let upserts run on tables with unique keys besides the primary key",
    ),
)


@dataclass(frozen=True)
class SourceConnectorConfig:
    """A validated ``JdbcSourceConnector`` body."""

    name: str
    connection: JdbcConnection
    mode: str
    incrementing_column: str
    timestamp_columns: tuple[str, ...]
    table_whitelist: tuple[str, ...]
    table_blacklist: tuple[str, ...]
    query: str
    topic_prefix: str
    batch_max_rows: int
    poll_interval_ms: int
    timestamp_delay_interval_ms: int
    timestamp_initial: int | None
    db_timezone: str
    validate_non_null: bool
    numeric_mapping: str
    topic_partitions: int
    topic_replication_factor: int
    offsets_topic: str
    transaction_boundary: str = "interval"
    transaction_interval_ms: int = 1000
    origin: str = ""

    def topic_for(self, table: str) -> str:
        return self.topic_prefix if self.query else f"{self.topic_prefix}{table}"

    def may_produce(self, topic: str) -> bool:
        if self.query:
            return topic == self.topic_prefix
        if self.table_whitelist:
            return topic in {self.topic_for(table) for table in self.table_whitelist}
        return topic.startswith(self.topic_prefix)

    @property
    def uses_incrementing(self) -> bool:
        return self.mode in ("incrementing", "timestamp+incrementing")

    @property
    def uses_timestamp(self) -> bool:
        return self.mode in ("timestamp", "timestamp+incrementing")


@dataclass(frozen=True)
class SinkConnectorConfig:
    """A validated ``JdbcSinkConnector`` body."""

    name: str
    connection: JdbcConnection
    topics: tuple[str, ...]
    topics_regex: str
    table_name_format: str
    insert_mode: str
    pk_mode: str
    pk_fields: tuple[str, ...]
    fields_whitelist: tuple[str, ...]
    auto_create: bool
    auto_evolve: bool
    delete_enabled: bool
    batch_size: int
    max_retries: int
    retry_backoff_ms: int
    errors_tolerance: str
    dlq_topic: str
    dlq_replication_factor: int
    dlq_context_headers: bool
    errors_log: bool
    errors_log_messages: bool
    upsert_allow_other_unique_keys: bool
    db_timezone: str
    origin: str = ""

    @property
    def consumer_group(self) -> str:
        """Kafka Connect's group for a sink connector, so lag tools keep working."""
        return f"connect-{self.name}"

    def table_for(self, topic: str) -> str:
        return self.table_name_format.replace("${topic}", topic)

    def reads_topic(self, topic: str) -> bool:
        if topic in self.topics:
            return True
        return bool(self.topics_regex) and re.fullmatch(self.topics_regex, topic) is not None


ConnectorConfig = SourceConnectorConfig | SinkConnectorConfig


def _interpolate(value: str, name: str, key: str, origin: str, environ: Mapping[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        variable = match[1]
        if variable not in environ:
            raise ConnectorConfigError(name, key, f"environment variable {variable} is not set", origin)
        return environ[variable]

    return _ENV_REFERENCE.sub(lookup, value)


def _as_text(value: Any, name: str, key: str, origin: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise ConnectorConfigError(name, key, f"expected a string, got {type(value).__name__}", origin)


def _parse_options(
    raw: Mapping[str, Any], options: Mapping[str, Option], name: str, origin: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("name", "connector.class"):
            continue
        option = options.get(key)
        if option is None:
            raise ConnectorConfigError(name, key, "not an option this connector supports", origin)
        text = _interpolate(_as_text(value, name, key, origin), name, key, origin, environ)
        try:
            values[key] = option.parse(text)
        except ValueError as err:
            raise ConnectorConfigError(name, key, f"{err} ({option.doc})", origin) from None
    for key, option in options.items():
        if key not in values:
            if option.default is REQUIRED:
                raise ConnectorConfigError(name, key, f"required option is missing ({option.doc})", origin)
            values[key] = option.default
    return values


def _connection(values: Mapping[str, Any], name: str, origin: str) -> JdbcConnection:
    try:
        host, port, database, props = parse_jdbc_url(values["connection.url"])
    except ValueError as err:
        raise ConnectorConfigError(name, "connection.url", str(err), origin) from None
    user = values["connection.user"] or props.get("user")
    password = values["connection.password"] or props.get("password")
    return JdbcConnection(host, port, database, user, Secret(password) if password else None)


def _source(name: str, values: dict[str, Any], origin: str) -> SourceConnectorConfig:
    def fail(key: str, problem: str) -> ConnectorConfigError:
        return ConnectorConfigError(name, key, problem, origin)

    mode = values["mode"]
    if (
        mode in ("incrementing", "timestamp+incrementing")
        and values["query"]
        and not values["incrementing.column.name"]
    ):
        raise fail("incrementing.column.name", f"required when mode is {mode} with a query (no table to look it up in)")
    if mode in ("timestamp", "timestamp+incrementing") and not values["timestamp.column.name"]:
        raise fail("timestamp.column.name", f"required when mode is {mode}")
    if values["query"]:
        if values["table.whitelist"] or values["table.blacklist"]:
            raise fail("query", "expected either query or table.whitelist/table.blacklist, not both")
    elif values["table.whitelist"] and values["table.blacklist"]:
        raise fail("table.blacklist", "expected table.whitelist or table.blacklist, not both")
    return SourceConnectorConfig(
        name=name,
        connection=_connection(values, name, origin),
        mode=mode,
        incrementing_column=values["incrementing.column.name"],
        timestamp_columns=values["timestamp.column.name"],
        table_whitelist=values["table.whitelist"],
        table_blacklist=values["table.blacklist"],
        query=values["query"],
        topic_prefix=values["topic.prefix"],
        batch_max_rows=values["batch.max.rows"],
        poll_interval_ms=values["poll.interval.ms"],
        timestamp_delay_interval_ms=values["timestamp.delay.interval.ms"],
        timestamp_initial=values["timestamp.initial"],
        db_timezone=values["db.timezone"],
        validate_non_null=values["validate.non.null"],
        numeric_mapping=values["numeric.mapping"],
        topic_partitions=values["topic.creation.default.partitions"],
        topic_replication_factor=values["topic.creation.default.replication.factor"],
        offsets_topic=values["offsets.storage.topic"] or os.environ.get("MUNGMO_OFFSETS_TOPIC", DEFAULT_OFFSETS_TOPIC),
        transaction_boundary=values["transaction.boundary"],
        transaction_interval_ms=values["transaction.boundary.interval.ms"],
        origin=origin,
    )


def _sink(name: str, values: dict[str, Any], origin: str) -> SinkConnectorConfig:
    def fail(key: str, problem: str) -> ConnectorConfigError:
        return ConnectorConfigError(name, key, problem, origin)

    if bool(values["topics"]) == bool(values["topics.regex"]):
        raise fail("topics", "expected exactly one of topics or topics.regex")
    if values["delete.enabled"] and values["pk.mode"] != "record_key":
        raise fail("delete.enabled", "requires pk.mode=record_key (tombstones carry only the key)")
    if values["insert.mode"] in ("upsert", "update") and values["pk.mode"] == "none":
        raise fail(
            "pk.mode",
            f"insert.mode={values['insert.mode']} needs a primary key: expected kafka, record_key or record_value",
        )
    if values["pk.mode"] == "kafka" and values["pk.fields"] and len(values["pk.fields"]) != 3:
        raise fail("pk.fields", "with pk.mode=kafka expected three names (topic, partition, offset) or none")
    for topic in values["topics"]:
        table = values["table.name.format"].replace("${topic}", topic)
        if not 0 < len(table) <= 64:
            raise fail(
                "table.name.format",
                f"makes table name {table!r} for topic {topic!r}: expected 1 to 64 characters (MariaDB's limit)",
            )
    if values["errors.tolerance"] == "all" and not values["errors.deadletterqueue.topic.name"]:
        raise fail(
            "errors.deadletterqueue.topic.name",
            "required when errors.tolerance=all: a bad record must go somewhere, never vanish",
        )
    if values["errors.deadletterqueue.topic.name"] in values["topics"]:
        raise fail("errors.deadletterqueue.topic.name", "expected a topic this connector does not read")
    return SinkConnectorConfig(
        name=name,
        connection=_connection(values, name, origin),
        topics=values["topics"],
        topics_regex=values["topics.regex"],
        table_name_format=values["table.name.format"],
        insert_mode=values["insert.mode"],
        pk_mode=values["pk.mode"],
        pk_fields=values["pk.fields"],
        fields_whitelist=values["fields.whitelist"],
        auto_create=values["auto.create"],
        auto_evolve=values["auto.evolve"],
        delete_enabled=values["delete.enabled"],
        batch_size=values["batch.size"],
        max_retries=values["max.retries"],
        retry_backoff_ms=values["retry.backoff.ms"],
        errors_tolerance=values["errors.tolerance"],
        dlq_topic=values["errors.deadletterqueue.topic.name"],
        dlq_replication_factor=values["errors.deadletterqueue.topic.replication.factor"],
        dlq_context_headers=values["errors.deadletterqueue.context.headers.enable"],
        errors_log=values["errors.log.enable"],
        errors_log_messages=values["errors.log.include.messages"],
        upsert_allow_other_unique_keys=values["upsert.allow.other.unique.keys"],
        db_timezone=values["db.timezone"],
        origin=origin,
    )


def parse_connector(body: Any, origin: str = "", environ: Mapping[str, str] | None = None) -> ConnectorConfig:
    """Validate one connector body, as POSTed to ``/connectors`` (or a bare config map)."""
    environ = os.environ if environ is None else environ
    unnamed = Path(origin).stem if origin else "<unnamed>"
    if not isinstance(body, dict):
        raise ConnectorConfigError(unnamed, None, 'expected a JSON object {"name": ..., "config": {...}}', origin)
    raw = body.get("config", body)
    if not isinstance(raw, dict):
        raise ConnectorConfigError(unnamed, "config", "expected a JSON object of options", origin)
    name = body.get("name") or raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConnectorConfigError(unnamed, "name", "expected a non-empty connector name", origin)
    if raw.get("name", name) != name:
        raise ConnectorConfigError(name, "config.name", f"expected the same name as the body ({name!r})", origin)
    connector_class = raw.get("connector.class")
    if connector_class in (SOURCE_CLASS, "JdbcSourceConnector"):
        return _source(name, _parse_options(raw, SOURCE_OPTIONS, name, origin, environ), origin)
    if connector_class in (SINK_CLASS, "JdbcSinkConnector"):
        return _sink(name, _parse_options(raw, SINK_OPTIONS, name, origin, environ), origin)
    raise ConnectorConfigError(
        name, "connector.class", f"expected {SOURCE_CLASS} or {SINK_CLASS}, got {connector_class!r}", origin
    )


@dataclass(frozen=True)
class Connectors:
    """Every connector of a directory, plus findings that are worth a look but not fatal."""

    sources: tuple[SourceConnectorConfig, ...]
    sinks: tuple[SinkConnectorConfig, ...]
    warnings: tuple[str, ...] = ()

    def all(self) -> tuple[ConnectorConfig, ...]:
        return (*self.sources, *self.sinks)


def connectors_dir() -> Path:
    configured = os.environ.get(CONNECTORS_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "connectors"


def load_connectors(directory: Path | None = None, environ: Mapping[str, str] | None = None) -> Connectors:
    """Every ``*.json`` body of ``directory``, validated; duplicate names are an error."""
    directory = connectors_dir() if directory is None else directory
    if not directory.is_dir():
        raise FileNotFoundError(f"connector directory {directory} does not exist (set {CONNECTORS_DIR_ENV})")
    parsed: list[ConnectorConfig] = []
    for path in sorted(directory.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConnectorConfigError(path.stem, None, f"not valid JSON: {err}", str(path)) from None
        parsed.append(parse_connector(body, str(path), environ))
    seen: dict[str, str] = {}
    for connector in parsed:
        if connector.name in seen:
            raise ConnectorConfigError(
                connector.name, "name", f"already used by {seen[connector.name]}", connector.origin
            )
        seen[connector.name] = connector.origin
    sources = tuple(c for c in parsed if isinstance(c, SourceConnectorConfig))
    sinks = tuple(c for c in parsed if isinstance(c, SinkConnectorConfig))
    return Connectors(sources, sinks, tuple(_orphan_topics(sources, sinks)))


def _orphan_topics(sources: tuple[SourceConnectorConfig, ...], sinks: tuple[SinkConnectorConfig, ...]) -> list[str]:
    """Sink topics that no source here produces: allowed (another producer may), but reported."""
    return [
        f"connector {sink.name!r}: topic {topic!r} is produced by no source connector in this directory"
        for sink in sinks
        for topic in sink.topics
        if not any(source.may_produce(topic) for source in sources)
    ]
