"""One consistency check of a replicated table, with no false alarms while the source is written.

The tables are compared at a point, then the rows that differed are compared again:

1. read the source's point P0 and wait until the target has applied it;
2. checksum both tables in chunks and bisect the differing pieces down to candidate keys;
3. read the point P1 and wait for it; read the candidates again on both sides (by key: target
   first, then source); keys that now match were in flight and are dropped;
4. if any still differ, read P2, wait, and read them once more, with their values. A key whose
   source row changed between the last two reads is reported in flight: the source is still
   changing it. Any other key still differing is a difference: its source row held still from
   before P2 was read until after the target (which had applied P2) was read, so the target
   should have shown it.

Without ``sync`` there is no waiting and one re-read (with values, to name the columns); rows being
written during the check can then show as differences. The policy's :class:`SentRule` (the source's
stored offset) tells rows the source has not sent yet: those are in flight too. Its
:class:`KeyedSentRule` tells them by key from the last point waited for (a CDC source: the keys
the binary log changed after the position that point's stored offset reached), asked after the
last read, so any row of any kind.

``count_only`` compares row counts alone (a cheap check): the source's rows, how many of them the
source has not sent yet (or, by key, how many keys changed after the point), and the target's,
judged by the mode (:meth:`ModePolicy.count_mismatch`).
A target table that does not exist yet (the sink has written nothing) is counted as empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from mungmo_pipelines.core.consistency.catalog import TableDescription, describe_table
from mungmo_pipelines.core.consistency.chunks import CheckSettings, checksum_chunks
from mungmo_pipelines.core.consistency.diff import Candidate, Candidates, bisect, column_differences, look_up
from mungmo_pipelines.core.consistency.plan import CountOnly, Plan, TableSpec, plan_comparison
from mungmo_pipelines.core.consistency.policy import DEFECT, EXPLAINED, ModePolicy, UnsentKeys
from mungmo_pipelines.core.consistency.result import CheckResult, CheckStats, RowDifference, key_json
from mungmo_pipelines.core.consistency.sides import Side, Sides
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.mariadb.dialect import quote

__all__ = ["CheckSettings", "SyncPoints", "TableSpec", "check_table"]


@dataclass(frozen=True)
class SyncPoints:
    """How the check learns where the source is and waits for the target to get there.

    ``source_point()`` returns the source's current point as JSON-serializable data (a JDBC source's
    stored offsets, a binlog position). ``wait_until_applied(point)`` blocks until the target has
    applied everything up to ``point`` and returns True, or gives up and returns False (the rows still
    differing are then reported in flight, and the result says the target had not caught up).
    """

    source_point: Callable[[], Any]
    wait_until_applied: Callable[[Any], bool]


def check_table(
    source: Engine,
    target: Engine,
    spec: TableSpec,
    *,
    sync: SyncPoints | None = None,
    policy: ModePolicy | None = None,
    settings: CheckSettings | None = None,
    count_only: bool = False,
) -> CheckResult:
    """Compare ``spec``'s source and target tables; see the module docstring for the protocol."""
    policy = policy or ModePolicy()
    settings = settings or CheckSettings()
    started = time.perf_counter()
    result = CheckResult(spec.source_label, spec.target_label, method="chunks", mode=policy.mode)
    source_side = Side("source", source, spec.zone)
    try:
        target_side = Side("target", target, spec.zone)
    except BaseException:
        source_side.close()
        raise
    sides = Sides(source_side, target_side)
    try:
        plan, unsent = _plan(sides, spec, policy, result.stats, count_only)
        result.notes = list(plan.notes)
        if sync is not None:
            point = sync.source_point()
            result.positions["start"] = point
            result.caught_up = _wait(sync, point, result.stats)
        if isinstance(plan, CountOnly):
            _count(sides, spec, policy, unsent, result, plan, sync)
        else:
            result.key = list(plan.key)
            _compare(sides, plan, settings, sync, policy, unsent, result)
    finally:
        result.stats.queries = sides.queries
        sides.close()
    result.stats.duration_s = round(time.perf_counter() - started, 6)
    return result


def _plan(
    sides: Sides, spec: TableSpec, policy: ModePolicy, stats: CheckStats, count_only: bool
) -> tuple[Plan | CountOnly, str | None]:
    """The comparison, and the policy's SQL telling source rows not sent yet (None without a rule)."""
    started = time.perf_counter()
    source = _describe(sides.source, spec.source_database, spec.source_table)
    if source is None:
        raise ConsistencyError(f"source table {spec.source_label} does not exist")
    unsent = policy.sent.unsent_sql(source) if policy.sent is not None else None
    target = _describe(sides.target, spec.target_database, spec.target_table)
    plan: Plan | CountOnly
    if target is None:
        missing = f"target table {spec.target_label} does not exist (yet): counted as empty"
        plan = CountOnly(missing, target_exists=False)
    elif count_only:
        plan = CountOnly("row counts only, as asked")
    else:
        plan = plan_comparison(spec, source, target)
    if isinstance(plan, Plan):
        for column in plan.columns:
            if column.form.wall_zone is not None:
                sides.source.check_zone_conversion(column.form.wall_zone, spec.zone)
    stats.add_phase("catalog", time.perf_counter() - started)
    return plan, unsent


def _describe(side: Side, database: str, table: str) -> TableDescription | None:
    with side.cursor() as cursor:
        return describe_table(cursor, database, table)


def _wait(sync: SyncPoints, point: Any, stats: CheckStats) -> bool:
    started = time.perf_counter()
    applied = bool(sync.wait_until_applied(point))
    stats.add_phase("wait", time.perf_counter() - started)
    return applied


