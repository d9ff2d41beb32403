"""``make dev`` and ``make daemon``: Dagster's local services, without the daemon's per-tick lines.

``dagster dev`` runs the webserver *and* a daemon (schedules, sensors, the run queue, run
monitoring); ``make daemon`` runs a daemon alone, for when the UI runs elsewhere. Two daemons on
one instance fight over it ("Another SENSOR daemon is still sending heartbeats"), so each target
refuses to start while another daemon's heartbeat is fresh, and says why.

The daemon logs every evaluation of every sensor and schedule at INFO, whether or not it did
anything: two sensors and the minute schedule made about 50 lines a minute. Those lines are left
out of the terminal (the UI's tick history keeps each tick and its skip reason); runs launched,
warnings and errors pass. ``--verbose`` (``make dev VERBOSE=1``) shows everything.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from dagster import DagsterInstance

# A daemon stores a heartbeat every 30 s (dagster._daemon.controller.DEFAULT_HEARTBEAT_INTERVAL_SECONDS);
# one newer than two and a half intervals means a daemon is running.
HEARTBEAT_INTERVAL_S = 30
FRESH_HEARTBEAT_S = 75
PER_TICK_LINE = re.compile(
    r" - (Checking for new runs for sensor: "
    r"|Sensor \S+ skipped: "
    r"|Schedule \S+ skipped: "
    r"|No run requests returned for \S+, skipping"
    r"|Evaluating schedule `"
    r"|Collected \d+ runs for monitoring"
    r"|Checking run [0-9a-f-]+\s*$"
    r"|Priority sorting and checking tag concurrency limits for queued runs)"
)


def running_daemon(instance: DagsterInstance, now: float) -> str | None:
    """Why another daemon is running on ``instance``, or ``None``."""
    beats = instance.get_daemon_heartbeats().values()
    newest = max((beat.timestamp for beat in beats), default=None)
    if newest is None or now - newest > FRESH_HEARTBEAT_S:
        return None
    age = now - newest
    return (
        f"a Dagster daemon is already running on the instance in {os.environ.get('DAGSTER_HOME')} "
        f"(last heartbeat {age:.0f} s ago). `make dev` runs a daemon itself (schedules, sensors, the run "
        "queue), so `make daemon` beside it only makes the two fight; run `make daemon` alone, when the UI "
        f"runs elsewhere. If you have just stopped it, try again in {FRESH_HEARTBEAT_S - age:.0f} s "
        f"(a daemon beats every {HEARTBEAT_INTERVAL_S} s)."
    )


def run_quietly(command: Sequence[str], verbose: bool) -> int:
    """Run ``command``, passing its output on without the per-tick lines; Ctrl-C reaches it directly."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    # The terminal's Ctrl-C reaches the whole process group; this filter keeps passing the
    # services' shutdown lines on until they have exited.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    assert process.stdout is not None
    for line in process.stdout:
        if verbose or not PER_TICK_LINE.search(line.decode(errors="replace")):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
    return process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=["dev", "daemon"], help="dev: UI and daemon; daemon: the daemon alone")
    parser.add_argument("--port", default="3000", help="the UI's port (dev)")
    parser.add_argument("--verbose", action="store_true", help="keep the daemon's per-tick lines")
    args = parser.parse_args(argv)
    with DagsterInstance.get() as instance:
        busy = running_daemon(instance, time.time())
    if busy:
        print(f"not starting {args.service}: {busy}", file=sys.stderr)
        return 1
    dagster = [sys.executable, "-m", "dagster"]
    command = (
        [*dagster, "dev", "-w", "workspace.yaml", "-p", args.port]
        if args.service == "dev"
        else [sys.executable, "-m", "dagster._daemon", "run", "-w", "workspace.yaml"]
    )
    return run_quietly(command, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
