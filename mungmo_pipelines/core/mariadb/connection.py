"""Where a database lives: a Kafka Connect JDBC URL (``jdbc:mysql://host:port/db?props``) as an SQLAlchemy URL.

The URL's properties are Connector/J's (``jdbc:mysql://``) or MariaDB Connector/J's (``jdbc:mariadb://``).
``user`` and ``password`` are read; the TLS ones map to PyMySQL's TLS settings (:class:`Tls`); a few
that change nothing here are accepted (:data:`NO_EFFECT`); any other property is refused by name, so a
URL never connects differently from what it says.

TLS travels in the SQLAlchemy URL's query (``tls_*``), so every engine and every raw connection made from
it (:func:`create_engine`, ``session.connect``) connects the same way; :func:`pymysql_arguments` turns
those keys into PyMySQL's.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import sqlalchemy
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, make_url

from mungmo_pipelines.core.secret import Secret

_TLS_QUERY = ("tls_mode", "tls_ca_file", "tls_ca_pem", "tls_versions")


class SslMode(StrEnum):
    """Connector/J's ``sslMode``: how much TLS a connection insists on."""

    DISABLED = "DISABLED"
    PREFERRED = "PREFERRED"  # TLS when the server offers it, unverified (Connector/J's and PyMySQL's default)
    REQUIRED = "REQUIRED"  # TLS or no connection; the certificate is not checked
    VERIFY_CA = "VERIFY_CA"  # and the certificate is signed by the CA
    VERIFY_IDENTITY = "VERIFY_IDENTITY"  # and names the host connected to


# MariaDB Connector/J's sslMode values.
_MARIADB_SSL_MODES = {
    "disable": SslMode.DISABLED,
    "trust": SslMode.REQUIRED,
    "verify-ca": SslMode.VERIFY_CA,
    "verify-full": SslMode.VERIFY_IDENTITY,
}
_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}

# Properties read as TLS settings (Connector/J 8 names, then MariaDB Connector/J's).
TLS_PROPERTIES = (
    "sslMode",
    "useSSL",
    "requireSSL",
    "verifyServerCertificate",
    "enabledTLSProtocols",
    "tlsVersions",
    "useSsl",
    "trustServerCertificate",
    "disableSslHostnameVerification",
    "serverSslCert",
    "enabledSslProtocolSuites",
)
# Properties accepted with no effect, with the values that have none: what each would change is fixed here.
NO_EFFECT = {
    "characterEncoding": ("utf8", "utf-8", "utf8mb4"),  # the connection is always utf8mb4
    "useUnicode": ("true",),
    "serverTimezone": ("utc", "gmt", "etc/utc", "+00:00", "z"),  # TIMESTAMPs are read in UTC; DATETIMEs in db.timezone
}
_REFUSED_WITH_REASON = {
    "trustCertificateKeyStoreUrl": "a Java keystore cannot be read here; give the CA's PEM file as serverSslCert",
    "clientCertificateKeyStoreUrl": "client certificates (keystores) are not supported",
    "zeroDateTimeBehavior": "it changes what zero dates become; the source reads them as MariaDB returns them",
}


@dataclass(frozen=True)
class Tls:
    """A connection's TLS: the mode, the CA to verify with (a PEM file or PEM text), the protocol versions."""

    mode: SslMode = SslMode.PREFERRED
    ca_file: str | None = None
    ca_pem: str | None = None
    versions: tuple[str, ...] = ()

    def query(self) -> dict[str, str]:
        """The ``tls_*`` keys of the SQLAlchemy URL; none for the default (PyMySQL's own PREFERRED)."""
        if self == Tls():
            return {}
        values = {
            "tls_mode": self.mode.value,
            "tls_ca_file": self.ca_file or "",
            "tls_ca_pem": self.ca_pem or "",
            "tls_versions": ",".join(self.versions),
        }
        return {key: value for key, value in values.items() if value}

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> Tls:
        versions = str(query.get("tls_versions") or "")
        return cls(
            SslMode(query.get("tls_mode") or SslMode.PREFERRED),
            query.get("tls_ca_file") or None,
            query.get("tls_ca_pem") or None,
            tuple(versions.split(",")) if versions else (),
        )

    def pymysql_arguments(self) -> dict[str, Any]:
        """PyMySQL's arguments for this TLS: none (PREFERRED), ``ssl_disabled``, or an ``ssl`` context."""
        if self.mode is SslMode.PREFERRED:
            return {}
        if self.mode is SslMode.DISABLED:
            return {"ssl_disabled": True}
        return {"ssl": _ssl_context(self)}


@functools.lru_cache(maxsize=32)
def _ssl_context(tls: Tls) -> ssl.SSLContext:
    """One context per TLS setting, shared by every connection that uses it (contexts are thread-safe)."""
    verify = tls.mode in (SslMode.VERIFY_CA, SslMode.VERIFY_IDENTITY)
    if verify:
        context = ssl.create_default_context(cafile=tls.ca_file, cadata=tls.ca_pem)
        # Self-signed CAs of MariaDB's own tooling lack extensions Python 3.13's strict check wants (as PyMySQL).
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        context.check_hostname = tls.mode is SslMode.VERIFY_IDENTITY
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.versions:
        ordered = sorted(_TLS_VERSIONS[v] for v in tls.versions)
        context.minimum_version, context.maximum_version = ordered[0], ordered[-1]
    return context


