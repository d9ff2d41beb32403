"""Bad input in connector bodies, refused when they load and named by connector and field: integer bounds
(Kafka Connect's ConfigDef types), topic names (Kafka's rule), config provider references, JDBC URL properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.loader import load_connectors, parse_connector
from mungmo_pipelines.core.config.options import INT_MAX, LONG_MAX, SHORT_MAX, Int, options_of
from mungmo_pipelines.core.config.providers import parse_properties, resolve_references
from mungmo_pipelines.core.errors import ConfigProviderError, ConnectorConfigError, SourceError
from mungmo_pipelines.core.mariadb.connection import SslMode, Tls, parse_jdbc_url
from mungmo_pipelines.core.source.jdbc import resolve_tables
from tests.support.seed import COMMITTED_SINK as SEED_SINK
from tests.support.seed import COMMITTED_SOURCE as SEED_SOURCE
from tests.support.seed import ENV


def body(seed: dict[str, Any], **changes: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(seed))
    copy["config"].update(changes)
    return copy


def refused(seed: dict[str, Any], field: str, environ: dict[str, str] | None = None, **changes: str) -> str:
    """The error message of ``seed`` with ``changes``, which must name the connector and ``field``."""
    with pytest.raises(ConnectorConfigError) as raised:
        parse_connector(body(seed, **changes), origin="connectors/x.json", environ=environ or ENV)
    assert raised.value.field_name == field, str(raised.value)
    assert str(raised.value).startswith(f"connector {seed['name']!r} (connectors/x.json): field {field!r}: ")
    return str(raised.value)


# --- integers: Kafka Connect's ConfigDef type of each option, and its range -----------------

# Option -> (ConfigDef type, least value). Kafka Connect's ranges where it declares one (tasks.max, max.retries,
# retry.backoff.ms at least 0, transaction.boundary.interval.ms at least 0, errors.retry.timeout -1 for ever);
# batch.max.rows, poll.interval.ms, batch.size and the partitions and replication factors are at least 1 here,
# where Kafka Connect declares no range or also takes values that would read or write nothing.
KAFKA_CONNECT_INTEGERS = {
    "tasks.max": ("INT", 1),
    "batch.max.rows": ("INT", 1),
    "poll.interval.ms": ("INT", 1),
    "timestamp.delay.interval.ms": ("LONG", 0),
    "transaction.boundary.interval.ms": ("LONG", 0),
    "topic.creation.default.partitions": ("INT", 1),
    "topic.creation.default.replication.factor": ("SHORT", 1),
    "batch.size": ("INT", 1),
    "max.retries": ("INT", 0),
    "retry.backoff.ms": ("INT", 0),
    "errors.deadletterqueue.topic.replication.factor": ("SHORT", 1),
    "errors.retry.timeout": ("LONG", -1),
    "errors.retry.delay.max.ms": ("LONG", 0),
}
MAXIMUM = {"SHORT": SHORT_MAX, "INT": INT_MAX, "LONG": LONG_MAX}


def integer_options() -> list[tuple[dict[str, Any], str]]:
    return [
        (seed, name)
        for seed, config_class in ((SEED_SOURCE, JdbcSourceConfig), (SEED_SINK, JdbcSinkConfig))
        for name, declared in options_of(config_class).items()
        if isinstance(declared.kind, Int)
    ]


def test_every_integer_option_is_one_of_kafka_connects() -> None:
    names = {name for _, name in integer_options()}
    assert names == set(KAFKA_CONNECT_INTEGERS)


@pytest.mark.parametrize(("seed", "name"), integer_options(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_integer_options_take_their_kafka_connect_range_and_nothing_beyond(seed: dict[str, Any], name: str) -> None:
    java_type, least = KAFKA_CONNECT_INTEGERS[name]
    most = MAXIMUM[java_type]
    config = parse_connector(body(seed, **{name: str(most)}), environ=ENV)
    assert getattr(config, options_of(type(config))[name].attribute) == most
    for outside in (most + 1, least - 1):
        message = refused(seed, name, **{name: str(outside)})
        assert f"expected an integer from {least} to {most}, got {outside}" in message


def test_batch_max_rows_beyond_a_java_int_is_refused() -> None:
    message = refused(SEED_SOURCE, "batch.max.rows", **{"batch.max.rows": "99999999999999"})
    assert "expected an integer from 1 to 2147483647, got 99999999999999" in message


# --- topic names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "field", "changes", "expected"),
    [
        (SEED_SOURCE, "topic.prefix", {"topic.prefix": "bad topic!/"}, "has characters Kafka refuses (' !/')"),
        (
            SEED_SOURCE,
            "topic.prefix",
            {"topic.prefix": "p" * 243},
            "topic.prefix '" + "p" * 243 + "' + table 'test001': topic name",
        ),
        (SEED_SOURCE, "topic.prefix", {"topic.prefix": "bad topic!/", "table.whitelist": ""}, "topic prefix"),
        (SEED_SOURCE, "topic.prefix", {"topic.prefix": "p" * 249, "table.whitelist": ""}, "at most 249"),
        (
            SEED_SOURCE,
            "topic.prefix",
            {"topic.prefix": "..", "table.whitelist": "", "query": "SELECT 1"},
            "with query, the prefix is the topic: '..' is not a legal topic name",
        ),
        (SEED_SOURCE, "topic.prefix", {"topic.prefix": "", "table.whitelist": "", "query": "SELECT 1"}, "empty"),
        (SEED_SOURCE, "offsets.storage.topic", {"offsets.storage.topic": "offsets/v1"}, "('/')"),
        (SEED_SINK, "topics", {"topics": "ok,not ok"}, "topic name 'not ok' has characters Kafka refuses (' ')"),
        (SEED_SINK, "topics", {"topics": "t" * 250}, "is 250 characters; Kafka allows at most 249"),
        (
            SEED_SINK,
            "errors.deadletterqueue.topic.name",
            {"errors.tolerance": "all", "errors.deadletterqueue.topic.name": "dlq#1"},
            "('#')",
        ),
    ],
)
def test_topic_names_kafka_would_refuse_are_named_by_field(
    seed: dict[str, Any], field: str, changes: dict[str, str], expected: str
) -> None:
    assert expected in refused(seed, field, **changes)


def test_legal_topic_names_of_249_characters_load() -> None:
    config = parse_connector(body(SEED_SOURCE, **{"topic.prefix": "a.b-c_" + "p" * 236}), environ=ENV)
    assert isinstance(config, JdbcSourceConfig)
    assert len(config.topic_for("test001")) == 249


def test_a_bad_prefix_is_named_by_connector_and_field_when_the_directory_loads(tmp_path: Path) -> None:
    (tmp_path / "source.json").write_text(json.dumps(body(SEED_SOURCE, **{"topic.prefix": "bad topic!/"})))
    (error,) = load_connectors(tmp_path, ENV).errors
    assert error.connector == SEED_SOURCE["name"] and error.field_name == "topic.prefix"


def test_tables_found_at_run_time_whose_topic_kafka_would_refuse_are_named() -> None:
    config = parse_connector(body(SEED_SOURCE, **{"table.whitelist": "", "topic.prefix": "t_"}), environ=ENV)
    assert isinstance(config, JdbcSourceConfig)
    assert resolve_tables(config, ["pets", "owners"]) == ["pets", "owners"]
    with pytest.raises(SourceError) as raised:
        resolve_tables(config, ["pets", "pet$log"])
    message = str(raised.value)
    assert message.startswith(f"connector {config.name!r}, field 'topic.prefix': topic.prefix 't_' + table 'pet$log'")
    assert "('$')" in message and "table.blacklist" in message


# --- config provider references ---------------------------------------------------------------

SECRETS = """\
# the database account
db.password = pa\\u00dfw=rd:1 \\
   continued
