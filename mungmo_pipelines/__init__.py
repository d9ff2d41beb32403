"""mungmo-pipelines: MungMo's table replication through Kafka and its scheduled jobs, on Dagster.

``defs`` loads on first access (PEP 562), so ``dagster ... -m mungmo_pipelines`` finds it while
importing the core (``mungmo_pipelines.core``) stays free of Dagster and of the
connector files.
"""

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from mungmo_pipelines.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), "defs"]
