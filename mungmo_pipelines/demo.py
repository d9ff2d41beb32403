"""``make demo``: the team's seed replication end to end on the local stack, printing what moved,
then the neighbourhood verification expiry on sample members.

Creates ``mungMo.test001`` and an empty ``mungmoMember``, inserts sample rows, runs the
``replicate_all`` job through the project's Dagster instance (so the runs show in the UI),
inserts more and runs it again. Then creates ``mungMo.member`` (with the index the expiry
needs), adds members verified on both sides of the 30-day line, runs the
``neighbourhood_verification_expiry`` job through the same instance and prints what it expired.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, ExecuteInProcessResult
from sqlalchemy import Engine, bindparam, create_engine, text

from mungmo_pipelines.assets.verification import EXPIRY_JOB, SKIPPED_TAG, expiry_run_config
from mungmo_pipelines.core import settings
from mungmo_pipelines.core.expiry.members import MembersTable, members_table_ddl
from mungmo_pipelines.definitions import REPLICATE_ALL_JOB, defs

SOURCE_DB = "mungMo"
TARGET_DB = "mungmoMember"
TARGET_TABLE = "my_topic_test001"  # the JDBC sink's default table.name.format is ${topic}

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


def prepare(admin: Engine) -> None:
    with admin.begin() as conn:
        for database in (SOURCE_DB, TARGET_DB):
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{database}` DEFAULT CHARACTER SET utf8mb4")
        conn.exec_driver_sql(f"USE `{SOURCE_DB}`")
        conn.exec_driver_sql(TEST001_DDL)


def insert_rows(admin: Engine, count: int) -> None:
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
                f"INSERT INTO `{SOURCE_DB}`.test001"
                " (member_name, pet_name, pet_kind, neighbourhood, walk_note, weight_kg)"
                " VALUES (:member, :pet, :kind, :place, :note, :weight)"
            ),
            rows,
        )


def count(admin: Engine, database: str, table: str) -> int:
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = :d AND TABLE_NAME = :t"),
            {"d": database, "t": table},
        ).scalar()
        return conn.execute(text(f"SELECT COUNT(*) FROM `{database}`.`{table}`")).scalar() if exists else 0


def moved(result: ExecuteInProcessResult) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        name = materialization.asset_key.to_user_string()
        if "events" in metadata:  # a CDC (Debezium) topic: change events by op
            lines.append(f"  {name}: {metadata['records']} change events {metadata['events']}")
        elif "rows_read" in metadata:
            lines.append(f"  {name}: {metadata['rows_read']} rows produced")
        else:
            lines.append(f"  {name}: {metadata['rows_inserted']} rows inserted")
    return lines


def replicate(admin: Engine, instance: DagsterInstance, label: str) -> None:
    result = defs.resolve_job_def(REPLICATE_ALL_JOB).execute_in_process(instance=instance)
    source, target = count(admin, SOURCE_DB, "test001"), count(admin, TARGET_DB, TARGET_TABLE)
    print(f"{label}: run {result.run_id[:8]} {'succeeded' if result.success else 'FAILED'}")
    print("\n".join(moved(result)))
    print(f"  {SOURCE_DB}.test001 = {source} rows, {TARGET_DB}.{TARGET_TABLE} = {target} rows")
    if not result.success or source != target:
        raise SystemExit(f"replication did not converge: {source} source rows, {target} target rows")


MEMBERS_TABLE = MembersTable()
# (nickname, neighbourhood, age of the verification at the cut-off, or None for never verified)
SAMPLE_MEMBERS = [
    ("김민지", "서울 마포구 망원동", timedelta(days=45)),
    ("이서준", "서울 성동구 성수동", timedelta(days=30)),
    ("박지우", "부산 해운대구 우동", timedelta(days=30) - timedelta(seconds=1)),
    ("최하은", "경기 성남시 분당구 정자동", timedelta(days=3)),
    ("정도윤", "서울 마포구 망원동", None),
]


def add_sample_members(admin: Engine, as_of: datetime) -> list[int]:
    with admin.begin() as conn:
        conn.exec_driver_sql(f"USE `{SOURCE_DB}`")
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


def member_states(admin: Engine, ids: list[int]) -> dict[int, tuple[str, int, datetime | None]]:
    with admin.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT id, nickname, neighbourhood_verified, neighbourhood_verified_at FROM `{SOURCE_DB}`.member "
                "WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


def expire_verifications(admin: Engine, instance: DagsterInstance) -> None:
    as_of = datetime.now(UTC).replace(microsecond=0)
    ids = add_sample_members(admin, as_of)
    before = member_states(admin, ids)
    result = defs.resolve_job_def(EXPIRY_JOB).execute_in_process(
        instance=instance, run_config=expiry_run_config(as_of=as_of), raise_on_error=False
    )
    after = member_states(admin, ids)
    print(f"verification expiry: run {result.run_id[:8]} {'succeeded' if result.success else 'FAILED'}")
    skipped = instance.get_run_by_id(result.run_id).tags.get(SKIPPED_TAG)
    if skipped:
        print(f"  {skipped} (is `make daemon` or `make dev` running the minute schedule?)")
    for event in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        if "expired" in metadata:
            print(
                f"  {metadata['expired']} verifications granted at or before {metadata['cutoff']} expired "
                f"in {metadata['chunks']} chunk(s), {metadata['duration_s']} s (earlier demo members count too)"
            )
        else:
            print(
                f"  {metadata['events_published']} events published to topic {event.materialization.asset_key.path[-1]}"
            )
    print(f"  the sample members added just now, against the cut-off {as_of:%Y-%m-%d %H:%M:%S} UTC - 30 days:")
    for member_id, (nickname, verified, verified_at) in before.items():
        age = f"verified {as_of.replace(tzinfo=None) - verified_at} before" if verified_at else "not verified"
        change = "expired" if verified and not after[member_id][1] else "still verified" if verified else "unchanged"
        print(f"    member {member_id:>4} {nickname}  {age:<40} -> {change}")
    if not result.success or skipped:
        raise SystemExit("the verification expiry did not run")


def main() -> None:
    admin = create_engine(settings.mariadb_admin_url())
    instance = DagsterInstance.get()
    prepare(admin)
    insert_rows(admin, 5)
    replicate(admin, instance, "first run (5 new rows)")
    insert_rows(admin, 3)
    replicate(admin, instance, "second run (3 more rows)")
    expire_verifications(admin, instance)
    print("Open the UI with `make dev` to see these runs and the lineage.")


if __name__ == "__main__":
    main()
