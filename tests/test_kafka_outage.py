"""The Kafka broker stops in the middle of a source run and a sink run (``scripts/stack down kafka``).

Without retries (``errors.retry.timeout=0``, the default) both runs fail at once saying the broker
was unreachable and since when; with them, both finish by themselves once it is back. Either way
a rerun leaves every row in Kafka and in the target table exactly once.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError

from mungmo_pipelines.core import faults, settings
from mungmo_pipelines.core.errors import KafkaUnavailable, SinkError, SourceError
from mungmo_pipelines.core.kafka.outage import RetryPolicy
from mungmo_pipelines.core.kafka.transactions import TransactionalProducer
from mungmo_pipelines.core.settings import PROJECT_ROOT
from tests.support.sandbox import Sandbox
from tests.support.sink import SinkCase, member, new_case
from tests.support.source import payloads, run_source, source_config, wide_pets_table

pytestmark = pytest.mark.stack

SOURCE_ROWS = 60_000  # about 25 MB: the source is still reading when the broker stops
SINK_RECORDS = 12_000  # about 30 MB: more than the consumer fetches ahead (8 MB)
RETRY = {"errors.retry.timeout": "120000", "errors.retry.delay.max.ms": "1000"}


def stack(*args: str) -> None:
    subprocess.run([str(PROJECT_ROOT / "scripts" / "stack"), *args, "kafka"], check=True, capture_output=True)


@contextmanager
def local_kafka() -> Iterator[None]:
    assert not settings.KAFKA_BOOTSTRAP.is_set(), (
        "these tests stop the local stack's broker; unset MUNGMO_KAFKA_BOOTSTRAP"
    )
    try:
        yield
    finally:
        stack("up")


@dataclass
class Run:
    """A run in a thread that stops at its first commit until the broker is down."""

    name: str
    action: Callable[[], Any]
    point: str
    at_commit: threading.Event = field(default_factory=threading.Event)
    go_on: threading.Event = field(default_factory=threading.Event)
    outcome: Any = None

    def start(self) -> threading.Thread:
        def pause_once() -> None:
            if not self.at_commit.is_set():
                self.at_commit.set()
                assert self.go_on.wait(60)

        def target() -> None:
            faults.install(self.point, pause_once)
            try:
                self.outcome = self.action()
            except Exception as err:  # the test looks at it
                self.outcome = err
            finally:
                faults.install(self.point, None)

        thread = threading.Thread(target=target, name=self.name)
        thread.start()
        return thread


def outage_during(runs: list[Run], down_s: float | None) -> None:
    """Stop the broker once every run reached its first commit and let them go on; start it again ``down_s``
    later, or (``None``) once the runs have ended."""
    threads = [run.start() for run in runs]
    for run in runs:
        assert run.at_commit.wait(120), f"{run.name} never committed"
    stack("down")
    for run in runs:
        run.go_on.set()
    if down_s is None:
        for thread in threads:
            thread.join(120)
    else:
        time.sleep(down_s)
    stack("up")
    for thread in threads:
        thread.join(300)
        assert not thread.is_alive(), f"{thread.name} still running"


@dataclass
class Pipeline:
    sandbox: Sandbox
    database: str
    sink: SinkCase

    def source_config(self, **options: str) -> Any:
        return source_config(self.sandbox, self.database, mode="incrementing", **{"table.whitelist": "pets", **options})

    def sink_config(self, **options: str) -> Any:
        return self.sink.config(auto_create="true", batch_size="500", **options)


@pytest.fixture
def pipeline(sandbox: Sandbox) -> Pipeline:
    database = sandbox.database("src")
    wide_pets_table(sandbox, database, SOURCE_ROWS)
    case = new_case(sandbox)
    case.produce(member(seq, f"m{seq}", "p" * 2500) for seq in range(1, SINK_RECORDS + 1))
    return Pipeline(sandbox, database, case)


def assert_exactly_once(pipeline: Pipeline, source: Any) -> None:
    assert [p["id"] for p in payloads(pipeline.sandbox, source.topic_for("pets"))] == list(range(1, SOURCE_ROWS + 1))
    assert pipeline.sink.rows(f"SELECT COUNT(*), COUNT(DISTINCT seq), MAX(seq) FROM `{pipeline.sink.topic}`") == [
        (SINK_RECORDS, SINK_RECORDS, SINK_RECORDS)
    ]


def test_without_retries_both_runs_say_the_broker_was_unreachable_and_a_rerun_is_exact(pipeline: Pipeline) -> None:
    source, sink = pipeline.source_config(), pipeline.sink_config()
    runs = [
        Run("source", lambda: run_source(pipeline.sandbox, source, pipeline.database), "source.before_commit"),
        Run("sink", lambda: pipeline.sink.run(sink), "sink.committed"),
    ]
    with local_kafka():
        outage_during(runs, down_s=None)
    source_error, sink_error = runs[0].outcome, runs[1].outcome
    assert isinstance(source_error, SourceError), source_error
    assert isinstance(sink_error, SinkError), sink_error
    servers = pipeline.sandbox.kafka.bootstrap_servers
    for error, name in ((source_error, source.name), (sink_error, sink.name)):
        message = str(error)
        assert message.startswith(f"connector {name!r}: Kafka broker(s) {servers} unreachable since "), message
        assert "errors.retry.timeout=0: no retry" in message
        assert "fenced" not in message and "failed delivery" not in message
    assert "the next run resumes from the last committed offset" in str(source_error)

    run_source(pipeline.sandbox, source, pipeline.database)
    pipeline.sink.run(sink)
    assert_exactly_once(pipeline, source)


def test_with_retries_both_runs_finish_once_the_broker_is_back(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    source, sink = pipeline.source_config(**RETRY), pipeline.sink_config(**RETRY)
    runs = [
        Run("source", lambda: run_source(pipeline.sandbox, source, pipeline.database), "source.before_commit"),
        Run("sink", lambda: pipeline.sink.run(sink), "sink.committed"),
    ]
    with local_kafka(), caplog.at_level("WARNING", logger="mungmo_pipelines.core.kafka.outage"):
        outage_during(runs, down_s=3)
    assert not isinstance(runs[0].outcome, Exception), runs[0].outcome
    assert not isinstance(runs[1].outcome, Exception), runs[1].outcome
    for name in (source.name, sink.name):
        assert f"connector {name!r}: Kafka broker(s)" in caplog.text
        assert f"connector {name!r}: Kafka reachable again; the run resumed from the last committed" in caplog.text
    assert_exactly_once(pipeline, source)


def test_fenced_after_an_outage_is_explained_as_the_coordinators_timeout(kafka_settings: Any) -> None:
    producer = TransactionalProducer(kafka_settings, "mungmo-test-explain")
    try:
        real = producer._explain(KafkaError(KafkaError._FENCED))
        assert "another producer with transactional.id 'mungmo-test-explain' started" in str(real)
        producer.outage_seconds = 75.0
        after_outage = producer._explain(KafkaError(KafkaError._FENCED))
    finally:
        producer.close()
    assert isinstance(after_outage, KafkaUnavailable)
    assert "after the brokers were unreachable for 75.0 s" in after_outage.reason
    assert "older than transaction.timeout.ms (60000 ms)" in after_outage.reason
    assert "no other producer fenced this one" in after_outage.reason


def test_retry_delays_follow_kafka_connect() -> None:
    far = time.monotonic() + 3600
    policy = RetryPolicy(timeout_ms=3_600_000, delay_max_ms=1000)
    assert [policy.delay_s(n, far) for n in (1, 2)] == [0.3, 0.6]
    assert all(0 <= (policy.delay_s(n, far) or 0) <= 1.0 for n in range(3, 50))
    assert policy.delay_s(1, time.monotonic() - 1) is None
    assert RetryPolicy().describe() == "errors.retry.timeout=0: no retry"
