"""MariaDB's SQL dialect as this project uses it: quoting, limits, ``sql_mode``, error classes, zones."""

from __future__ import annotations

import datetime as dt
import functools
import ssl

import pymysql
from sqlalchemy.exc import DBAPIError

# Table, column and index names; user lock names (GET_LOCK) have the same limit.
MAX_IDENTIFIER_LENGTH = 64
MAX_LOCK_NAME_LENGTH = 64

# STRICT_ALL_TABLES: reject, never truncate or clamp. NO_AUTO_VALUE_ON_ZERO: a 0 in an
# AUTO_INCREMENT column is written as 0, as the record says, not replaced by a new id.
STRICT_SQL_MODE = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO"

# MariaDB error codes this project reacts to by name.
NO_SUCH_TABLE = 1146
UNKNOWN_DATABASE = 1049
UNKNOWN_COLUMN = 1054
SPECIFIC_ACCESS_DENIED = 1227  # "you need (at least one of) the PROCESS privilege(s)"
UNKNOWN_TIME_ZONE = 1298

# By what retrying can do about them.
TRANSIENT_ERRORS = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1927,  # connection was killed
        2003,  # can't connect
        2006,  # server has gone away
        2013,  # lost connection during query
        4031,  # disconnected for inactivity
    }
)
DATA_ERRORS = frozenset(
    {
        1048,  # column cannot be null
        1062,  # duplicate entry
        1264,  # out of range
        1265,  # data truncated
        1292,  # incorrect value (dates, numbers)
        1364,  # field has no default
        1366,  # incorrect string value (e.g. 4-byte UTF-8 into utf8mb3)
        1367,  # illegal value
        1406,  # data too long
        1416,  # cannot get geometry object
        1451,  # a foreign key still references the row
        1452,  # no row for the foreign key
        1690,  # value out of range in an expression
        4025,  # CHECK constraint failed
    }
)


def quote(identifier: str) -> str:
    """A backquoted identifier, safe for any name."""
    return "`" + identifier.replace("`", "``") + "`"


def param_quote(identifier: str) -> str:
    """A quoted identifier for a statement with parameters, where PyMySQL reads ``%`` as a placeholder."""
    return quote(identifier).replace("%", "%%")


def identifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be a MariaDB table or column name, or ``None`` when it can."""
    if not 0 < len(name) <= MAX_IDENTIFIER_LENGTH:
        return f"expected 1 to {MAX_IDENTIFIER_LENGTH} characters (MariaDB's limit), got {len(name)}"
    return None


def driver_error(err: BaseException) -> BaseException:
    """PyMySQL's error, also when SQLAlchemy wrapped it (``engine.connect()``, ``raw_connection()``)."""
    return err.orig if isinstance(err, DBAPIError) and isinstance(err.orig, BaseException) else err


def error_code(err: BaseException) -> int | None:
    err = driver_error(err)
    code = err.args[0] if isinstance(err, pymysql.err.MySQLError) and err.args else None
    return code if isinstance(code, int) else None


def tls_failure(err: BaseException) -> ssl.SSLError | None:
    """The TLS error under a failed connect (PyMySQL keeps it as ``original_exception``), or ``None``."""
    original = getattr(driver_error(err), "original_exception", None)
    return original if isinstance(original, ssl.SSLError) else None


def is_transient(err: BaseException) -> bool:
    if tls_failure(err) is not None:
        return False  # a certificate does not get better by retrying
    err = driver_error(err)
    return isinstance(err, pymysql.err.InterfaceError | ConnectionError) or error_code(err) in TRANSIENT_ERRORS


def is_data_error(err: BaseException) -> bool:
    return isinstance(err, pymysql.err.DataError | pymysql.err.IntegrityError) or error_code(err) in DATA_ERRORS


# Where a JDBC connector sets its connection's TLS (a CDC source's are database.ssl.* options).
JDBC_TLS_OPTIONS = "sslMode and serverSslCert in connection.url"


def database_message(err: BaseException, tls_options: str = JDBC_TLS_OPTIONS) -> str:
    tls = tls_failure(err)
    if tls is not None:
        if isinstance(tls, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed: {tls.verify_message}"
        else:
            reason = tls.reason or str(tls)
        return f"MariaDB error {error_code(err)}: TLS with the server failed: {reason} (see {tls_options})"
    code = error_code(err)
    err = driver_error(err)
    return f"MariaDB error {code}: {err.args[1]}" if code is not None and len(err.args) > 1 else str(err)


@functools.lru_cache(maxsize=64)
def is_utc(zone: dt.tzinfo) -> bool:
    """Whether ``zone`` is UTC at every instant (``UTC``, ``Etc/UTC``, ``Zulu``, …), judged by its offsets."""
    samples = (dt.datetime(year, month, 1, tzinfo=dt.UTC) for year in (1970, 2000, 2030) for month in (1, 7))
    return all(zone.utcoffset(sample.astimezone(zone).replace(tzinfo=None)) == dt.timedelta(0) for sample in samples)


def session_time_zone(zone: dt.tzinfo, name: str) -> str:
    """The ``time_zone`` session value for ``zone``: an offset for UTC (no time zone tables needed), else its name."""
    return "+00:00" if is_utc(zone) else name
