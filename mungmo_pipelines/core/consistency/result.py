"""A check's result: plain data that round-trips through JSON (Dagster metadata shows a summary; a
repair reads the full list of differing keys back with :meth:`CheckResult.from_json`).

Keys are lists in key-column order. Values JSON has no type for are tagged so they come back as
the same SQL parameter: ``{"decimal": "12.50"}``, ``{"bytes": "<hex>"}``; dates, times and
datetimes are ISO strings, which MariaDB compares with those columns exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import orjson

MISSING = "missing"  # in the source, not in the target
EXTRA = "extra"  # in the target, not in the source
DIFFERENT = "different"  # in both, with different values


def key_json(value: Any) -> Any:
    """A key value as JSON (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        sign, span = ("-", -value) if value < dt.timedelta(0) else ("", value)
        seconds = span.days * 86_400 + span.seconds
        return f"{sign}{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.{span.microseconds:06}"
    raise TypeError(f"key value {value!r} ({type(value).__name__}) has no JSON form")


def key_value(value: Any) -> Any:
    """A key value from its JSON form, as a SQL parameter."""
    if isinstance(value, dict) and "decimal" in value:
        return Decimal(value["decimal"])
    if isinstance(value, dict) and "bytes" in value:
        return bytes.fromhex(value["bytes"])
    return value


@dataclass
class ColumnDifference:
    """One column of a row present on both sides, as compared (canonical text; bytes as 0x-hex)."""

    column: str
    target_column: str
    source: str | None
    target: str | None


@dataclass
class RowDifference:
    kind: str
    key: list[Any]
    columns: list[ColumnDifference] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowDifference:
        return cls(data["kind"], data["key"], [ColumnDifference(**c) for c in data["columns"]], data["reason"])


@dataclass
class CheckStats:
    """Where the work went. ``rows_fetched`` counts table rows read into Python (key + row hash at
    the bisection's leaves, rows looked up by key); ``boundary_keys`` the keys read to cut ranges;
    ``pieces`` the per-range checksums compared; ``phases_s`` the seconds per phase. ``source_unsent``
    (counts only): source rows the source has not sent yet."""

    source_rows: int = 0
    target_rows: int = 0
    source_unsent: int = 0
    chunks: int = 0
    pieces: int = 0
    ranges_bisected: int = 0
    bisection_levels: int = 0
    candidates: int = 0
    rechecked: int = 0
    rows_fetched: int = 0
    boundary_keys: int = 0
    queries: int = 0
    duration_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)

    def add_phase(self, phase: str, seconds: float) -> None:
        self.phases_s[phase] = round(self.phases_s.get(phase, 0.0) + seconds, 6)


@dataclass
class CheckResult:
    """``differences`` are defects; ``explained`` are differences the replication mode cannot carry
    (``reason`` says which); ``in_flight`` are rows the source was still changing, or had not sent yet,
    when compared. ``method`` is "chunks", or "count" when rows are only counted (``reason`` says why);
    ``count_mismatch`` then says how the counts contradict the mode ("" when they agree with it)."""

    source: str
    target: str
    method: str
    mode: str
    key: list[str] = field(default_factory=list)
    differences: list[RowDifference] = field(default_factory=list)
    explained: list[RowDifference] = field(default_factory=list)
    in_flight: list[RowDifference] = field(default_factory=list)
    stats: CheckStats = field(default_factory=CheckStats)
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    # The source points the comparison waited for: {"start": P0, "rechecks": [P1, P2]}.
    positions: dict[str, Any] = field(default_factory=dict)
    # False when a wait for the target gave up: the rows still differing then are reported in flight.
    caught_up: bool = True
    count_mismatch: str = ""

    @property
    def passed(self) -> bool:
        return not self.differences and not self.count_mismatch

    def counts(self) -> dict[str, int]:
        found = {kind: 0 for kind in (MISSING, EXTRA, DIFFERENT)}
        for difference in self.differences:
            found[difference.kind] += 1
        return {**found, "explained": len(self.explained), "in_flight": len(self.in_flight)}

    def summary(self, first: int = 10) -> dict[str, Any]:
        """The counts, statistics and the first differences: small enough for run metadata."""
        return {
            "passed": self.passed,
            "source": self.source,
            "target": self.target,
            "method": self.method,
            "mode": self.mode,
            "reason": self.reason,
            "count_mismatch": self.count_mismatch,
            "caught_up": self.caught_up,
            "counts": self.counts(),
            "first_differences": [asdict(d) for d in self.differences[:first]],
            "stats": asdict(self.stats),
            "positions": self.positions,
            "notes": self.notes,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        rows: dict[str, Any] = {
            kind: [RowDifference.from_dict(d) for d in data[kind]] for kind in ("differences", "explained", "in_flight")
        }
        plain: dict[str, Any] = {k: v for k, v in data.items() if k not in rows and k != "stats"}
        return cls(**plain, **rows, stats=CheckStats(**data["stats"]))

    @classmethod
    def from_json(cls, text: bytes | str) -> CheckResult:
        return cls.from_dict(orjson.loads(text))
