"""Where a database lives: a Kafka Connect JDBC URL (``jdbc:mysql://host:port/db``) as an SQLAlchemy URL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote

from sqlalchemy.engine import URL, make_url

from mungmo_pipelines.core.secret import Secret

_JDBC_URL = re.compile(
    r"^jdbc:(?P<scheme>mysql|mariadb)://(?P<hosts>[^/?]*)(?:/(?P<database>[^?]*))?(?:\?(?P<props>.*))?$"
)


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
