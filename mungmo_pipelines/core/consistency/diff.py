"""From differing pieces to differing rows, as reladiff does: cut each differing range into
``fanout`` pieces by its own keys, checksum them on both sides, and recurse into those that differ
until they hold at most ``leaf_rows`` rows; only then read rows, and only their key and row hash.
Full (canonical) rows are read by key, for the rows that still differ, to name the columns.

Each level runs a few statements whatever the number of ranges (ranges are batched into one
statement per side), and reads only rows of ranges that differ, so work and rows transferred
grow with the differences, not with the table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mungmo_pipelines.core.consistency.chunks import CheckSettings, Segment, tally_ranges
from mungmo_pipelines.core.consistency.expressions import Domain
from mungmo_pipelines.core.consistency.plan import Plan, SideSql
from mungmo_pipelines.core.consistency.ranges import Key, KeyRange, keys_sql, position_sql, ranges_sql
from mungmo_pipelines.core.consistency.result import DIFFERENT, EXTRA, MISSING, CheckStats, ColumnDifference
from mungmo_pipelines.core.consistency.sides import Rows, Sides

T = TypeVar("T")
CanonicalKey = tuple[bytes, ...]


@dataclass(frozen=True)
class Sighting:
    """A row as one side showed it: its key as stored, its row hash and, when asked for, its canonical
    values and whether the source has not sent it yet (the policy's ``unsent`` SQL)."""

    key: Key
    row_hash: int
    values: tuple[bytes | None, ...] = ()
    unsent: Any = None


@dataclass(frozen=True)
class Candidate:
    """One key as both sides showed it (``None``: absent)."""

    source: Sighting | None
    target: Sighting | None

    @property
    def key(self) -> Key:
        present = self.source or self.target
        assert present is not None
        return present.key

    @property
    def differs(self) -> bool:
        if self.source is None or self.target is None:
            return (self.source is None) != (self.target is None)
        return self.source.row_hash != self.target.row_hash

    @property
    def kind(self) -> str:
        return MISSING if self.target is None else EXTRA if self.source is None else DIFFERENT


Candidates = dict[CanonicalKey, Candidate]


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _row_select(side: SideSql, values: bool, unsent: str | None) -> str:
    parts = [*side.key_columns, *side.canonical_key, side.row_hash]
    if values:
        parts.extend(side.values)
    if unsent:
        parts.append(f"({unsent.replace('%', '%%')})")  # the statement has parameters: % is PyMySQL's
    return ", ".join(parts)


def _sightings(rows: Rows, width: int, values: bool, unsent: bool) -> dict[CanonicalKey, Sighting]:
    found = {}
    for row in rows:
        key, canonical_key, row_hash = tuple(row[:width]), tuple(row[width : 2 * width]), int(row[2 * width])
        rest = row[2 * width + 1 :]
        found[canonical_key] = Sighting(
            key,
            row_hash,
            tuple(rest[: len(rest) - unsent]) if values else (),
            rest[-1] if unsent else None,
        )
    return found


def read_leaves(
    sides: Sides, plan: Plan, settings: CheckSettings, stats: CheckStats, leaves: Sequence[KeyRange]
) -> Candidates:
    """Key and row hash of every row in ``leaves``, both sides; the keys whose rows differ."""
    candidates: Candidates = {}
    width = len(plan.key)
    for batch in batches(leaves, settings.ranges_per_query):
        queries = []
        for side in (plan.source, plan.target):
            where, params = ranges_sql(side.key_refs, batch)
            queries.append((f"SELECT {_row_select(side, False, None)} FROM {side.table} WHERE {where}", params))
        source_rows, target_rows = sides.both(*queries)
        stats.rows_fetched += len(source_rows) + len(target_rows)
        source, target = _sightings(source_rows, width, False, False), _sightings(target_rows, width, False, False)
        for canonical_key in source.keys() | target.keys():
            candidate = Candidate(source.get(canonical_key), target.get(canonical_key))
            if candidate.differs:
                candidates[canonical_key] = candidate
    return candidates


def _split_points(sides: Sides, plan: Plan, role: str, segments: Sequence[Segment], fanout: int) -> list[list[Key]]:
    """Keys cutting each segment into ``fanout`` pieces of about equal rows on ``role``'s side (one
    statement for all of them: row numbers per segment, every n-th kept)."""
    side = plan.side(role)
    width = len(side.key_refs)
    aliases = ", ".join(f"k{i}" for i in range(width))
    selected = ", ".join(f"{ref} AS k{i}" for i, ref in enumerate(side.key_refs))
    key_ranges = [s.range for s in segments]
    segment, segment_params = position_sql(side.key_refs, KeyRange.inner_bounds(key_ranges))
    where, where_params = ranges_sql(side.key_refs, key_ranges)
    sql = (
        f"SELECT segment, {aliases} FROM (SELECT segment, {aliases}, ROW_NUMBER() OVER (PARTITION BY segment "
        f"ORDER BY {aliases}) AS rn, COUNT(*) OVER (PARTITION BY segment) AS in_segment FROM (SELECT {segment} AS "
        f"segment, {selected} FROM {side.table} WHERE {where}) AS picked) AS numbered "
        "WHERE rn > 1 AND MOD(rn - 1, CEIL(in_segment / %s)) = 0 ORDER BY segment, rn"
    )
    points: list[list[Key]] = [[] for _ in segments]
    for row in sides.of(role).query(sql, [*segment_params, *where_params, fanout]):
        points[int(row[0])].append(tuple(row[1 : 1 + width]))
    return points


def bisect(
    sides: Sides, plan: Plan, settings: CheckSettings, stats: CheckStats, segments: Sequence[Segment]
) -> Candidates:
    """The keys whose rows differ within the differing ``segments`` (in key order)."""
    started = time.perf_counter()
    candidates: Candidates = {}
    level = list(segments)
    depth = 0
    while level:
        depth += 1
        small = settings.leaf_rows if depth <= settings.max_bisection_levels else float("inf")
        # A range empty on one side differs in every row of the other: read them, cutting finds nothing more.
        readable = [min(s.source.rows, s.target.rows) == 0 or max(s.source.rows, s.target.rows) <= small for s in level]
        leaves = [s.range for s, read in zip(level, readable, strict=True) if read]
        to_split = [s for s, read in zip(level, readable, strict=True) if not read]
        if to_split:
            stats.bisection_levels += 1
            stats.ranges_bisected += len(to_split)
        cut: list[tuple[Segment, list[Key]]] = []
        for role in ("source", "target"):
            mine = [s for s in to_split if (s.source.rows >= s.target.rows) == (role == "source")]
            for batch in batches(mine, settings.ranges_per_query):
                points = _split_points(sides, plan, role, batch, settings.fanout)
                stats.boundary_keys += sum(len(p) for p in points)
                cut.extend(zip(batch, points, strict=True))
        order = {id(s): i for i, s in enumerate(to_split)}
        cut.sort(key=lambda pair: order[id(pair[0])])
        # A range whose rows changed since it was counted may have nothing left to cut at: read it.
        leaves.extend(s.range for s, points in cut if not points)
        splittable = [(s, points) for s, points in cut if points]
        next_level: list[Segment] = []
        per_query = max(1, min(settings.ranges_per_query, settings.pieces_per_query // settings.fanout))
        for group in batches(splittable, per_query):
            pieces = [piece for s, points in group for piece in s.range.split(points)]
            next_level.extend(s for s in tally_ranges(sides, plan, pieces, [s.range for s, _ in group]) if s.differs)
        candidates.update(read_leaves(sides, plan, settings, stats, leaves))
        level = next_level
    stats.add_phase("bisect", time.perf_counter() - started)
    return candidates


def look_up(
    sides: Sides,
    plan: Plan,
    settings: CheckSettings,
    stats: CheckStats,
    keys: Sequence[Key],
    values: bool = False,
    unsent: str | None = None,
) -> tuple[dict[CanonicalKey, Sighting], dict[CanonicalKey, Sighting]]:
    """The rows with these keys on each side: the target read first, then the source, so the target
    never shows a source change later than the one the source shows. ``unsent``: SQL over a source
    row, read along (the policy's verdict on whether the source has sent it)."""
    width = len(plan.key)
    found: dict[str, dict[CanonicalKey, Sighting]] = {"source": {}, "target": {}}
    for role in ("target", "source"):
        side = plan.side(role)
        role_unsent = unsent if role == "source" else None
        for batch in batches(keys, settings.keys_per_query):
            where, params = keys_sql(side.key_refs, batch)
            rows = sides.of(role).query(
                f"SELECT {_row_select(side, values, role_unsent)} FROM {side.table} WHERE {where}", params
            )
            stats.rows_fetched += len(rows)
            found[role].update(_sightings(rows, width, values, role_unsent is not None))
    return found["source"], found["target"]


def value_text(value: bytes | None, domain: Domain) -> str | None:
    """A canonical value as shown in a result: bytes as 0x-hex, everything else as its text."""
    if value is None:
        return None
    if domain == Domain.BYTES:
        return "0x" + value.hex()
    return value.decode("utf-8", errors="backslashreplace")


def column_differences(plan: Plan, source: Sighting, target: Sighting) -> list[ColumnDifference]:
    return [
        ColumnDifference(
            column.source, column.target, value_text(mine, column.form.domain), value_text(theirs, column.form.domain)
        )
        for column, mine, theirs in zip(plan.columns, source.values, target.values, strict=True)
        if mine != theirs
    ]
