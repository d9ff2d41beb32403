"""``make demo``: the team's seed replication end to end on the local stack, then the verification expiry.

Creates the seed source connector's table (``mungMo.test001``) and the sink's database, inserts
sample rows, runs the ``replicate_all`` job through the project's Dagster instance (so the runs
show in the UI), inserts more and runs it again. ``replicate_all`` also runs the CDC pair
(``connectors/mungmo-cdc-*.json``: Debezium's MariaDB source and JDBC sink bodies) into
``mungmoMember.test001``; then an UPDATE, a DELETE and an INSERT in ``mungMo.test001`` go through
that pair's pipeline job, and both tables are compared row by row. Then creates the members table
(with the index the expiry needs), adds members verified on both sides of the 30-day line, runs
the ``neighbourhood_verification_expiry`` job through the same instance and shows what it expired.
Last, the consistency checks: the seed pair's, and a check failing on hand edits that the repair
job fixes through Kafka (``demo_consistency.py``).

The terminal gets what happened; Dagster's event lines and the Kafka clients' messages go to the
full log (``$DAGSTER_HOME/logs/demo.log``). Last, it writes ``.env`` with the settings of the
stack it ran against, which ``dagster dev``, ``dg`` and the ``dagster`` CLI read from the
working directory.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult
from sqlalchemy import Engine, bindparam, create_engine, text

from mungmo_pipelines.assets.keys import pipeline_job_name
from mungmo_pipelines.assets.verification import EXPIRY_JOB, SKIPPED_TAG, expiry_run_config
from mungmo_pipelines.core import settings
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.loader import Connectors, load_connectors
from mungmo_pipelines.core.expiry.members import MembersTable, members_table_ddl
from mungmo_pipelines.core.mariadb.connection import parse_jdbc_url
from mungmo_pipelines.core.source.cdc.incremental import signal_table_ddl
from mungmo_pipelines.definitions import REPLICATE_ALL_JOB, build_definitions
from mungmo_pipelines.demo_consistency import repair_demo, seed_checks

Say = Callable[[str], None]

TEST001_DDL = """
CREATE TABLE IF NOT EXISTS `test001` (
  `seq` INT NOT NULL AUTO_INCREMENT,
  `member_name` VARCHAR(50) NOT NULL,
  `pet_name` VARCHAR(50) NOT NULL,
  `pet_kind` ENUM('dog', 'cat', 'other') NOT NULL DEFAULT 'dog',
  `neighbourhood` VARCHAR(100) NOT NULL,
  `walk_note` TEXT NULL,
  `weight_kg` DECIMAL(5,2) NULL,
  `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (`seq`)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""

MEMBERS = ["김민지", "이서준", "박지우", "최하은", "정도윤", "강수아", "조예준", "윤지호"]
PETS = [("초코", "dog"), ("나비", "cat"), ("콩이", "dog"), ("보리", "dog"), ("치즈", "cat"), ("토리", "other")]
PLACES = ["서울 마포구 망원동", "서울 성동구 성수동", "부산 해운대구 우동", "경기 성남시 분당구 정자동"]
NOTES = ["아침 산책 30분 🐾", "공원에서 친구 만남", None, "비 와서 짧게 산책 ☔", "간식 금지 중"]
MEMBERS_TABLE = MembersTable()
# (nickname, neighbourhood, age of the verification at the cut-off, or None for never verified)
SAMPLE_MEMBERS = [
    ("김민지", "서울 마포구 망원동", timedelta(days=45)),
    ("이서준", "서울 성동구 성수동", timedelta(days=30)),
    ("박지우", "부산 해운대구 우동", timedelta(days=30) - timedelta(seconds=1)),
    ("최하은", "경기 성남시 분당구 정자동", timedelta(days=3)),
    ("정도윤", "서울 마포구 망원동", None),
]
# The full log gets every Dagster event (the project's instance prints INFO and above).
DEBUG_CONSOLE = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
# What the demo writes to .env: the stack's settings as this run saw them, never test-only ones.
ENV_FILE_SETTINGS = [s for s in settings.SETTINGS if s.read_by in ("the project", "scripts/stack")]


class Seed:
    """The seed pair the demo replicates: the source's database and table, the sink's database and table."""

    def __init__(self, connectors: Connectors) -> None:
        source = next(c for c in connectors.sources if isinstance(c, JdbcSourceConfig) and c.table_whitelist)
        sink = next(c for c in connectors.sinks if any(source.may_produce(t) for t in c.topics))
        self.source_db, self.source_table = source.database, source.table_whitelist[0]
        self.topic = source.topic_for(self.source_table)
        self.target_db, self.target_table = sink.database, sink.table_for(self.topic)
        self.members_db = parse_jdbc_url(settings.MEMBERS_JDBC_URL.get() or "").database


class CdcPair:
    """The CDC pair of the seed's table: the Debezium source capturing it, the sink writing its topic."""

    def __init__(self, connectors: Connectors, seed: Seed) -> None:
        source = next(
            c
            for c in connectors.sources
            if isinstance(c, DebeziumSourceConfig) and c.captures(seed.source_db, seed.source_table)
        )
        self.topic = source.topic_for(f"{seed.source_db}.{seed.source_table}")
        sink = next(c for c in connectors.sinks if c.reads_topic(self.topic))
        self.names = f"{source.name}, {sink.name}"
        self.target_db, self.target_table = sink.database, sink.table_for(self.topic)
        self.job = pipeline_job_name(source)
        self.signal_table = source.signal_table


def prepare(admin: Engine, seed: Seed, cdc: CdcPair) -> None:
    """The databases, the seed table and the CDC source's signal table (its repairs write there)."""
    with admin.begin() as conn:
        for database in (seed.source_db, seed.target_db, seed.members_db):
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{database}` DEFAULT CHARACTER SET utf8mb4")
        conn.exec_driver_sql(f"USE `{seed.source_db}`")
        conn.exec_driver_sql(TEST001_DDL.replace("`test001`", f"`{seed.source_table}`"))
        if cdc.signal_table is not None:
            conn.exec_driver_sql(signal_table_ddl(*cdc.signal_table))


def insert_rows(admin: Engine, seed: Seed, count: int) -> None:
    rows = []
    for _ in range(count):
        pet, kind = random.choice(PETS)
        rows.append(
            {
                "member": random.choice(MEMBERS),
                "pet": pet,
                "kind": kind,
                "place": random.choice(PLACES),
                "note": random.choice(NOTES),
                "weight": round(random.uniform(2, 30), 2),
            }
        )
    with admin.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO `{seed.source_db}`.`{seed.source_table}`"
                " (member_name, pet_name, pet_kind, neighbourhood, walk_note, weight_kg)"
                " VALUES (:member, :pet, :kind, :place, :note, :weight)"
            ),
            rows,
        )


