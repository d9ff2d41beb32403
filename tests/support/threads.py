"""Threads that run beside a test's ``with`` block, stop when it ends, and fail it with their errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self


class Background:
    """Runs ``targets`` in daemon threads from ``__enter__``; ``__exit__`` asks them to stop (``stopping``
    turns true), waits, and fails with any error a target recorded in ``errors``."""

    def __init__(self, *targets: Callable[[], None], join_timeout_s: float = 60) -> None:
        self.errors: list[BaseException] = []
        self.join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=target, daemon=True) for target in targets]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.join_timeout_s)
        assert not self.errors, self.errors
