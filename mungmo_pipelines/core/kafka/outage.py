"""When no Kafka broker can be reached: telling it from other failures, saying for how long, and retrying
as Kafka Connect's ``errors.retry.timeout`` and ``errors.retry.delay.max.ms`` say.

Both clients only time out (kafka-python after its request timeouts, librdkafka after
``message.timeout.ms`` or ``transaction.timeout.ms``) and then report what the outage left behind:
``KafkaConnectionError: 111 ECONNREFUSED``, ``N message(s) failed delivery``, or, when the
transaction coordinator aborted a transaction that outlived ``transaction.timeout.ms``, "fenced by
a newer instance". A failure is called an outage here when none of the bootstrap servers accepts
a TCP connection (``clients.unreachable_reason``), and reported as :class:`KafkaUnavailable`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from mungmo_pipelines.core.errors import KafkaUnavailable
from mungmo_pipelines.core.kafka.clients import KafkaSettings, kafka_error_text, unreachable_reason

# Kafka Connect's RetryWithToleranceOperator: the first retry waits this long, each next one twice as long.
RETRY_DELAY_MIN_MS = 300
# While retrying, the outage is logged when found and then at most this often.
LOG_EVERY_S = 30.0

log = logging.getLogger(__name__)

T = TypeVar("T")


# kafka-python's errors for "no broker answered": an outage whether or not a broker is back by the time they surface.
_NO_ANSWER = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


@contextmanager
def kafka_python_outage(settings: KafkaSettings) -> Iterator[None]:
    """kafka-python's errors as :class:`KafkaUnavailable` when no broker answered or none can be reached now."""
    try:
        yield
    except (KafkaError, TimeoutError, OSError) as err:
        reason = unreachable_reason(settings.servers())
        if reason is None and not isinstance(err, _NO_ANSWER):
            raise
        text = kafka_error_text(err) if isinstance(err, KafkaError) else f"{type(err).__name__}: {err}"
        raise KafkaUnavailable(
            settings.bootstrap_servers, time.monotonic(), f"{reason or 'no answer'} ({text})"
        ) from err


def unreachable_for(since: float) -> str:
    """``unreachable since 16:01:51 (12.3 s)``, from a ``time.monotonic()`` instant."""
    seconds = time.monotonic() - since
    return f"unreachable since {time.strftime('%H:%M:%S', time.localtime(time.time() - seconds))} ({seconds:.1f} s)"


@dataclass(frozen=True)
class RetryPolicy:
    """``errors.retry.timeout`` (ms; 0 no retry, -1 for ever) and ``errors.retry.delay.max.ms``."""

    timeout_ms: int = 0
    delay_max_ms: int = 60_000

    def describe(self) -> str:
        if self.timeout_ms == 0:
            return "errors.retry.timeout=0: no retry"
        if self.timeout_ms < 0:
            return "errors.retry.timeout=-1: retrying for ever"
        return f"errors.retry.timeout={self.timeout_ms} ms"

    def delay_s(self, attempt: int, give_up_at: float) -> float | None:
        """Seconds to wait before retry ``attempt`` (1, 2, …), or ``None`` when past the timeout (Kafka Connect's
        backoff: 300 ms doubling, a random wait up to ``errors.retry.delay.max.ms`` past that, cut at the timeout)."""
        now = time.monotonic()
        if now >= give_up_at:
            return None
        delay_ms: float = RETRY_DELAY_MIN_MS << min(attempt - 1, 40)
        if delay_ms > self.delay_max_ms:
            delay_ms = random.uniform(0, self.delay_max_ms)
        return min(delay_ms / 1000, give_up_at - now)

    def run(
        self,
        connector: str,
        settings: KafkaSettings,
        attempt: Callable[[], T],
        fail: Callable[[str], Exception],
    ) -> T:
        """``attempt()``, again after each :class:`KafkaUnavailable` once a broker accepts connections again,
        until the policy gives up; then ``fail``'s error, saying for how long the brokers were unreachable.

        ``attempt`` must be safe to repeat: it resumes from what the last one committed. Between attempts
        only the bootstrap servers are probed, so the clients' own long timeouts are not waited out.
        """
        first: KafkaUnavailable | None = None
        number = 0
        logged = -float("inf")
        while True:
            try:
                result = attempt()
            except KafkaUnavailable as err:
                first = first or err
                give_up_at = float("inf") if self.timeout_ms < 0 else first.since + self.timeout_ms / 1000
                reason: str | None = err.reason
                while reason is not None:
                    number += 1
                    delay = self.delay_s(number, give_up_at)
                    if delay is None:
                        outage = f"Kafka broker(s) {err.servers} {unreachable_for(first.since)} ({reason})"
                        raise fail(f"{outage}; {self.describe()}") from err
                    if time.monotonic() - logged >= LOG_EVERY_S:
                        logged = time.monotonic()
                        log.warning(
                            "connector %r: Kafka broker(s) %s %s (%s); retrying (%s)",
                            connector,
                            err.servers,
                            unreachable_for(first.since),
                            reason,
                            self.describe(),
                        )
                    time.sleep(delay)
                    reason = unreachable_reason(settings.servers())
                continue
            if first is not None:
                log.warning(
                    "connector %r: Kafka reachable again; the run resumed from the last committed offsets and "
                    "finished %.1f s after Kafka was found unreachable",
                    connector,
                    time.monotonic() - first.since,
                )
            return result
        raise AssertionError("unreachable")
