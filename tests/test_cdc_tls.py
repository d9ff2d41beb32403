"""The CDC source over TLS (``database.ssl.mode``, ``database.ssl.truststore``) against the TLS-enabled MariaDB
of ``scripts/stack``: every connection of a run uses it, the binlog's included, and the server's certificate is
verified against the truststore's CA, a PEM file or a PKCS12 truststore as ``keytool`` makes it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.debezium_source import MARIADB_CONNECTOR_CLASS, DebeziumSourceConfig
from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.errors import ConnectorConfigError, MungmoError
from mungmo_pipelines.core.mariadb.binlog import ReplicaSettings
from mungmo_pipelines.core.mariadb.connection import SslMode, Tls, create_engine, server_of
from mungmo_pipelines.core.mariadb.session import admin_connection
from tests.support.cdc import Cdc
from tests.support.sandbox import Sandbox

PASSWORD = "tls-only-pw"


@pytest.fixture
def tls_only_user(sandbox: Sandbox) -> Iterator[str]:
    """A user the server lets in over TLS only (``REQUIRE SSL``), with a CDC source's grants on the sandbox."""
    name = f"mungmo_test_{uuid.uuid4().hex[:8]}"
    admin = admin_connection()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL")
        cursor.execute(f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{name}'@'%'")
        cursor.execute(f"GRANT SELECT ON `mungmo\\_test\\_{sandbox.suffix}\\_%`.* TO '{name}'@'%'")
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER '{name}'@'%'")
        admin.close()


@pytest.fixture(scope="module")
def stack_ca() -> Path:
    ca = settings.mariadb_tls_ca()
    assert ca.is_file(), f"no CA at {ca}: scripts/stack up makes one (or set MUNGMO_MARIADB_TLS_CA)"
    return ca


def keytool(*args: str) -> None:
    subprocess.run(["keytool", "-noprompt", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def truststores(stack_ca: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The stack's CA as keytool stores it: PKCS12 (its default type) and JKS; and a CA that signed nothing."""
    directory = tmp_path_factory.mktemp("truststores")
    for kind in ("PKCS12", "JKS"):
        keytool("-importcert", "-alias", "stack-ca", "-file", str(stack_ca), "-storetype", kind,
                "-keystore", str(directory / f"truststore.{kind.lower()}"), "-storepass", "changeit")  # fmt: skip
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not the stack CA",
         "-keyout", str(directory / "wrong-key.pem"), "-out", str(directory / "wrong-ca.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return {
        "pem": stack_ca,
        "pkcs12": directory / "truststore.pkcs12",
        "jks": directory / "truststore.jks",
        "wrong": directory / "wrong-ca.pem",
    }


def tls_cdc(sandbox: Sandbox, user: str, **options: str) -> tuple[Cdc, str]:
    database = sandbox.database("src")
    sandbox.execute(
        database,
        "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20))",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    )
    login = {"database.user": user, "database.password": PASSWORD}
    return Cdc(sandbox, [database], {**login, **options}), database


def test_every_connection_of_a_run_uses_tls_the_binlogs_too(sandbox: Sandbox, tls_only_user: str) -> None:
    cdc, database = tls_cdc(sandbox, tls_only_user, **{"database.ssl.mode": "trust"})
    assert cdc.run().stats.events == {"r": 2}
    sandbox.execute(database, "INSERT INTO t VALUES (3, 'c')", "UPDATE t SET note = 'z' WHERE id = 1")
    # Streaming reads the binlog on a replica connection: the server refuses it without TLS for this user.
    assert cdc.run().stats.events == {"c": 1, "u": 1}
    with pytest.raises(
        MungmoError, match=rf"^connector '{cdc.body()['name']}', server .*: MariaDB error 1045: Access denied"
    ):
        cdc.run(**{"database.ssl.mode": "disable"})


@pytest.mark.parametrize("store", ["pem", "pkcs12"])
def test_verify_full_against_the_truststores_ca(
    sandbox: Sandbox, tls_only_user: str, truststores: dict[str, Path], store: str
) -> None:
    options = {"database.ssl.mode": "verify-full", "database.ssl.truststore": str(truststores[store])}
    if store == "pkcs12":
        options["database.ssl.truststore.password"] = "changeit"
    cdc, database = tls_cdc(sandbox, tls_only_user, **options)
    assert cdc.run().stats.events == {"r": 2}
    sandbox.execute(database, "DELETE FROM t WHERE id = 2")
    assert cdc.run().stats.events == {"d": 1}


def test_a_certificate_the_ca_did_not_sign_fails_the_run_by_name(
    sandbox: Sandbox, tls_only_user: str, truststores: dict[str, Path]
) -> None:
    options = {"database.ssl.mode": "verify-ca", "database.ssl.truststore": str(truststores["wrong"])}
    cdc, _ = tls_cdc(sandbox, tls_only_user, **options)
    with pytest.raises(
        MungmoError, match=r"certificate verify failed.*\(see database\.ssl\.mode and database\.ssl\.truststore\)"
    ):
        cdc.run()


def test_truststores_that_cannot_be_used_are_refused_at_load_by_field(
    sandbox: Sandbox, truststores: dict[str, Path]
) -> None:
    cdc = Cdc(sandbox, ["db"])
    with pytest.raises(ConnectorConfigError, match=r"database\.ssl\.truststore.*JKS truststore cannot be read here"):
        cdc.config(**{"database.ssl.mode": "verify-ca", "database.ssl.truststore": str(truststores["jks"])})
    with pytest.raises(ConnectorConfigError, match=r"database\.ssl\.truststore.*PKCS12 truststore whose password"):
        cdc.config(
            **{
                "database.ssl.mode": "verify-ca",
                "database.ssl.truststore": str(truststores["pkcs12"]),
                "database.ssl.truststore.password": "wrong",
            }
        )
    with pytest.raises(ConnectorConfigError, match=r"database\.ssl\.truststore.*expected verify-ca or verify-full"):
        cdc.config(**{"database.ssl.mode": "trust", "database.ssl.truststore": str(truststores["pem"])})
    with pytest.raises(ConnectorConfigError, match=r"database\.ssl\.truststore.*No such file"):
        cdc.config(**{"database.ssl.mode": "verify-ca", "database.ssl.truststore": "/nonexistent/ca.pem"})


def test_the_checks_and_repairs_beside_a_source_keep_its_tls(tmp_path: Path) -> None:
    """A consistency check's binlog read and a CDC repair connect to the server of the source's engine
    (``server_of``): with the source's TLS, not the driver's default."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n(read when a connection opens)\n-----END CERTIFICATE-----\n")
    config = parse_connector(
        {
            "name": "tls-source",
            "config": {
                "connector.class": MARIADB_CONNECTOR_CLASS,
                "database.hostname": "db.example",
                "database.user": "mungmo",
                "database.server.id": "184054",
                "topic.prefix": "mungmo",
                "database.ssl.mode": "verify-full",
                "database.ssl.truststore": str(ca),
            },
        }
    )
    assert isinstance(config, DebeziumSourceConfig)
    server = server_of(create_engine(config.connection.sqlalchemy_url()))
    assert server.tls == config.tls == Tls(SslMode.VERIFY_IDENTITY, str(ca))
    assert ReplicaSettings.of(server, 1).tls == config.tls