other.secret=never-printed
"""


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.properties"
    path.write_text(SECRETS, encoding="utf-8")
    return path


def test_file_references_resolve_as_kafka_connects_file_config_provider(secrets_file: Path) -> None:
    config = parse_connector(
        body(SEED_SOURCE, **{"connection.password": f"${{file:{secrets_file}:db.password}}"}), environ=ENV
    )
    assert isinstance(config, JdbcSourceConfig)
    assert config.connection_password is not None
    assert config.connection_password.reveal() == "paßw=rd:1 continued"
    assert "paßw" not in repr(config)


def test_references_are_resolved_in_any_option_and_next_to_text(secrets_file: Path) -> None:
    assert resolve_references(f"x-${{file:{secrets_file}:other.secret}}-${{env:A}}", {"A": "a"}) == (
        "x-never-printed-a"
    )


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("${file:{path}:missing.key}", "properties file '{path}' has no key 'missing.key'"),
        ("${file:{path}.gone:db.password}", "cannot read properties file '{path}.gone': No such file or directory"),
        ("${file:{path}}", "names no key: FileConfigProvider reads ${file:path:key}"),
        ("${vault:secret/db:password}", "config provider 'vault' of '${vault:secret/db:password}' is not supported"),
        ("${directory:/run/secrets:db}", "config provider 'directory' of '${directory:/run/secrets:db}' is not"),
        ("${env:some/path:NAME}", "the env provider takes no path"),
        ("${env:NOT_SET_ANYWHERE}", "environment variable NOT_SET_ANYWHERE is not set"),
    ],
)
def test_unresolvable_references_name_field_provider_file_and_key_never_the_secret(
    secrets_file: Path, reference: str, expected: str
) -> None:
    path = str(secrets_file)
    message = refused(SEED_SOURCE, "connection.password", **{"connection.password": reference.replace("{path}", path)})
    assert expected.replace("{path}", path) in message
    assert "never-printed" not in message and "paßw" not in message


def test_a_malformed_properties_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.properties"
    path.write_text("key=\\u00zz", encoding="utf-8")
    with pytest.raises(ConfigProviderError, match=r"properties file '.*broken.properties': malformed \\uxxxx escape"):
        resolve_references(f"${{file:{path}:key}}")


def test_properties_parse_as_java_util_properties_does() -> None:
    # Expected values are what java.util.Properties.load printed for the same text (JDK 17).
    text = (
        "# comment\n! comment too\n   password = s3cr3t pw  \nkey2:value2\nkey3 value3\nkey4=\nkey5\n"
        "key\\ with\\ spaces = v\\=x\nkey6 = =starts with equals\nkey7 : : colon\n"
        "multi = line one \\\n        line two \\\\\nnext=after\nuni = \\u00e9t\\u00e9\n"
        "tab\\tkey = a\\tb\\nc\nodd=ends with \\\\\\\n   continued\n  #notcomment=1\nweird\\:key=v\n"
        "a=1\na=2\nemptyline\\\n\nwin=dows\r\nmac=old\rlast=ok"
    )
    assert parse_properties(text) == {
        "password": "s3cr3t pw  ",
        "key2": "value2",
        "key3": "value3",
        "key4": "",
        "key5": "",
        "key with spaces": "v=x",
        "key6": "=starts with equals",
        "key7": ": colon",
        "multi": "line one line two \\",
        "next": "after",
        "uni": "été",
        "tab\tkey": "a\tb\nc",
        "odd": "ends with \\continued",
        "weird:key": "v",
        "a": "2",
        "emptyline": "",
        "win": "dows",
        "mac": "old",
        "last": "ok",
    }


# --- JDBC URL properties ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "scheme", "mode"),
    [
        ("", "mysql", SslMode.PREFERRED),
        ("useSSL=false", "mysql", SslMode.DISABLED),
        ("useSSL=false&requireSSL=true", "mysql", SslMode.DISABLED),
        ("useSSL=true", "mysql", SslMode.PREFERRED),
        ("useSSL=true&requireSSL=true", "mysql", SslMode.REQUIRED),
        ("requireSSL=true", "mysql", SslMode.REQUIRED),
        ("useSSL=true&requireSSL=true&verifyServerCertificate=true", "mysql", SslMode.VERIFY_CA),
        ("sslMode=verify_identity&useSSL=false", "mysql", SslMode.VERIFY_IDENTITY),
        ("sslMode=DISABLED", "mysql", SslMode.DISABLED),
        ("sslMode=REQUIRED", "mariadb", SslMode.REQUIRED),
        ("useSsl=true", "mariadb", SslMode.VERIFY_IDENTITY),
        ("useSsl=true&trustServerCertificate=true", "mariadb", SslMode.REQUIRED),
        ("useSsl=true&disableSslHostnameVerification=true", "mariadb", SslMode.VERIFY_CA),
        ("sslMode=trust", "mariadb", SslMode.REQUIRED),
        ("sslMode=verify-ca", "mariadb", SslMode.VERIFY_CA),
        ("sslMode=verify-full", "mariadb", SslMode.VERIFY_IDENTITY),
        ("sslMode=disable", "mariadb", SslMode.DISABLED),
        ("sslMode=REQUIRED&enabledTLSProtocols=TLSv1.2,TLSv1.3", "mysql", SslMode.REQUIRED),
    ],
)
def test_tls_properties_map_to_a_tls_mode(properties: str, scheme: str, mode: SslMode) -> None:
    assert parse_jdbc_url(f"jdbc:{scheme}://db:3306/mungMo?{properties}").tls.mode is mode


def test_without_tls_properties_the_url_and_driver_arguments_are_as_before() -> None:
    connection = parse_jdbc_url("jdbc:mysql://db:3306/mungMo?user=u&password=p%26w")
    assert connection.tls == Tls()
    assert (connection.user, connection.password and connection.password.reveal()) == ("u", "p&w")
    assert connection.sqlalchemy_url().render_as_string(hide_password=False) == (
        "mysql+pymysql://u:p%26w@db:3306/mungMo?charset=utf8mb4"
    )


def test_user_and_password_of_the_url_work_and_options_win_over_them() -> None:
    config = parse_connector(
        body(SEED_SOURCE, **{"connection.url": "jdbc:mysql://db:3306/mungMo?user=url-user&password=url-pw"}),
        environ=ENV,
    )
    assert isinstance(config, JdbcSourceConfig)
    assert config.connection.user == "mungmo" and config.connection.password is not None
    assert config.connection.password.reveal() == "s3cr3t-pw"
    bare = body(SEED_SOURCE, **{"connection.url": "jdbc:mysql://db:3306/mungMo?user=url-user&password=url-pw"})
    del bare["config"]["connection.user"], bare["config"]["connection.password"]
    config = parse_connector(bare, environ=ENV)
    assert isinstance(config, JdbcSourceConfig)
    assert config.connection.user == "url-user" and config.connection.password is not None
    assert config.connection.password.reveal() == "url-pw"


def test_properties_with_no_effect_are_accepted_only_with_values_that_have_none() -> None:
    url = "jdbc:mysql://db/mungMo?characterEncoding=UTF-8&useUnicode=true&serverTimezone=UTC"
    assert parse_jdbc_url(url).tls == Tls()


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ("useSSL=true&requireSSL=true&foo=bar", "URL property 'foo' is not supported"),
        ("zeroDateTimeBehavior=CONVERT_TO_NULL", "URL property 'zeroDateTimeBehavior' is not supported: it changes"),
        ("serverTimezone=Asia/Seoul", "URL property serverTimezone='Asia/Seoul' is not supported"),
        ("characterEncoding=latin1", "URL property characterEncoding='latin1' is not supported"),
        ("trustCertificateKeyStoreUrl=file:/etc/truststore.jks", "give the CA's PEM file as serverSslCert"),
        ("sslMode=sometimes", "URL property 'sslMode': expected one of DISABLED, PREFERRED, REQUIRED"),
        ("useSSL=maybe", "URL property 'useSSL': expected true or false, got 'maybe'"),
        ("sslMode=REQUIRED&serverSslCert=/etc/hostname", "expected sslMode=VERIFY_CA or VERIFY_IDENTITY with it"),
        ("sslMode=VERIFY_CA&serverSslCert=/no/such/ca.pem", "no CA certificate file '/no/such/ca.pem'"),
        ("tlsVersions=TLSv1.3", "cannot be enforced with TLS mode PREFERRED"),
        ("sslMode=REQUIRED&tlsVersions=SSLv3", "URL property 'tlsVersions': expected a comma list of TLSv1"),
    ],
)
def test_url_properties_that_would_change_nothing_or_are_unknown_are_refused_by_name(
    properties: str, expected: str
) -> None:
    message = refused(SEED_SOURCE, "connection.url", **{"connection.url": f"jdbc:mysql://db:3306/mungMo?{properties}"})
    assert expected in message
