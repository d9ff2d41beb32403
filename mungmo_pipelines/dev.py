"""``make dev`` and ``make daemon``: Dagster's local services, without the daemon's per-tick lines.

``dagster dev`` runs the webserver *and* a daemon (schedules, sensors, the run queue, run
monitoring); ``make daemon`` runs a daemon alone, for when the UI runs elsewhere. Two daemons on
one instance fight over it ("Another SENSOR daemon is still sending heartbeats"), so each target
refuses to start while another daemon's heartbeat is fresh, and says why.

The daemon logs every evaluation of every sensor and schedule at INFO, whether or not it did
anything: two sensors and the minute schedule made about 50 lines a minute, and each minute's
workspace reload a code server's "No heartbeat received … shutting down" WARNING. Those lines are left
out of the terminal (the UI's tick history keeps each tick and its skip reason); runs launched,
warnings and errors pass. ``--verbose`` (``make dev VERBOSE=1``) shows everything.

The services get the project's ``.env`` (written by ``make demo``) under the environment, so what
the Makefile or the shell sets wins, and run in ``$DAGSTER_HOME`` rather than the project root: a
``dagster`` command started in the project root would let ``.env`` override the environment.
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
from pathlib import Path

from dagster import DagsterInstance
from dotenv import dotenv_values

from mungmo_pipelines.core.settings import PROJECT_ROOT

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
    r"|Priority sorting and checking tag concurrency limits for queued runs"
    # The daemon reloads its workspace every minute; the replaced code server then says so as a WARNING.
    r"|No heartbeat received in \d+ seconds, shutting down)"
)


def running_daemon(instance: DagsterInstance, now: float) -> float | None:
    """How many seconds ago another daemon last beat on ``instance``, if it is running."""
    beats = instance.get_daemon_heartbeats().values()
    newest = max((beat.timestamp for beat in beats), default=None)
    return None if newest is None or now - newest > FRESH_HEARTBEAT_S else now - newest


def refusal(service: str, age: float) -> str:
    """Why ``service`` does not start beside a daemon that beat ``age`` seconds ago, and what to do."""
    what = (
        "`make dev` runs a daemon itself (schedules, sensors, the run queue), so a second one would only "
        "fight it; use `make daemon` alone, when the UI runs elsewhere"
        if service == "daemon"
        else "`make dev` starts its own daemon: stop the other `make dev` or `make daemon` first"
    )
    return (
        f"not starting {service}: a Dagster daemon is already running on the instance in "
        f"{os.environ['DAGSTER_HOME']} (last heartbeat {age:.0f} s ago). {what}. If you have just stopped it, "
        f"try again in {FRESH_HEARTBEAT_S - age:.0f} s (a daemon beats every {HEARTBEAT_INTERVAL_S} s)."
    )


def services_environment(project: Path = PROJECT_ROOT) -> dict[str, str]:
    """The project's ``.env`` under the process environment: explicit settings win."""
    dotenv = {name: value for name, value in dotenv_values(project / ".env").items() if value is not None}
    # `dagster dev` warns at each start that `dg dev` supersedes it; `make dev` is what to run here.
    quiet = {"PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore:Function `dev_command` is superseded"}
    return {**dotenv, **os.environ, **quiet}


def run_quietly(command: Sequence[str], verbose: bool) -> int:
    """Run ``command`` in ``$DAGSTER_HOME``, passing its output on without the per-tick lines; Ctrl-C
    reaches it directly."""
    process = subprocess.Popen(
        command, cwd=os.environ["DAGSTER_HOME"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ
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
    os.environ.update(services_environment())
    if not os.environ.get("DAGSTER_HOME"):
        print("DAGSTER_HOME is not set: run `make dev` or `make daemon`, which set it", file=sys.stderr)
        return 1
    with DagsterInstance.get() as instance:
        age = running_daemon(instance, time.time())
    if age is not None:
        print(refusal(args.service, age), file=sys.stderr)
        return 1
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    command = (
        [sys.executable, "-m", "dagster", "dev", "-w", workspace, "-p", args.port]
        if args.service == "dev"
        else [sys.executable, "-m", "dagster._daemon", "run", "-w", workspace]
    )
    return run_quietly(command, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
