"""Shared helpers for the consistency tests: run a check on sandbox databases, load a time zone."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pymysql
from pymysql.constants import CLIENT
from sqlalchemy import Engine, make_url

from mungmo_pipelines.core.consistency import CheckResult, TableSpec, check_table
from mungmo_pipelines.core.settings import mariadb_admin_url
from tests.support.sandbox import Sandbox

SEOUL = "Asia/Seoul"


def run_check(sandbox: Sandbox, spec: TableSpec, **options: Any) -> CheckResult:
    """``check_table`` on the sandbox's server, with an engine per side as a caller would have."""
    source, target = sandbox.engine(spec.source_database), sandbox.engine(spec.target_database)
    try:
        return check_table(source, target, spec, **options)
    finally:
        source.dispose()
        target.dispose()


def differing_columns(result: CheckResult) -> dict[Any, set[str]]:
    """{first key value: names of the differing source columns} of the "different" rows."""
    return {d.key[0]: {c.column for c in d.columns} for d in result.differences if d.kind == "different"}


def keys_of(result: CheckResult, kind: str) -> set[Any]:
    return {d.key[0] if len(d.key) == 1 else tuple(d.key) for d in result.differences if d.kind == kind}


def ensure_time_zone(admin: Engine, zone: str) -> str:
    """Load ``zone`` into the server's time zone tables unless it knows it already (the stack starts
    without them; MariaDB needs them to convert named zones)."""
    with admin.connect() as conn:
        known = conn.exec_driver_sql("SELECT COUNT(*) FROM mysql.time_zone_name WHERE Name = %s", (zone,)).scalar()
    if known:
        return zone
    tool = shutil.which("mariadb-tzinfo-to-sql") or shutil.which("mysql_tzinfo_to_sql")
    assert tool, "mariadb-tzinfo-to-sql (package mariadb-server) is needed to load time zone tables"
    script = subprocess.run(
        [tool, f"/usr/share/zoneinfo/{zone}", zone], check=True, capture_output=True, text=True
    ).stdout
    url = make_url(mariadb_admin_url())
    conn = pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database="mysql",
        client_flag=CLIENT.MULTI_STATEMENTS,
        autocommit=True,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(script)
            while cursor.nextset():
                pass
    finally:
        conn.close()
    return zone
