"""Every error the project raises on purpose, in one hierarchy.

Each message names what failed (connector, field, record, table) and what was expected, so an
operator can act on it without a traceback. ``except MungmoError`` catches exactly these.
"""

from __future__ import annotations


class MungmoError(Exception):
    """A failure this project detected and explained (as opposed to a bug)."""


class ConnectorConfigError(MungmoError, ValueError):
    """A connector body that cannot run; the message names connector, field and expectation."""

    def __init__(self, connector: str, field_name: str | None, problem: str, origin: str = "") -> None:
        where = f" ({origin})" if origin else ""
        subject = f"field {field_name!r}: " if field_name else ""
        super().__init__(f"connector {connector!r}{where}: {subject}{problem}")
        self.connector = connector
        self.field_name = field_name
        self.problem = problem
        self.origin = origin


class ConnectorLoadErrors(MungmoError, ValueError):
    """Strict mode: connector files that did not load, every one named."""

    def __init__(self, errors: tuple[ConnectorConfigError, ...]) -> None:
        super().__init__(f"{len(errors)} connector file(s) did not load:\n" + "\n".join(f"  {e}" for e in errors))
        self.errors = errors


class ConfigProviderError(MungmoError, ValueError):
    """A ``${provider:…}`` reference in an option value that cannot be resolved; names provider, file and key."""


# --- the record formats --------------------------------------------------------------------


class MalformedRecord(MungmoError, ValueError):
    """A Kafka record that is not an envelope this project can read."""


class UnsupportedColumnType(MungmoError, ValueError):
    """A column or field whose type has no mapping to the other side."""


class ConnectValueError(MungmoError, ValueError):
    """A payload value that its field's Connect type cannot hold."""


# --- runs ------------------------------------------------------------------------------------


class SourceError(MungmoError, RuntimeError):
    """A source run that cannot go on; the message names the connector and table."""


class SinkError(MungmoError, RuntimeError):
    """Stops a sink run: a problem no retry or dead-letter topic can fix, named with its connector."""


class TableNameError(SinkError):
    """``table.name.format`` made a name MariaDB cannot have."""


class TableSchemaError(SinkError):
    """A target table the records cannot be written to without loss; names table, column and types."""


class OffsetConflict(SinkError):
    """The stored offsets moved under a run: another process wrote for the same connector."""


class RecordRejected(MungmoError):
    """A record a sink cannot write; ``stage`` says where it failed, as Kafka Connect would."""

    def __init__(self, stage: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.cause = cause


# --- operations (Kafka Connect's REST API) --------------------------------------------------


class OperationError(MungmoError):
    """An operation refused the way Kafka Connect's REST API refuses it; ``status`` is that HTTP status."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(OperationError, ValueError):
    status = 400


class NotFound(OperationError, LookupError):
    status = 404


class Conflict(OperationError):
    """The name is taken (Kafka Connect's ``AlreadyExistsException``), or a run is still going."""

    status = 409


class ConsistencyError(MungmoError, ValueError):
    """A comparison that cannot run: a missing table or column, an unknown time zone, a column
    whose type cannot hold what the pipeline carries. The message names the side, table and column."""


class KafkaUnavailable(MungmoError):
    """No Kafka broker could be reached: which servers, since when (``time.monotonic()``) and the client's reason.

    Raised inside a run; the run retries by ``errors.retry.timeout`` and then fails with a
    :class:`SourceError` or :class:`SinkError` saying for how long the brokers were unreachable.
    """

    def __init__(self, servers: str, since: float, reason: str) -> None:
        super().__init__(f"Kafka broker(s) {servers} unreachable: {reason}")
        self.servers = servers
        self.since = since
        self.reason = reason


# --- the named lock and the expiry -----------------------------------------------------------


class LockLost(MungmoError):
    """The lock's connection went away (lease expired, server restart): stop before doing more work."""


class MembersTableError(MungmoError, ValueError):
    """The configured members table or columns do not exist; the message names the setting."""


class EventPublishError(MungmoError, RuntimeError):
    """Kafka refused a batch of expiry events; they stay in the outbox for the next run."""
