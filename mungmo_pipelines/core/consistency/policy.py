"""Which differences a replication mode explains, and which are defects.

What a mode cannot carry, it cannot be blamed for, but what it can carry it must (the table is
:func:`policy_markdown`, in docs/consistency.md). History is not known, so an explained row is any
row of that kind: in incrementing mode a hand edit on the target looks like an update the mode did
not carry, and an extra row inserted by hand looks like a deleted one. A missing or different row
is never explained: it is a defect, unless the source has not sent its current version yet, which
its stored offset tells (a :class:`SentRule`: then it is in flight). A source whose stored offset
cannot be read as SQL over its rows (a binlog position) tells it by key instead (a
:class:`KeyedSentRule`: the keys changed after the point compared at), for a row of any kind.

Row counts follow the same rule: where deletes are not carried the target may hold more rows than
the source, never fewer than the source has sent; where every change is carried they are equal, up
to the rows whose keys changed after what the source has sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mungmo_pipelines.core.consistency.result import DIFFERENT, EXTRA
from mungmo_pipelines.core.errors import ConsistencyError

if TYPE_CHECKING:
    from mungmo_pipelines.core.consistency.catalog import TableDescription

_EXPLAINS = {
    "cdc": frozenset(),
    "bulk": frozenset({EXTRA}),
    "incrementing": frozenset({EXTRA, DIFFERENT}),
    "timestamp": frozenset({EXTRA}),
    "timestamp+incrementing": frozenset({EXTRA}),
}
_WHY = {
    "cdc": "every change is in the binary log: every difference is a defect",
    "bulk": "every run re-sends every row; a row deleted from the source is never deleted from the target",
    "incrementing": "only rows with new ids are sent: no updates, no deletes",
    "timestamp": "an update moves the timestamp and is sent; deletes are not",
    "timestamp+incrementing": "an update moves the timestamp and is sent; deletes are not",
}
_NOT_CARRIED = {EXTRA: "deletes", DIFFERENT: "updates"}

DEFECT, EXPLAINED, IN_FLIGHT = "defect", "explained", "in_flight"


class SentRule(Protocol):
    """What a source has sent, as SQL over its table (its stored offset, for the JDBC source)."""

    def unsent_sql(self, source: TableDescription) -> str:
        """A boolean SQL expression over a source row, true when the source has not sent the row's
        current version yet; evaluated in the check's source session (``time_zone`` = the check's zone).
        Raises :class:`ConsistencyError` naming a column the table lacks."""
        ...

    def describe(self) -> str:
        """Why such a row is in flight, for a difference's ``reason``."""
        ...


@dataclass(frozen=True)
class UnsentKeys:
    """The keys a source changed after a point, which it has not sent (``every_key``: it may not have
    sent any row, as before its first offset or during its initial snapshot), and why."""

    reason: str
    keys: frozenset[tuple[Any, ...]] = field(default_factory=frozenset)
    every_key: bool = False

    def __contains__(self, key: object) -> bool:
        return self.every_key or key in self.keys


class KeyedSentRule(Protocol):
    """What a source has sent, told by key from a point of its :class:`SyncPoints` (a CDC source: the
    keys its binary log changed after the position its stored offset reached)."""

    def unsent_keys(self, point: Any, key_columns: Sequence[str]) -> UnsentKeys:
        """The keys (values of ``key_columns`` as the check's source session reads them) changed after
        ``point``, up to now: called after the rows were read, so every change they show is in it."""
        ...


@dataclass(frozen=True)
class ModePolicy:
    """The mode, and (optionally) what the source has sent: rows beyond it are in flight, not missing
    or different (``sent``: as SQL over a source row; ``keyed``: by key, from the point compared at)."""

    mode: str = "cdc"
    sent: SentRule | None = None
    keyed: KeyedSentRule | None = None

    def __post_init__(self) -> None:
        if self.mode not in _EXPLAINS:
            raise ConsistencyError(f"mode {self.mode!r}: expected one of {', '.join(_EXPLAINS)}")

    def explains(self, kind: str) -> bool:
        return kind in _EXPLAINS[self.mode]

    def classify(self, kind: str, unsent: str = "") -> tuple[str, str]:
        """(``DEFECT``, ``EXPLAINED`` or ``IN_FLIGHT``, why) for a confirmed difference of ``kind``;
        ``unsent``: why the source has not sent the row's current version ("" when it has)."""
        if self.explains(kind):
            return EXPLAINED, f"{self.mode} mode does not carry {_NOT_CARRIED[kind]}"
        if unsent:
            return IN_FLIGHT, unsent
        return DEFECT, ""

    def count_mismatch(self, source_rows: int, unsent_rows: int, target_rows: int) -> str:
        """Why the row counts contradict the mode ("" when they agree with it)."""
        sent = source_rows - unsent_rows
        sent_text = f"{sent} of them sent" if unsent_rows else "all of them sent"
        if self.explains(EXTRA):
            if target_rows >= sent:
                return ""
            return (
                f"the target has {target_rows} rows, fewer than the {sent} the source has sent (source {source_rows} "
                f"rows, {sent_text}): rows were lost or deleted on the target"
            )
        if target_rows == source_rows:
            return ""
        if abs(target_rows - source_rows) <= unsent_rows:
            return ""  # every row short or over may be one whose change the source has not sent yet
        unsent = f" ({unsent_rows} of its keys changed after what it has sent)" if unsent_rows else ""
        return f"the source has {source_rows} rows{unsent} and the target {target_rows}"


def policy_markdown() -> str:
    """The modes and what each explains, as the table in docs/consistency.md."""
    lines = ["| mode | explained (not defects) | why | row counts pass when |", "| --- | --- | --- | --- |"]
    for mode, kinds in _EXPLAINS.items():
        explained = ", ".join(sorted(kinds)) or "nothing"
        counts = (
            "target >= rows the source has sent"
            if EXTRA in kinds
            else "target = source, give or take the keys changed after what the source has sent"
        )
        lines.append(f"| {mode} | {explained} | {_WHY[mode]} | {counts} |")
    return "\n".join(lines)
