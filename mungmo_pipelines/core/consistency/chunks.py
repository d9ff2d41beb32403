"""Chunk checksums, pt-table-checksum style, computed by the database.

The source's key is walked in chunks sized to take about ``chunk_seconds`` each (start small,
then scale by the measured rate, as ``--chunk-time`` does). One query per chunk reads the chunk's
end and, every ``piece_rows`` keys, a piece boundary; then both sides checksum the same chunk at
once, grouped by piece: ``COUNT(*)`` and ``BIT_XOR(<row hash>)`` per piece. Comparing pieces rather
than whole chunks is the bisection's first level done in the same scan, so a few scattered
differences cost re-reading a few pieces instead of every chunk they fall in.

The first chunk has no lower bound and the last no upper one, so target rows outside the source's
key range are counted too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from mungmo_pipelines.core.consistency.plan import Plan, SideSql
from mungmo_pipelines.core.consistency.ranges import Key, KeyRange, Sql, position_sql, range_sql, ranges_sql
from mungmo_pipelines.core.consistency.result import CheckStats
from mungmo_pipelines.core.consistency.sides import Rows, Sides


@dataclass(frozen=True)
class CheckSettings:
    """``chunk_seconds``: the time one chunk query should take (pt-table-checksum's 0.5 s).
    ``piece_rows``: rows per compared piece inside a chunk (small pieces cost the equal check little
    and keep the re-reading of a diff small). ``fanout``: pieces a differing range is cut into per
    bisection level. ``leaf_rows``: ranges this small (on both sides) are read as key + row hash.
    ``ranges_per_query``: ranges one statement selects (MariaDB's range optimizer slows down
    beyond a few hundred); ``pieces_per_query``: pieces one statement groups by;
    ``keys_per_query``: keys one lookup selects. ``max_bisection_levels``: past it, ranges still
    differing are read as they are (a guard: ranges halve every two levels when both sides order
    keys alike, so it is never reached then)."""

    chunk_seconds: float = 0.5
    first_chunk_rows: int = 1000
    max_chunk_rows: int = 2_000_000
    piece_rows: int = 128
    fanout: int = 16
    leaf_rows: int = 4
    ranges_per_query: int = 128
    pieces_per_query: int = 1024
    keys_per_query: int = 500
    max_bisection_levels: int = 32

    def __post_init__(self) -> None:
        if self.chunk_seconds <= 0 or min(self.first_chunk_rows, self.piece_rows, self.leaf_rows) < 1:
            raise ValueError("chunk_seconds must be positive and row counts at least 1")
        if self.fanout < 2 or min(self.ranges_per_query, self.pieces_per_query, self.keys_per_query) < 1:
            raise ValueError("fanout must be at least 2 and per-query limits at least 1")


@dataclass(frozen=True)
class Tally:
    rows: int
    checksum: int


EMPTY = Tally(0, 0)


@dataclass(frozen=True)
class Segment:
    """A key range with each side's tally."""

    range: KeyRange
    source: Tally
    target: Tally

    @property
    def differs(self) -> bool:
        return self.source != self.target


def _aliases(side: SideSql) -> str:
    return ", ".join(f"k{i}" for i in range(len(side.key_refs)))


def _key_columns(side: SideSql) -> str:
    return ", ".join(f"{ref} AS k{i}" for i, ref in enumerate(side.key_refs))


def tally_sql(side: SideSql, where: Sql, boundaries: Sequence[Key]) -> Sql:
    """Count and checksum per piece (pieces cut at ``boundaries``) of the rows ``where`` selects."""
    where_sql, where_params = where
    aggregates = f"COUNT(*), BIT_XOR({side.row_hash}) FROM {side.table} WHERE {where_sql}"
    if not boundaries:  # no GROUP BY: one row, even for no rows
        return f"SELECT 0, {aggregates}", where_params
    piece, piece_params = position_sql(side.key_refs, boundaries)
    return f"SELECT {piece} AS piece, {aggregates} GROUP BY piece", piece_params + where_params


def _tallies(rows: Rows) -> dict[int, Tally]:
    return {int(piece): Tally(int(count), int(checksum or 0)) for piece, count, checksum in rows}


def tally_ranges(sides: Sides, plan: Plan, key_ranges: Sequence[KeyRange], within: Sequence[KeyRange]) -> list[Segment]:
    """Both sides' tallies of ``key_ranges`` (in key order, together covering ``within``), at once."""
    boundaries = KeyRange.inner_bounds(key_ranges)
    queries = (
        tally_sql(plan.source, ranges_sql(plan.source.key_refs, within), boundaries),
        tally_sql(plan.target, ranges_sql(plan.target.key_refs, within), boundaries),
    )
    source_rows, target_rows = sides.both(*queries)
    source, target = _tallies(source_rows), _tallies(target_rows)
    return [Segment(r, source.get(i, EMPTY), target.get(i, EMPTY)) for i, r in enumerate(key_ranges)]


class ChunkSizer:
    """Rows for the next chunk: the rate the chunks so far ran at (rows and seconds each averaged
    with weight 0.75 for the past, as pt-table-checksum's WeightedAvgRate) times the target time,
    in whole pieces."""

    WEIGHT = 0.75

    def __init__(self, settings: CheckSettings) -> None:
        self.settings = settings
        self.rows = _whole_pieces(settings.first_chunk_rows, settings.piece_rows)
        self._rows_sum = 0.0
        self._seconds_sum = 0.0

    def observe(self, rows: int, seconds: float) -> None:
        self._rows_sum = self._rows_sum * self.WEIGHT + rows
        self._seconds_sum = self._seconds_sum * self.WEIGHT + seconds
        if self._seconds_sum <= 0 or self._rows_sum <= 0:
            return
        wanted = self._rows_sum / self._seconds_sum * self.settings.chunk_seconds
        self.rows = _whole_pieces(min(int(wanted), self.settings.max_chunk_rows), self.settings.piece_rows)


def _whole_pieces(rows: int, piece_rows: int) -> int:
    return max(1, -(-rows // piece_rows)) * piece_rows


def _chunk_bounds(
    sides: Sides, plan: Plan, lower: Key | None, rows: int, piece_rows: int
) -> tuple[list[Key], Key | None]:
    """The piece boundaries inside the chunk of ``rows`` source keys from ``lower``, and its end (the
    next chunk's start; ``None`` for the last chunk)."""
    side = plan.source
    width = len(side.key_refs)
    where, params = range_sql(side.key_refs, KeyRange(lower, None))
    sql = (
        f"SELECT rn, {_aliases(side)} FROM (SELECT {_aliases(side)}, ROW_NUMBER() OVER (ORDER BY {_aliases(side)}) "
        f"AS rn FROM (SELECT {_key_columns(side)} FROM {side.table} WHERE {where} ORDER BY "
        f"{', '.join(side.key_refs)} LIMIT %s) AS page) AS numbered WHERE MOD(rn - 1, %s) = 0 ORDER BY rn"
    )
    found = sides.source.query(sql, [*params, rows + 1, piece_rows])
    keys = [tuple(row[1 : 1 + width]) for row in found]
    if found and found[-1][0] == rows + 1:
        return keys[1:-1], keys[-1]
    return keys[1:], None


def checksum_chunks(sides: Sides, plan: Plan, settings: CheckSettings, stats: CheckStats) -> list[Segment]:
    """Every piece of both tables checksummed; the pieces that differ."""
    sizer = ChunkSizer(settings)
    differing: list[Segment] = []
    lower: Key | None = None
    while True:
        started = time.perf_counter()
        boundaries, upper = _chunk_bounds(sides, plan, lower, sizer.rows, settings.piece_rows)
        stats.boundary_keys += len(boundaries) + (upper is not None)
        chunk = KeyRange(lower, upper)
        measured = time.perf_counter()
        segments = tally_ranges(sides, plan, chunk.split(boundaries), [chunk])
        sizer.observe(sum(s.source.rows for s in segments), time.perf_counter() - measured)
        stats.chunks += 1
        stats.pieces += len(segments)
        stats.source_rows += sum(s.source.rows for s in segments)
        stats.target_rows += sum(s.target.rows for s in segments)
        differing.extend(s for s in segments if s.differs)
        stats.add_phase("checksum", time.perf_counter() - started)
        if upper is None:
            return differing
        lower = upper
