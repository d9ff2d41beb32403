"""Debezium record encoding speed: ``ChangeEventEncoder`` against ``orjson.dumps`` of the same payloads.

    PYTHONPATH=. python bench/debezium_encode.py               # 200,000 rows, best of 3
    PYTHONPATH=. python bench/debezium_encode.py --rows 50000

Rows are bench/source.py's ``walks`` rows (about 200 bytes: Korean text, an emoji, a DECIMAL(5,2),
a DATETIME(3)), built in memory in the value contract, in 1,000-row transactions. Measured in one
process, each stage the best of ``--repeat`` runs:

- ``orjson.dumps``: the baseline, one call per record on its envelope payload dict (before, after,
  source, op, ts; parsed back from the encoder's own output) without the schema: the bare JSON cost;
- ``create``:  ``ChangeEventEncoder.create`` (key + value bytes, schema prefix included);
- ``read``:    ``ChangeEventEncoder.read`` (snapshot rows);
- ``update``:  ``ChangeEventEncoder.update`` (before and after images).

The CDC target is 25,000 rows/s end to end, so encoding must stay well under 20 us per row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mungmo_pipelines.core.connect.debezium import ChangeEventEncoder, DebeziumOptions, SourceInfo
from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema

WALKS = TableSchema(
    "bench",
    "walks",
    (
        TableColumn("id", "int", "int(11)", False, 10, 0, auto_increment=True),
        TableColumn("member_name", "varchar", "varchar(50)", False, character_maximum_length=50, charset="utf8mb4"),
        TableColumn("pet_name", "varchar", "varchar(50)", False, character_maximum_length=50, charset="utf8mb4"),
        TableColumn("pet_kind", "enum", "enum('dog','cat','other')", False, labels=("dog", "cat", "other")),
        TableColumn("neighbourhood", "varchar", "varchar(100)", False, character_maximum_length=100),
        TableColumn("walk_note", "varchar", "varchar(255)", True, character_maximum_length=255, default="NULL"),
        TableColumn("weight_kg", "decimal", "decimal(5,2)", True, 5, 2, default="NULL"),
        TableColumn("created_at", "datetime", "datetime(3)", False, datetime_precision=3),
    ),
    ("id",),
)
MEMBERS = ("김민지", "이서준", "박지우", "최하은", "정도윤", "강수아", "조예준", "윤지호")
PETS = ("초코", "나비", "콩이", "보리", "치즈", "토리")
PLACES = (
    "서울 마포구 망원동 한강공원 산책로",
    "서울 성동구 성수동 서울숲",
    "부산 해운대구 우동 해변",
    "경기 성남시 분당구 정자동 탄천",
)
START = dt.datetime(2026, 1, 1)


def walk(seq: int) -> list:
    """bench/source.py's FILL row ``seq`` in the value contract."""
    note = f"아침 산책 {seq % 60}분, 공원에서 친구 만남 🐾 간식 조금, 물 충분히 " + "x" * (25 + seq % 40)
    return [seq, MEMBERS[seq % 8], PETS[seq % 6], ("dog", "cat", "other")[seq % 3], PLACES[seq % 4], note,
            Decimal(seq % 3000).scaleb(-2), START + dt.timedelta(seconds=seq)]  # fmt: skip


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rows = [walk(seq) for seq in range(1, args.rows + 1)]
    sources = [SourceInfo(ts_ns=1_767_229_200_000_000_000, server_id=1, gtid=f"0-1-{i // 1000}",
                          file="mysql-bin.000001", pos=4 + i // 1000 * 300_000, row=i % 1000)
               for i in range(args.rows)]  # fmt: skip
    encoder = ChangeEventEncoder(WALKS, DebeziumOptions("bench"), run_id="01a23234-c734-7969-980d-998818751bb7")
    # The baseline's input: each record's own payload (the envelope without its schema), parsed back.
    pairs = list(zip(rows, sources, strict=True))
    payloads = [orjson.loads(encoder.create(row, source)[0].value)["payload"] for row, source in pairs]
    value_bytes = sum(len(encoder.create(row, source)[0].value) for row, source in pairs[:1000])
    row_bytes = sum(len(orjson.dumps(p["after"])) for p in payloads[:1000])

    def baseline() -> None:
        for payload in payloads:
            orjson.dumps(payload)

    def create() -> None:
        for row, source in pairs:
            encoder.create(row, source)

    def read() -> None:
        for row, source in pairs:
            encoder.read(row, source)

    def update() -> None:
        for row, source in pairs:
            encoder.update(row, row, source)

    stages = [("orjson.dumps (baseline)", baseline), ("create", create), ("read", read), ("update", update)]
    results = [(name, best(args.repeat, run)) for name, run in stages]
    base = results[0][1]
    print(
        f"{args.rows:,} rows, {row_bytes / 1000:.0f} bytes per row image (JSON), {value_bytes / 1000:.0f} bytes "
        f"per record value; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'stage':<26}{'rows/s':>12}{'us/row':>9}{'x baseline':>12}")
    for name, seconds in results:
        print(f"{name:<26}{args.rows / seconds:>12,.0f}{seconds / args.rows * 1e6:>9.2f}{seconds / base:>12.2f}")


if __name__ == "__main__":
    main()
