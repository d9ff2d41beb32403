"""Connector/J's TLS properties against the TLS-enabled MariaDB of ``scripts/stack``: TLS is used when the URL
asks for it, a certificate is verified against the CA it names, and a URL without them connects as before."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.base import JdbcConnectorConfig
from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.consistency import TableSpec, check_table
from mungmo_pipelines.core.errors import SinkError, SourceError
from mungmo_pipelines.core.mariadb.connection import create_engine, pymysql_arguments
from mungmo_pipelines.core.mariadb.session import connect
from mungmo_pipelines.core.sink.runtime import JdbcSink
from mungmo_pipelines.core.sink.writers import WriterSession
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from tests.support.sandbox import Sandbox
from tests.support.sink import member, new_case
from tests.support.source import payloads, source_config

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stack_ca() -> Path:
    ca = settings.mariadb_tls_ca()
    assert ca.is_file(), (
        f"no CA at {ca}: start the stack with scripts/stack up (it makes one) or set MUNGMO_MARIADB_TLS_CA"
    )
    return ca


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the server has."""
    directory = tmp_path_factory.mktemp("wrong-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not the stack CA",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "ca.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return directory / "ca.pem"


def engine_of(config: JdbcConnectorConfig) -> Engine:
    """The engine the Dagster resource makes for a connector: its connection, on the test server."""
    return create_engine(config.connection.on_server(settings.mariadb_server_url()).sqlalchemy_url())


def tls_cipher(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").one()[1])


def sink_config(sandbox: Sandbox, database: str, topic: str, properties: str) -> JdbcSinkConfig:
    url = f"{sandbox.jdbc_url(database)}?{properties}" if properties else sandbox.jdbc_url(database)
    config = parse_connector(
        sandbox.sink_body(database, topics=topic, **{"connection.url": url, "auto.create": "true"})
    )
    assert isinstance(config, JdbcSinkConfig)
    return config


def test_require_ssl_connects_with_tls_and_insists_on_it(sandbox: Sandbox) -> None:
    database = sandbox.database("tls")
    config = sink_config(sandbox, database, sandbox.topic("t"), "useSSL=true&requireSSL=true")
    assert tls_cipher(engine_of(config)) != ""
    # An ssl context (not PyMySQL's default of TLS only when offered): a server without TLS is refused.
    context = pymysql_arguments(config.connection.sqlalchemy_url().query)["ssl"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_NONE


def test_ssl_mode_disabled_connects_without_tls(sandbox: Sandbox) -> None:
    database = sandbox.database("tls")
    config = sink_config(sandbox, database, sandbox.topic("t"), "useSSL=false")
    assert tls_cipher(engine_of(config)) == ""


def test_without_tls_properties_the_driver_default_is_kept(sandbox: Sandbox) -> None:
    # PyMySQL's default, as Connector/J 8's: TLS when the server offers it, without verification.
    database = sandbox.database("tls")
    config = sink_config(sandbox, database, sandbox.topic("t"), "")
    assert "tls_" not in config.connection.sqlalchemy_url().render_as_string()
    assert tls_cipher(engine_of(config)) != ""


@pytest.mark.parametrize("mode", ["VERIFY_CA", "VERIFY_IDENTITY"])
def test_verification_against_the_stack_ca_connects(sandbox: Sandbox, stack_ca: Path, mode: str) -> None:
    database = sandbox.database("tls")
    config = sink_config(sandbox, database, sandbox.topic("t"), f"sslMode={mode}&serverSslCert={stack_ca}")
    assert tls_cipher(engine_of(config)) != ""


def test_tls_versions_are_enforced(sandbox: Sandbox) -> None:
    database = sandbox.database("tls")
    config = sink_config(sandbox, database, sandbox.topic("t"), "sslMode=REQUIRED&enabledTLSProtocols=TLSv1.2")
    with engine_of(config).connect() as conn:
        assert conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_version'").one()[1] == "TLSv1.2"


def test_a_wrong_ca_fails_the_run_with_a_clear_error_and_no_retries(sandbox: Sandbox, wrong_ca: Path) -> None:
    case = new_case(sandbox)
    case.produce([member(1, "a")])
    config = sink_config(sandbox, case.database, case.topic, f"sslMode=VERIFY_CA&serverSslCert={wrong_ca}")
    with pytest.raises(SinkError) as raised:
        JdbcSink(config, engine_of(config), sandbox.kafka).run()
    message = str(raised.value)
    assert message.startswith(f"connector {config.name!r}: MariaDB error 2003: TLS with the server failed: ")
    assert "certificate verify failed" in message and "serverSslCert" in message
    assert "max.retries" not in message, "a certificate does not get better by retrying"


def test_the_sink_writer_and_the_source_reader_use_the_url_tls(sandbox: Sandbox, stack_ca: Path) -> None:
    properties = f"sslMode=VERIFY_IDENTITY&serverSslCert={stack_ca}"
    case = new_case(sandbox)
    case.produce([member(1, "a"), member(2, "b")])
    config = sink_config(sandbox, case.database, case.topic, properties)
    engine = engine_of(config)
    session = WriterSession(engine, config)
    try:
        with session.connection().cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            assert cursor.fetchone()[1].startswith("TLSv1")
    finally:
        session.close()
    JdbcSink(config, engine, sandbox.kafka).run()
    assert [r[0] for r in case.rows()] == [1, 2]

    # The source reads the sink's table back, over a verified connection.
    source = source_config(
        sandbox,
        case.database,
        mode="bulk",
        **{"table.whitelist": case.topic, "connection.url": f"{sandbox.jdbc_url(case.database)}?{properties}"},
    )
    source_engine = engine_of(source)
    raw = connect(source_engine)
    try:
        with raw.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cursor.fetchone()[1] != ""
    finally:
        raw.close()
    run_jdbc_source(source, source_engine, sandbox.kafka)
    assert [p["seq"] for p in payloads(sandbox, source.topic_for(case.topic))] == [1, 2]


def test_a_source_whose_tls_fails_names_connector_and_reason(sandbox: Sandbox, wrong_ca: Path) -> None:
    database = sandbox.database("tls")
    url = f"{sandbox.jdbc_url(database)}?sslMode=VERIFY_CA&serverSslCert={wrong_ca}"
    source = source_config(sandbox, database, mode="bulk", **{"connection.url": url})
    with pytest.raises(SourceError) as raised:
        run_jdbc_source(source, engine_of(source), sandbox.kafka)
    assert str(raised.value).startswith(f"connector {source.name!r}, listing the tables of {database}: ")
    assert "TLS with the server failed: certificate verify failed" in str(raised.value)


def test_a_consistency_check_compares_over_the_connections_tls(sandbox: Sandbox, stack_ca: Path) -> None:
    """Both sides of a check connect as their connector's URL says, verified TLS included."""
    source_db, target_db = sandbox.database("src"), sandbox.database("dst")
    for database in (source_db, target_db):
        sandbox.execute(
            database, "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(10))", "INSERT INTO t VALUES (1, 'a')"
        )
    properties = f"sslMode=VERIFY_IDENTITY&serverSslCert={stack_ca}"
    source, target = (
        engine_of(sink_config(sandbox, database, sandbox.topic("t"), properties)) for database in (source_db, target_db)
    )
    assert tls_cipher(source) != ""
    result = check_table(source, target, TableSpec(source_db, "t", target_db, "t"))
    assert result.passed and result.stats.target_rows == 1, result.summary()
