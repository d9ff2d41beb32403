"""Every ``MUNGMO_*`` environment variable: its default, what it does, and who reads it.

The project reads them here and nowhere else; ``scripts/stack`` (a shell script) reads its own
ones under the same names, listed here too so that one table documents them all
(``docs/stack.md`` is generated from :data:`SETTINGS`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Setting:
    """One environment variable; an empty value counts as unset."""

    name: str
    default: str | None
    doc: str
    read_by: str = "the project"

    def get(self, environ: Mapping[str, str] | None = None) -> str | None:
        value = (os.environ if environ is None else environ).get(self.name)
        return value if value else self.default

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name))


MARIADB_URL = Setting(
    "MUNGMO_MARIADB_URL",
    None,
    "`mysql+pymysql://user:password@host:port` of an existing MariaDB: every connector (and the expiry) is "
    "pointed at this server, keeping its own database; `scripts/stack` then starts no MariaDB",
)
MARIADB_PORT = Setting("MUNGMO_MARIADB_PORT", "3306", "port of the local stack's MariaDB (127.0.0.1)")
MARIADB_ADMIN_URL = Setting(
    "MUNGMO_MARIADB_ADMIN_URL",
    None,
    "an account that may create databases and users, for tests, benches and the demo's schema "
    "(default: root on the local stack's port)",
)
MARIADB_TLS_CA = Setting(
    "MUNGMO_MARIADB_TLS_CA",
    None,
    "PEM file of the CA that signed the MariaDB server's certificate, for the TLS tests (default: the CA "
    "`scripts/stack` makes, `.stack/mariadb/tls/ca.pem`)",
    "tests",
)
KAFKA_BOOTSTRAP = Setting(
    "MUNGMO_KAFKA_BOOTSTRAP",
    None,
    "`host:port[,host:port]` of an existing Kafka cluster; `scripts/stack` then starts no broker "
    "(default: the local stack's broker)",
)
KAFKA_PORT = Setting("MUNGMO_KAFKA_PORT", "9092", "port of the local stack's Kafka broker (127.0.0.1)")
KAFKA_CONTROLLER_PORT = Setting(
    "MUNGMO_KAFKA_CONTROLLER_PORT", "9093", "port of the local stack's KRaft controller", "scripts/stack"
)
DB_PASSWORD = Setting(
    "MUNGMO_DB_PASSWORD",
    None,
    "the database password the committed connector bodies reference as `${env:MUNGMO_DB_PASSWORD}`, and the "
    "expiry's password (the Makefile sets `mungmo-local-dev` for the local stack only)",
)
CONNECTORS_DIR = Setting(
    "MUNGMO_CONNECTORS_DIR", None, "directory of connector bodies (`*.json`) (default: `connectors/` of the project)"
)
OFFSETS_TOPIC = Setting(
    "MUNGMO_OFFSETS_TOPIC",
    "mungmo-connect-offsets",
    "compacted topic of source offsets for source connectors without `offsets.storage.topic`",
)
STATUS_TOPIC = Setting(
    "MUNGMO_STATUS_TOPIC",
    "mungmo-connect-status",
    "compacted topic of connector target states (running, paused, stopped), read by sensors, runs, the CLI and "
    "the REST endpoint (Kafka Connect keeps them in its config topic)",
)
STRICT_CONNECTORS = Setting(
    "MUNGMO_STRICT_CONNECTORS",
    None,
    "`1`: a connector file that does not validate fails the whole code location (`make check` sets it); "
    "otherwise it is left out and shown as FAILED",
)
SECRETS_FILE = Setting(
    "MUNGMO_SECRETS_FILE",
    None,
    "properties file (owner-only, git-ignored) where passwords POSTed in clear go, referenced from the connector "
    "body as `${file:<path>:<key>}` (default: `.secrets/connectors.properties` of the project)",
)
CONNECT_API_HOST = Setting("MUNGMO_CONNECT_API_HOST", "127.0.0.1", "bind address of `make connect-api`")
CONNECT_API_PORT = Setting("MUNGMO_CONNECT_API_PORT", "8083", "port of `make connect-api` (Kafka Connect's)")
CONNECT_API_USER = Setting(
    "MUNGMO_CONNECT_API_USER", None, "with `MUNGMO_CONNECT_API_PASSWORD`: HTTP basic auth on the REST endpoint"
)
CONNECT_API_PASSWORD = Setting("MUNGMO_CONNECT_API_PASSWORD", None, "the basic-auth password of that user")
DAGSTER_URL = Setting(
    "MUNGMO_DAGSTER_URL",
    None,
    "`http://host:port` of the Dagster webserver: connector add/update/delete reload its code location there and "
    "restart launches runs through it (without it, `dagster job launch` and the daemon's minute reload)",
)
MEMBERS_JDBC_URL = Setting(
    "MUNGMO_MEMBERS_JDBC_URL",
    "jdbc:mysql://localhost:3306/mungMo",
    "the neighbourhood-verification expiry's members database (moved to `MUNGMO_MARIADB_URL`'s server when set)",
)
VERIFICATION_EXPIRY_TOPIC = Setting(
    "MUNGMO_VERIFICATION_EXPIRY_TOPIC",
    "neighbourhood-verification-expired",
    "topic of the expiry's events, one per expired verification",
)
ASSET_OWNERS = Setting(
    "MUNGMO_ASSET_OWNERS",
    "team:mungmo",
    "owners shown on every asset in Dagster: comma-separated e-mail addresses or `team:<name>`",
)
STACK_TIMEOUT = Setting(
    "MUNGMO_STACK_TIMEOUT", "90", "seconds `scripts/stack up` waits for the servers to be ready", "scripts/stack"
)
STACK_STOP_TIMEOUT = Setting(
    "MUNGMO_STACK_STOP_TIMEOUT",
    "60",
    "seconds `scripts/stack down` waits after SIGTERM before SIGKILL",
    "scripts/stack",
)
STACK_LOG_LINES = Setting(
    "MUNGMO_STACK_LOG_LINES", "50", "lines `scripts/stack logs` prints without `-f`", "scripts/stack"
)
BENCH_DB_PASSWORD = Setting(
    "MUNGMO_BENCH_DB_PASSWORD",
    None,
    "set by `bench/latency.py` for the daemon it starts: the admin account's password its connectors reference",
    "bench/latency.py",
)
FAULT_INJECTION = Setting(
    "MUNGMO_FAULT_INJECTION",
    None,
    "tests only: `<point>:<n>` kills the process at the n-th time a commit protocol reaches `<point>` "
    "(see `core/faults.py`); never set it elsewhere",
    "tests",
)

SETTINGS: tuple[Setting, ...] = (
    MARIADB_URL,
    MARIADB_PORT,
    MARIADB_ADMIN_URL,
    MARIADB_TLS_CA,
    KAFKA_BOOTSTRAP,
    KAFKA_PORT,
    KAFKA_CONTROLLER_PORT,
    DB_PASSWORD,
    CONNECTORS_DIR,
    OFFSETS_TOPIC,
    STATUS_TOPIC,
    STRICT_CONNECTORS,
    SECRETS_FILE,
    CONNECT_API_HOST,
    CONNECT_API_PORT,
    CONNECT_API_USER,
    CONNECT_API_PASSWORD,
    DAGSTER_URL,
    MEMBERS_JDBC_URL,
    VERIFICATION_EXPIRY_TOPIC,
    ASSET_OWNERS,
    STACK_TIMEOUT,
    STACK_STOP_TIMEOUT,
    STACK_LOG_LINES,
    BENCH_DB_PASSWORD,
    FAULT_INJECTION,
)


def mariadb_server_url() -> str | None:
    """The server every connector is pointed at, or ``None`` to keep the connectors' own URLs."""
    if MARIADB_URL.is_set():
        return MARIADB_URL.get()
    port = MARIADB_PORT.get()
    return None if port == MARIADB_PORT.default else f"mysql+pymysql://127.0.0.1:{port}"


