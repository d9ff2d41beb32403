"""Key ranges and the SQL that selects, numbers and groups rows by them.

Keys are tuples in key-column order; a range includes its lower bound and excludes its upper one,
``None`` meaning unbounded. Bounds are always key values read from one of the tables, and ranges
are always listed in key order as the database returned them, so Python never compares keys (it
could not follow the columns' collations). Lexicographic comparisons on composite keys are written
in the expanded form MariaDB's range optimizer reads (``a > 1 OR (a = 1 AND b >= 5)``), as
pt-table-checksum does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Key = tuple[Any, ...]
Sql = tuple[str, list[Any]]


@dataclass(frozen=True)
class KeyRange:
    lower: Key | None
    upper: Key | None

    @staticmethod
    def inner_bounds(ranges: Sequence[KeyRange]) -> list[Key]:
        """The keys between consecutive ``ranges`` (each range after the first has a lower bound)."""
        bounds = [r.lower for r in ranges[1:]]
        if any(bound is None for bound in bounds):
            raise ValueError("only the first of consecutive key ranges may be unbounded below")
        return [bound for bound in bounds if bound is not None]

    def split(self, boundaries: Sequence[Key]) -> list[KeyRange]:
        """This range cut at ``boundaries`` (interior keys, in key order)."""
        edges = [self.lower, *boundaries, self.upper]
        return [KeyRange(low, high) for low, high in itertools.pairwise(edges)]


def compare_sql(refs: Sequence[str], op: str, key: Key) -> Sql:
    """``(refs) op key`` in key order, for ``op`` one of ``>=`` and ``<``."""
    if len(refs) == 1:
        return f"{refs[0]} {op} %s", [key[0]]
    strict = op[0]
    terms: list[str] = []
    params: list[Any] = []
    for i, ref in enumerate(refs):
        last = i == len(refs) - 1
        parts = [f"{refs[j]} = %s" for j in range(i)] + [f"{ref} {op if last else strict} %s"]
        terms.append("(" + " AND ".join(parts) + ")")
        params.extend(key[: i + 1])
    return "(" + " OR ".join(terms) + ")", params


def range_sql(refs: Sequence[str], key_range: KeyRange) -> Sql:
    parts: list[str] = []
    params: list[Any] = []
    for op, bound in ((">=", key_range.lower), ("<", key_range.upper)):
        if bound is not None:
            sql, values = compare_sql(refs, op, bound)
            parts.append(sql)
            params.extend(values)
    return (" AND ".join(parts) if parts else "TRUE"), params


def ranges_sql(refs: Sequence[str], key_ranges: Sequence[KeyRange]) -> Sql:
    """Rows in any of ``key_ranges`` (disjoint)."""
    parts, params = [], []
    for key_range in key_ranges:
        sql, values = range_sql(refs, key_range)
        parts.append(f"({sql})")
        params.extend(values)
    return "(" + " OR ".join(parts) + ")", params


def position_sql(refs: Sequence[str], boundaries: Sequence[Key]) -> Sql:
    """How many of ``boundaries`` (in key order) are at or below the row's key: the index of the piece
    the row falls in, as a balanced tree of ``IF``s (log2 comparisons per row, any key type)."""

    def tree(low: int, high: int) -> Sql:
        if low == high:
            return str(low), []
        middle = (low + high + 1) // 2
        test, params = compare_sql(refs, "<", boundaries[middle - 1])
        below, below_params = tree(low, middle - 1)
        above, above_params = tree(middle, high)
        return f"IF({test}, {below}, {above})", params + below_params + above_params

    return tree(0, len(boundaries))


def keys_sql(refs: Sequence[str], keys: Sequence[Key]) -> Sql:
    """Rows whose key is one of ``keys``."""
    if len(refs) == 1:
        return f"{refs[0]} IN ({', '.join(['%s'] * len(keys))})", [key[0] for key in keys]
    term = "(" + " AND ".join(f"{ref} = %s" for ref in refs) + ")"
    return "(" + " OR ".join([term] * len(keys)) + ")", [value for key in keys for value in key]
