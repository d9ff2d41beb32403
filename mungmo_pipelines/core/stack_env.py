"""Where MariaDB and Kafka are, from the same variables ``scripts/stack`` reads.

``MUNGMO_MARIADB_URL`` / ``MUNGMO_KAFKA_BOOTSTRAP`` name existing servers; otherwise the local
stack is on 127.0.0.1 at ``MUNGMO_MARIADB_PORT`` (3306) and ``MUNGMO_KAFKA_PORT`` (9092).
"""

from __future__ import annotations

import os


def mariadb_port() -> str:
    return os.environ.get("MUNGMO_MARIADB_PORT", "3306")


def mariadb_server_url() -> str | None:
    """The server every connector is pointed at, or ``None`` to keep the connectors' own URLs."""
    if os.environ.get("MUNGMO_MARIADB_URL"):
        return os.environ["MUNGMO_MARIADB_URL"]
    port = mariadb_port()
    return None if port == "3306" else f"mysql+pymysql://127.0.0.1:{port}"


def mariadb_admin_url() -> str:
    """An account that may create databases and users (tests, the demo's schema)."""
    return os.environ.get("MUNGMO_MARIADB_ADMIN_URL", f"mysql+pymysql://root@127.0.0.1:{mariadb_port()}/")


def kafka_bootstrap() -> str:
    return os.environ.get("MUNGMO_KAFKA_BOOTSTRAP") or f"127.0.0.1:{os.environ.get('MUNGMO_KAFKA_PORT', '9092')}"