def pymysql_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """PyMySQL ``connect()`` arguments from SQLAlchemy's, with the URL's ``tls_*`` keys made PyMySQL's own."""
    plain = {key: value for key, value in arguments.items() if key not in _TLS_QUERY}
    return {**plain, **Tls.from_query(arguments).pymysql_arguments()}


def create_engine(url: URL, **options: Any) -> Engine:
    """An SQLAlchemy engine whose connections use the TLS the URL's ``tls_*`` keys ask for.

    Every engine on a connector's database is made here: ``sqlalchemy.create_engine`` alone would
    hand the ``tls_*`` keys to PyMySQL, which refuses them, so TLS cannot be dropped by accident.
    """
    engine = sqlalchemy.create_engine(url, **options)

    @event.listens_for(engine, "do_connect")
    def with_tls(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        converted = pymysql_arguments(cparams)
        cparams.clear()
        cparams.update(converted)

    return engine


@dataclass(frozen=True)
class JdbcConnection:
    """Where a connector's database lives, from ``connection.url``/``user``/``password``."""

    host: str
    port: int
    database: str
    user: str | None
    password: Secret | None = field(default=None, repr=False)
    tls: Tls = Tls()

    @classmethod
    def from_jdbc_url(cls, url: str, user: str | None = None, password: Secret | None = None) -> JdbcConnection:
        """The database of a JDBC URL; ``user`` and ``password``, when given, win over the URL's own."""
        parsed = parse_jdbc_url(url)
        return replace(parsed, user=user or parsed.user, password=password or parsed.password)

    def sqlalchemy_url(self) -> URL:
        return URL.create(
            "mysql+pymysql",
            username=self.user,
            password=self.password.reveal() if self.password else None,
            host=self.host,
            port=self.port,
            database=self.database,
            query={"charset": "utf8mb4", **self.tls.query()},
        )

    def on_server(self, server_url: str | None) -> JdbcConnection:
        """Point this connection at another server (``MUNGMO_MARIADB_URL``), keeping the database and TLS.

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


def server_of(engine: Engine) -> JdbcConnection:
    """The server, account and TLS ``engine`` connects with (no database), for the connections a reader of
    the binary log opens beside the engine's own."""
    url = engine.url
    password = Secret(url.password) if url.password else None
    return JdbcConnection(
        url.host or "localhost", url.port or 3306, "", url.username, password, Tls.from_query(url.query)
    )


def parse_jdbc_url(url: str) -> JdbcConnection:
    """``jdbc:mysql://host:port/db?k=v`` (or ``jdbc:mariadb://``) to a connection; ``ValueError`` says what is wrong."""
    scheme, _, rest = url.strip().partition("://")
    if scheme not in ("jdbc:mysql", "jdbc:mariadb"):
        raise ValueError("expected jdbc:mysql://host[:port]/database or jdbc:mariadb://host[:port]/database")
    address, _, query = rest.partition("?")
    hosts, _, database = address.partition("/")
    if not hosts or "," in hosts:
        raise ValueError("expected exactly one host (failover and load-balanced host lists are not supported)")
    host, _, port = hosts.rpartition(":") if ":" in hosts else (hosts, "", "3306")
    if not port.isdigit():
        raise ValueError(f"expected a numeric port, got {port!r}")
    database = unquote(database)
    if not database:
        raise ValueError("expected a database name after the host, as in jdbc:mysql://localhost:3306/mungMo")
    props = dict(parse_qsl(query, keep_blank_values=True))
    for name, value in props.items():
        _check_property(name, value)
    password = props.get("password")
    return JdbcConnection(
        host,
        int(port),
        database,
        props.get("user") or None,
        Secret(password) if password else None,
        tls_from_properties(props, mariadb_driver=scheme == "jdbc:mariadb"),
    )


def _check_property(name: str, value: str) -> None:
    if name in ("user", "password") or name in TLS_PROPERTIES:
        return
    if name in _REFUSED_WITH_REASON:
        raise ValueError(f"URL property {name!r} is not supported: {_REFUSED_WITH_REASON[name]}")
    if name in NO_EFFECT:
        if value.lower() not in NO_EFFECT[name]:
            raise ValueError(f"URL property {name}={value!r} is not supported: expected one of {NO_EFFECT[name]}")
        return
    raise ValueError(
        f"URL property {name!r} is not supported (expected user, password, the TLS properties "
        f"{', '.join(TLS_PROPERTIES)}, or {', '.join(NO_EFFECT)} with no effect)"
    )


def _flag(props: Mapping[str, str], *names: str) -> bool | None:
    """A boolean property under any of ``names``; ``None`` when none is given."""
    for name in names:
        if name in props:
            value = props[name].strip().lower()
            if value not in _BOOLEANS:
                raise ValueError(f"URL property {name!r}: expected true or false, got {props[name]!r}")
            return _BOOLEANS[value]
    return None


def tls_from_properties(props: Mapping[str, str], mariadb_driver: bool = False) -> Tls:
    """The TLS a JDBC URL's properties ask for, as Connector/J 8 and MariaDB Connector/J 3 read them.

    An explicit ``sslMode`` wins. Without it: ``useSSL=false`` disables TLS; ``trustServerCertificate``
    asks for TLS without verification; ``verifyServerCertificate`` or ``disableSslHostnameVerification``
    for VERIFY_CA; ``requireSSL`` for REQUIRED; ``useSSL=true`` alone is PREFERRED for Connector/J and
    VERIFY_IDENTITY for MariaDB Connector/J (``jdbc:mariadb://``); nothing is PREFERRED.
    """
    mode = _ssl_mode(props, mariadb_driver)
    ca_file, ca_pem = _server_certificate(props.get("serverSslCert", ""))
    versions = _tls_versions(props)
    if (ca_file or ca_pem) and mode not in (SslMode.VERIFY_CA, SslMode.VERIFY_IDENTITY):
        raise ValueError(
            f"URL property 'serverSslCert' is a CA to verify the server with, but the TLS mode is {mode}: "
            "expected sslMode=VERIFY_CA or VERIFY_IDENTITY with it"
        )
    if versions and mode in (SslMode.DISABLED, SslMode.PREFERRED):
        raise ValueError(
            f"TLS protocol versions {','.join(versions)} cannot be enforced with TLS mode {mode}: "
            "expected sslMode=REQUIRED, VERIFY_CA or VERIFY_IDENTITY with them"
        )
    return Tls(mode, ca_file, ca_pem, versions)


def _ssl_mode(props: Mapping[str, str], mariadb_driver: bool) -> SslMode:
    if "sslMode" in props:
        value = props["sslMode"].strip()
        if value.upper() in SslMode.__members__:
            return SslMode[value.upper()]
        if value.lower() in _MARIADB_SSL_MODES:
            return _MARIADB_SSL_MODES[value.lower()]
        raise ValueError(
            f"URL property 'sslMode': expected one of {', '.join(SslMode)} (or MariaDB Connector/J's "
            f"{', '.join(_MARIADB_SSL_MODES)}), got {value!r}"
        )
    use_ssl = _flag(props, "useSSL", "useSsl")
    if use_ssl is False:
        return SslMode.DISABLED
    if _flag(props, "trustServerCertificate"):
        return SslMode.REQUIRED
    if _flag(props, "verifyServerCertificate") or (use_ssl and _flag(props, "disableSslHostnameVerification")):
        return SslMode.VERIFY_CA
    if _flag(props, "requireSSL"):
        return SslMode.REQUIRED
    if use_ssl and mariadb_driver:
        return SslMode.VERIFY_IDENTITY
    return SslMode.PREFERRED


def _server_certificate(value: str) -> tuple[str | None, str | None]:
    """MariaDB Connector/J's ``serverSslCert``: a PEM file's path, or the PEM text itself."""
    if not value:
        return None, None
    if value.lstrip().startswith("-----BEGIN"):
        return None, value
    if value.startswith("classpath:"):
        raise ValueError("URL property 'serverSslCert': classpath: resources are Java's; give a file path")
    path = Path(value.removeprefix("file://").removeprefix("file:"))
    if not path.is_file():
        raise ValueError(f"URL property 'serverSslCert': no CA certificate file {str(path)!r}")
    return str(path), None


def read_truststore(path: str, password: Secret | None) -> tuple[str | None, str | None]:
    """The CA certificates of a truststore as ``(ca_file, ca_pem)``: a PEM file as itself, a PKCS12
    truststore (``keytool``'s default type since Java 9) as PEM text. A JKS one cannot be read here."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return path, None
    if data[:4] == b"\xfe\xed\xfe\xed":
        raise ValueError(
            "a JKS truststore cannot be read here: convert it (keytool -importkeystore -srckeystore "
            f"{path} -destkeystore truststore.p12 -deststoretype PKCS12) or give the CA's PEM file"
        )
    try:
        store = pkcs12.load_pkcs12(data, password.reveal().encode() if password else None)
    except ValueError:
        raise ValueError(
            "expected a PEM file or a PKCS12 truststore whose password is the truststore password"
        ) from None
    certificates = [c.certificate for c in store.additional_certs] + ([store.cert.certificate] if store.cert else [])
    if not certificates:
        raise ValueError("the truststore holds no certificate")
    return None, "".join(c.public_bytes(Encoding.PEM).decode() for c in certificates)


def _tls_versions(props: Mapping[str, str]) -> tuple[str, ...]:
    for name in ("tlsVersions", "enabledTLSProtocols", "enabledSslProtocolSuites"):
        if name in props:
            versions = tuple(v.strip() for v in props[name].split(",") if v.strip())
            unknown = [v for v in versions if v not in _TLS_VERSIONS]
            if unknown or not versions:
                raise ValueError(
                    f"URL property {name!r}: expected a comma list of {', '.join(_TLS_VERSIONS)}, got {props[name]!r}"
                )
            return versions
    return ()
