"""The target-state switch in sensors and runs: a paused or stopped connector requests nothing and moves nothing.

Sensors tick in a long-lived code server and share one reader there (a few milliseconds a tick);
a run reads the state once when its step starts. Every launch path of a connector's step goes
through its asset, so its own job, its pipeline, ``replicate_all`` and Materialize all obey.
"""

from __future__ import annotations

from dagster import AssetExecutionContext

from mungmo_pipelines.assets.verification import SKIPPED_TAG
from mungmo_pipelines.core import settings
from mungmo_pipelines.core.operations.state import StateRecord, TargetState, shared_reader
from mungmo_pipelines.resources import KafkaResource


def target_state(kafka: KafkaResource, connector: str) -> StateRecord:
    return shared_reader(kafka.settings(), settings.status_topic()).get(connector)


def not_running_reason(kafka: KafkaResource, connector: str) -> str | None:
    """Why the connector must not move data now (it is paused or stopped), or ``None``."""
    record = target_state(kafka, connector)
    return None if record.state is TargetState.RUNNING else record.describe(connector)


def skipped_for_state(context: AssetExecutionContext, kafka: KafkaResource, connector: str) -> bool:
    """True when the step must end without moving data; the run then ends successful, tagged ``mungmo/skipped``."""
    reason = not_running_reason(kafka, connector)
    if reason is None:
        return False
    context.log.warning(f"skipped: {reason}")
    run = context.instance.get_run_by_id(context.run.run_id)
    earlier = run.tags.get(SKIPPED_TAG) if run is not None else None
    tag = f"{earlier}; {reason}" if earlier else f"skipped: {reason}"
    context.instance.add_run_tags(context.run.run_id, {SKIPPED_TAG: tag})
    return True
