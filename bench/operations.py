"""Benchmark: what the target-state switch costs a sensor tick and a run start.

    PYTHONPATH=. python bench/operations.py               # 200 reads each, 50 connectors' states stored
    PYTHONPATH=. python bench/operations.py --reads 50    # a quick check

Measures, against a throwaway status topic holding one state per connector (each written twice,
as pause and resume leave them):

- a sensor tick's read through the shared reader its code server keeps open (what every tick of
  every connector's sensor pays);
- a run's read at step start (a fresh consumer: a run is a new process);
- baselines measured in the same run: what a source sensor tick already pays for its offsets
  (its incremental read of the offsets topic, cursor kept) and what a source run pays to load
  its offsets (a fresh read), on an offsets topic of the same size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable

from bench.report import Report, add_markdown_flag
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.operations.state import TargetState, TargetStateReader, TargetStateStore
from mungmo_pipelines.core.settings import kafka_bootstrap
from mungmo_pipelines.core.source.offsets import SourceOffsetStore, offset_key, table_partition


def timed(action: Callable[[], object], reads: int) -> tuple[float, float]:
    """Median and 95th percentile of ``reads`` calls, in milliseconds."""
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--connectors", type=int, default=50)
    add_markdown_flag(parser)
    args = parser.parse_args()
    kafka = KafkaSettings(kafka_bootstrap(), client_id="mungmo-bench")
    suffix = uuid.uuid4().hex[:8]
    status_topic, offsets_topic = f"mungmo_bench_{suffix}_status", f"mungmo_bench_{suffix}_offsets"
    store = TargetStateStore(kafka, status_topic)
    names = [f"connector-{i}" for i in range(args.connectors)]
    for name in names:
        store.put(name, TargetState.PAUSED, "bench")
        store.put(name, TargetState.RUNNING, "bench")
    offsets = SourceOffsetStore(kafka, offsets_topic)
    offsets.ensure_topic()
    producer = kafka.producer(acks="all")
    for i, name in enumerate(names * 2):
        key = offset_key(name, table_partition("bench", "test001"))
        producer.send(offsets_topic, key=key, value=json.dumps({"incrementing": i}).encode())
    producer.flush()
    producer.close()
    try:
        shared = TargetStateReader(kafka, status_topic)
        shared.states()
        tick = timed(lambda: shared.get(names[0]), args.reads)
        shared.close()
        run_start = timed(lambda: store.get(names[0]), args.reads)
        known, positions = offsets.read(names[0])
        offsets_tick = timed(lambda: offsets.read(names[0], positions, known), args.reads)
        offsets_run = timed(lambda: offsets.load(names[0]), args.reads)
    finally:
        admin = kafka.admin()
        admin.delete_topics([status_topic, offsets_topic])
        admin.close()
    report = Report("Operations: the target-state switch")
    report.line(f"{args.connectors} connectors' states in the status topic; {args.reads} reads each; median / p95 ms")
    report.line()
    report.line("| read | median ms | p95 ms |")
    report.line("| --- | --- | --- |")
    for label, (median, p95) in [
        ("sensor tick: target state, shared reader (new)", tick),
        ("baseline: sensor tick's offsets read, cursor kept (a fresh consumer)", offsets_tick),
        ("run start: target state, fresh reader (new)", run_start),
        ("baseline: source run's offsets load (a fresh consumer)", offsets_run),
    ]:
        report.line(f"| {label} | {median:.1f} | {p95:.1f} |")
    report.emit(args.markdown)


if __name__ == "__main__":
    main()