def keys(admin: Engine, database: str, table: str) -> set[int]:
    """The ``seq`` of every row of the table (none when it does not exist yet)."""
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = :d AND TABLE_NAME = :t"),
            {"d": database, "t": table},
        ).scalar()
        return set(conn.execute(text(f"SELECT seq FROM `{database}`.`{table}`")).scalars()) if exists else set()


def materialized(result: ExecuteInProcessResult) -> dict[str, dict]:
    """Each materialized asset's metadata values, by asset key."""
    return {
        event.materialization.asset_key.to_user_string(): {
            key: value.value for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def replicate(
    admin: Engine, instance: DagsterInstance, defs: Definitions, seed: Seed, label: str, say: Say
) -> ExecuteInProcessResult:
    started = time.monotonic()
    result = defs.resolve_job_def(REPLICATE_ALL_JOB).execute_in_process(
        instance=instance, run_config=DEBUG_CONSOLE, raise_on_error=False
    )
    seconds = time.monotonic() - started
    source, target = keys(admin, seed.source_db, seed.source_table), keys(admin, seed.target_db, seed.target_table)
    facts = materialized(result)
    produced = facts.get(f"kafka/{seed.topic}", {}).get("rows_read", 0)
    inserted = facts.get(f"{seed.target_db}/{seed.target_table}", {}).get("rows_inserted", 0)
    outcome = "succeeded" if result.success else "FAILED"
    # Rows deleted at the source (the CDC part deletes one) stay here: incrementing mode carries inserts only.
    stale = len(target - source)
    counts = (
        f"{len(source)} rows, {len(target)} in the target ({stale} deleted at the source: incrementing mode "
        "carries no deletes)"
        if stale
        else f"{len(source)} rows = {len(target)} rows"
    )
    say(
        f"  {label:<13} run {result.run_id[:8]} {outcome} in {seconds:.1f} s: {produced} produced to Kafka, "
        f"{inserted} inserted; {counts}"
    )
    if not result.success or source - target:
        raise SystemExit(
            f"replication did not converge: source rows {sorted(source - target)[:5]} are not in the target"
        )
    return result


def by_op(events: Mapping[str, int]) -> str:
    """``"r 5, c 3"``: change events by Debezium op (r snapshot read, c create, u update, d delete)."""
    order = {op: i for i, op in enumerate("rcud")}
    return ", ".join(f"{op} {n}" for op, n in sorted(events.items(), key=lambda e: order.get(e[0], 9)) if n) or "none"


def table_rows(admin: Engine, database: str, table: str, columns: list[str]) -> dict[Any, tuple[Any, ...]]:
    """Rows by their first column (the key) with ``columns`` in that order."""
    names = ", ".join(f"`{c}`" for c in columns)
    with admin.connect() as conn:
        return {row[0]: tuple(row) for row in conn.execute(text(f"SELECT {names} FROM `{database}`.`{table}`"))}


def rows_compared(admin: Engine, seed: Seed, cdc: CdcPair) -> tuple[bool, str]:
    """Whether the CDC target holds the source's rows, every source column equal, and a line saying so."""
    with admin.connect() as conn:
        columns = list(
            conn.execute(
                text(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :d AND TABLE_NAME = :t "
                    "ORDER BY COLUMN_KEY <> 'PRI', ORDINAL_POSITION"
                ),
                {"d": seed.source_db, "t": seed.source_table},
            ).scalars()
        )
    source = table_rows(admin, seed.source_db, seed.source_table, columns)
    target = table_rows(admin, cdc.target_db, cdc.target_table, columns)
    differing = sorted(key for key in source.keys() | target.keys() if source.get(key) != target.get(key))
    if differing:
        return False, f"{len(source)} rows, {len(target)} rows: keys {differing[:5]} differ"
    return True, f"{len(source)} rows = {len(target)} rows, every column equal"


def change_data_capture(
    admin: Engine,
    instance: DagsterInstance,
    defs: Definitions,
    seed: Seed,
    cdc: CdcPair,
    replicated: list[ExecuteInProcessResult],
    say: Say,
) -> None:
    """What the CDC pair carried in ``replicate_all``'s runs, then an UPDATE, a DELETE and an INSERT
    through its pipeline job, and the two tables compared."""
    say(
        f"Change data capture {seed.source_db}.{seed.source_table} -> topic {cdc.topic} -> "
        f"{cdc.target_db}.{cdc.target_table} ({cdc.names}), job {cdc.job}"
    )
    carried: Counter[str] = Counter()
    for result in replicated:
        carried.update(materialized(result).get(f"kafka/{cdc.topic}", {}).get("events", {}))
    say(f"  in those runs: change events {by_op(carried)}; {rows_compared(admin, seed, cdc)[1]}")
    table = f"`{seed.source_db}`.`{seed.source_table}`"
    with admin.begin() as conn:
        first, last = conn.execute(text(f"SELECT MIN(seq), MAX(seq) FROM {table}")).one()
        conn.execute(
            text(f"UPDATE {table} SET walk_note = :note, weight_kg = weight_kg + 0.5 WHERE seq = :seq"),
            {"note": "비 와서 짧게 산책 ☔ (수정)", "seq": last},
        )
        conn.execute(text(f"DELETE FROM {table} WHERE seq = :seq"), {"seq": first})
    insert_rows(admin, seed, 1)
    with admin.connect() as conn:
        added = conn.execute(text(f"SELECT MAX(seq) FROM {table}")).scalar_one()
    say(f"  UPDATE seq {last}, DELETE seq {first}, INSERT seq {added} in {seed.source_db}.{seed.source_table}")
    started = time.monotonic()
    result = defs.resolve_job_def(cdc.job).execute_in_process(
        instance=instance, run_config=DEBUG_CONSOLE, raise_on_error=False
    )
    seconds = time.monotonic() - started
    facts = materialized(result)
    events = facts.get(f"kafka/{cdc.topic}", {}).get("events", {})
    written = facts.get(f"{cdc.target_db}/{cdc.target_table}", {})
    equal, compared = rows_compared(admin, seed, cdc)
    outcome = "succeeded" if result.success else "FAILED"
    say(
        f"  run {result.run_id[:8]} {outcome} in {seconds:.1f} s: change events {by_op(events)}; "
        f"{written.get('rows_inserted', 0)} inserted, {written.get('rows_updated', 0)} updated, "
        f"{written.get('rows_deleted', 0)} deleted; {compared}"
    )
    if not result.success or not equal:
        raise SystemExit(f"change data capture did not converge: {compared}")


def add_sample_members(admin: Engine, seed: Seed, as_of: datetime) -> list[int]:
    with admin.begin() as conn:
        conn.exec_driver_sql(f"USE `{seed.members_db}`")
        conn.exec_driver_sql(members_table_ddl(MEMBERS_TABLE))
        ids = []
        for nickname, place, age in SAMPLE_MEMBERS:
            result = conn.execute(
                text(
                    "INSERT INTO member (nickname, neighbourhood, neighbourhood_verified, neighbourhood_verified_at) "
                    "VALUES (:nickname, :place, :verified, :verified_at)"
                ),
                {
                    "nickname": nickname,
                    "place": place,
                    "verified": int(age is not None),
                    "verified_at": MEMBERS_TABLE.to_db(as_of - age) if age is not None else None,
                },
            )
            ids.append(result.lastrowid)
        return ids


def member_states(admin: Engine, seed: Seed, ids: list[int]) -> dict[int, tuple[str, int, datetime | None]]:
    with admin.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, nickname, neighbourhood_verified, neighbourhood_verified_at "
                f"FROM `{seed.members_db}`.member WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


def expire_verifications(admin: Engine, instance: DagsterInstance, defs: Definitions, seed: Seed, say: Say) -> None:
    as_of = datetime.now(UTC).replace(microsecond=0)
    ids = add_sample_members(admin, seed, as_of)
    before = member_states(admin, seed, ids)
    started = time.monotonic()
    result = defs.resolve_job_def(EXPIRY_JOB).execute_in_process(
        instance=instance, run_config={**expiry_run_config(as_of=as_of), **DEBUG_CONSOLE}, raise_on_error=False
    )
    seconds = time.monotonic() - started
    after = member_states(admin, seed, ids)
    cutoff = MEMBERS_TABLE.cutoff(as_of)
    say(
        f"Verification expiry {seed.members_db}.member: cut-off {cutoff:%Y-%m-%d %H:%M:%S} UTC "
        f"(30 days before {as_of:%H:%M:%S}), job {EXPIRY_JOB}"
    )
    # The skip tag is added while the run goes: read the run as the instance has it now.
    run = instance.get_run_by_id(result.run_id)
    skipped = run.tags.get(SKIPPED_TAG) if run is not None else None
    facts = materialized(result)
    members = facts.get(f"{seed.members_db}/member", {})
    events = next((v for k, v in facts.items() if k.startswith("kafka/")), {})
    outcome = "succeeded" if result.success else "FAILED"
    summary = (
        f"{skipped} (is `make dev` or `make daemon` running the minute schedule?)"
        if skipped
        else f"{members.get('expired', 0)} expired in {members.get('chunks', 0)} chunk(s) "
        f"({members.get('db_s', 0)} s in the database), {events.get('events_published', 0)} events to Kafka"
    )
    say(f"  run {result.run_id[:8]} {outcome} in {seconds:.1f} s: {summary}")
    for member_id, (nickname, verified, verified_at) in before.items():
        age = f"verified {as_of.replace(tzinfo=None) - verified_at} before" if verified_at else "never verified"
        change = "expired" if verified and not after[member_id][1] else "still verified" if verified else "unchanged"
        say(f"    member {member_id:>4} {nickname}  {age:<36} -> {change}")
    if not result.success or skipped:
        raise SystemExit("the verification expiry did not run")


def write_env_file(path: Path) -> list[str]:
    """The settings this run used, as ``.env`` (git-ignored, owner-readable only); returns their names."""
    values = {"DAGSTER_HOME": os.environ["DAGSTER_HOME"]}
    values.update({s.name: str(s.get()) for s in ENV_FILE_SETTINGS if s.is_set()})
    lines = [
        "# Written by `make demo`: the local stack's settings, read by `dagster dev`, `dg` and the dagster CLI",
        "# from this directory. Rewritten by each `make demo`; never committed (.gitignore).",
        *(f"{name}={value}" for name, value in values.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return list(values)


@contextmanager
def terminal_and_log(log_path: Path) -> Iterator[Say]:
    """Send everything the process writes (Dagster's console logger, librdkafka) to ``log_path``;
    ``say`` writes a line to the terminal and to the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal_fd, error_fd = os.dup(1), os.dup(2)
    terminal = os.fdopen(terminal_fd, "w", buffering=1, encoding="utf-8")
    with log_path.open("w", buffering=1, encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)

        def say(line: str) -> None:
            terminal.write(line + "\n")
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

        try:
            yield say
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(terminal_fd, 1)
            os.dup2(error_fd, 2)
            os.close(error_fd)
            terminal.close()


def main() -> None:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SystemExit("DAGSTER_HOME is not set: run `make demo`, which sets it to .dagster_home")
    log_path = Path(os.path.relpath(Path(home) / "logs" / "demo.log"))
    with terminal_and_log(log_path) as say:
        try:
            connectors = load_connectors()
            seed = Seed(connectors)
            admin = create_engine(settings.mariadb_admin_url())
            instance = DagsterInstance.get()
            cdc = CdcPair(connectors, seed)
            prepare(admin, seed, cdc)
            # Built once the tables exist, so the CDC source's captured tables (and its pair) are known.
            defs = build_definitions(connectors)
            say(
                f"Replication {seed.source_db}.{seed.source_table} -> topic {seed.topic} -> "
                f"{seed.target_db}.{seed.target_table}, job {REPLICATE_ALL_JOB}"
            )
            insert_rows(admin, seed, 5)
            first = replicate(admin, instance, defs, seed, "5 new rows", say)
            insert_rows(admin, seed, 3)
            last = replicate(admin, instance, defs, seed, "3 more rows", say)
            seed_checks(last, say)
            change_data_capture(admin, instance, defs, seed, cdc, [first, last], say)
            expire_verifications(admin, instance, defs, seed, say)
            repair_demo(admin, instance, say)
            written = write_env_file(Path.cwd() / ".env")
            say(f"Settings for `dagster dev`, `dg` and the CLI: .env ({', '.join(written)})")
        except (Exception, SystemExit) as failure:
            traceback.print_exc()
            say(f"FAILED: {failure}")
            say(f"Full log: {log_path}")
            raise SystemExit(1) from None
        say(f"Full log (Dagster events, Kafka clients): {log_path}")
        say("Next: `make dev`, then open http://127.0.0.1:3000")


if __name__ == "__main__":
    main()
