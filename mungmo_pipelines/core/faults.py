"""Fault injection for the crash tests: stop at a named point of a commit protocol.

The source and the sink call ``reached("<side>.<point>")`` between the steps whose order makes
them exactly-once. Normally that is a dictionary lookup and nothing happens. A test process
started with ``MUNGMO_FAULT_INJECTION="sink.before_commit:3"`` kills itself with SIGKILL
(``kill -9``: no cleanup, no rollback sent) the 3rd time it reaches ``sink.before_commit``;
in-process tests install a callback with ``install``. Never set the variable outside tests.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from mungmo_pipelines.core.settings import FAULT_INJECTION

FAULT_INJECTION_ENV = FAULT_INJECTION.name

_hooks: dict[str, Callable[[], None]] = {}
_counts: dict[str, int] = {}


def _kill_at(point: str, occurrence: int) -> None:
    def kill() -> None:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)

    _hooks[point] = kill


def _from_environment() -> None:
    setting = FAULT_INJECTION.get() or ""
    if setting:
        point, _, occurrence = setting.rpartition(":")
        if not point or not occurrence.isdigit():
            raise ValueError(f"{FAULT_INJECTION_ENV}={setting!r}: expected <point>:<n>, e.g. sink.before_commit:3")
        _kill_at(point, int(occurrence))


def install(point: str, hook: Callable[[], None] | None) -> None:
    """Run ``hook`` whenever ``point`` is reached (``None`` removes it); for in-process tests."""
    if hook is None:
        _hooks.pop(point, None)
    else:
        _hooks[point] = hook


def reached(point: str) -> None:
    hook = _hooks.get(point)
    if hook is not None:
        hook()


_from_environment()