def _count(
    sides: Sides,
    spec: TableSpec,
    policy: ModePolicy,
    unsent: str | None,
    result: CheckResult,
    plan: CountOnly,
    sync: SyncPoints | None,
) -> None:
    started = time.perf_counter()
    result.method = "count"
    result.reason = plan.reason
    source_table = f"{quote(spec.source_database)}.{quote(spec.source_table)}"
    source_sql = f"SELECT COUNT(*), COALESCE(SUM({unsent or 'FALSE'}), 0) FROM {source_table}"
    if plan.target_exists:
        target_sql = f"SELECT COUNT(*) FROM {quote(spec.target_database)}.{quote(spec.target_table)}"
        source_rows, target_rows = sides.both((source_sql, ()), (target_sql, ()))
        target_count = int(target_rows[0][0])
    else:
        source_rows, target_count = sides.source.query(source_sql), 0
    stats = result.stats
    stats.source_rows, stats.source_unsent = int(source_rows[0][0]), int(source_rows[0][1])
    stats.target_rows = target_count
    if policy.keyed is not None and sync is not None and stats.source_rows != stats.target_rows:
        described = _describe(sides.source, spec.source_database, spec.source_table)
        key = spec.key or (described.schema.primary_key if described is not None else ())
        changed = policy.keyed.unsent_keys(result.positions["start"], key)
        stats.source_unsent = max(stats.source_rows, target_count) if changed.every_key else len(changed.keys)
    mismatch = policy.count_mismatch(stats.source_rows, stats.source_unsent, stats.target_rows)
    if mismatch and not result.caught_up:  # rows on their way, as the rows of a compare would be in flight
        result.notes.append(f"the target had not applied the source's point when counted: {mismatch}")
    else:
        result.count_mismatch = mismatch
    stats.add_phase("count", time.perf_counter() - started)


def _compare(
    sides: Sides,
    plan: Plan,
    settings: CheckSettings,
    sync: SyncPoints | None,
    policy: ModePolicy,
    unsent: str | None,
    result: CheckResult,
) -> None:
    stats = result.stats
    segments = checksum_chunks(sides, plan, settings, stats)
    candidates = bisect(sides, plan, settings, stats, segments)
    stats.candidates = len(candidates)
    started = time.perf_counter()
    before: Candidates = {}
    if sync is not None and candidates:
        result.caught_up = _wait_for_next_point(sync, result)
        before = _reread(sides, plan, settings, stats, candidates, values=False, unsent=None)
        stats.rechecked = len(candidates)
        candidates = {k: c for k, c in before.items() if c.differs}
        if candidates:
            result.caught_up = _wait_for_next_point(sync, result)
    final = _reread(sides, plan, settings, stats, candidates, values=True, unsent=unsent)
    keyed = _keyed_unsent(sync, policy, plan, result, final)
    stats.add_phase("recheck", time.perf_counter() - started)
    for canonical_key, candidate in final.items():
        if not candidate.differs:
            continue
        difference = RowDifference(candidate.kind, [key_json(v) for v in candidate.key])
        if candidate.source is not None and candidate.target is not None:
            difference.columns = column_differences(plan, candidate.source, candidate.target)
        earlier = before.get(canonical_key)
        if earlier is not None and _source_changed(earlier, candidate):
            difference.reason = "the source row changed while it was compared"
            result.in_flight.append(difference)
        elif not result.caught_up:
            difference.reason = "the target had not applied the source's point when compared"
            result.in_flight.append(difference)
        else:
            verdict, difference.reason = policy.classify(candidate.kind, _unsent_reason(policy, candidate, keyed))
            {DEFECT: result.differences, EXPLAINED: result.explained}.get(verdict, result.in_flight).append(difference)


def _keyed_unsent(
    sync: SyncPoints | None, policy: ModePolicy, plan: Plan, result: CheckResult, final: Candidates
) -> UnsentKeys | None:
    """The policy's keys changed after the last point waited for, asked once the rows were read (only
    when a row still differs and the target had caught up: otherwise nothing is blamed anyway)."""
    if policy.keyed is None or sync is None or not result.caught_up:
        return None
    if not any(candidate.differs for candidate in final.values()):
        return None
    point = (result.positions.get("rechecks") or [result.positions["start"]])[-1]
    return policy.keyed.unsent_keys(point, plan.key)


def _unsent_reason(policy: ModePolicy, candidate: Candidate, keyed: UnsentKeys | None) -> str:
    """Why the source has not sent the candidate's current version, or "" when it has."""
    if candidate.source is not None and candidate.source.unsent and policy.sent is not None:
        return policy.sent.describe()
    if keyed is not None and candidate.key in keyed:
        return keyed.reason
    return ""


def _wait_for_next_point(sync: SyncPoints, result: CheckResult) -> bool:
    """Read a new source point, record it and wait for the target to apply it."""
    point = sync.source_point()
    result.positions.setdefault("rechecks", []).append(point)
    return _wait(sync, point, result.stats)


def _reread(
    sides: Sides,
    plan: Plan,
    settings: CheckSettings,
    stats: CheckStats,
    candidates: Candidates,
    values: bool,
    unsent: str | None,
) -> Candidates:
    """The candidates read again by key (``values``: with their canonical values; ``unsent``: with the
    policy's verdict on whether the source has sent each row)."""
    keys = [c.key for c in candidates.values()]
    source, target = look_up(sides, plan, settings, stats, keys, values, unsent)
    return {k: Candidate(source.get(k), target.get(k)) for k in candidates}


def _source_changed(earlier: Candidate, now: Candidate) -> bool:
    if earlier.source is None or now.source is None:
        return (earlier.source is None) != (now.source is None)
    return earlier.source.row_hash != now.source.row_hash
