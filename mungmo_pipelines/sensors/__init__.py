"""Sensors: what requests runs when there is something to replicate (``source_changes.py`` per source
connector, ``sink_lag.py`` per sink connector), and what they share."""

from dagster import DagsterRunStatus

# Run statuses the sensors wait on: a run about to start, and one going.
WAITING_TO_START = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]
RUNNING = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]

# The sensor daemon checks sensors every 5 s (dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME) and
# evaluates one when at least its minimum_interval_seconds have passed since its last tick. Asking
# for exactly 5 s makes a check that comes a moment early wait one loop more, so ticks alternate
# 5 and 10 s apart (seen in bench/latency.py's tick history).
DAEMON_LOOP_S = 5


def daemon_interval(seconds: int) -> int:
    """The ``minimum_interval_seconds`` that gets a tick every ``seconds`` (at least one loop), to within a loop."""
    return max(1, seconds - DAEMON_LOOP_S + 1)