def mariadb_admin_url() -> str:
    return MARIADB_ADMIN_URL.get() or f"mysql+pymysql://root@127.0.0.1:{MARIADB_PORT.get()}/"


def mariadb_tls_ca() -> Path:
    configured = MARIADB_TLS_CA.get()
    return Path(configured) if configured else PROJECT_ROOT / ".stack" / "mariadb" / "tls" / "ca.pem"


def kafka_bootstrap() -> str:
    return KAFKA_BOOTSTRAP.get() or f"127.0.0.1:{KAFKA_PORT.get()}"


def connectors_dir() -> Path:
    configured = CONNECTORS_DIR.get()
    return Path(configured) if configured else PROJECT_ROOT / "connectors"


def offsets_topic() -> str:
    return OFFSETS_TOPIC.get() or "mungmo-connect-offsets"


def status_topic() -> str:
    return STATUS_TOPIC.get() or "mungmo-connect-status"


def strict_connectors() -> bool:
    return (STRICT_CONNECTORS.get() or "").strip().lower() in ("1", "true", "yes")


def secrets_file() -> Path:
    configured = SECRETS_FILE.get()
    return Path(configured) if configured else PROJECT_ROOT / ".secrets" / "connectors.properties"


def settings_markdown() -> str:
    """:data:`SETTINGS` as the table in ``docs/stack.md``."""
    lines = ["| variable | default | what it does | read by |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "—"
        lines.append(f"| `{setting.name}` | {default} | {setting.doc} | {setting.read_by} |")
    return "\n".join(lines)
