"""Which differences a replication mode explains, and which are defects.

What a mode cannot carry, it cannot be blamed for, but what it can carry it must:

=========================  ======================  ===================================================
mode                       explained               rule
=========================  ======================  ===================================================
cdc (binlog)               nothing                 every difference is a defect
bulk                       extra                   deletes are not carried (every run re-sends all rows)
incrementing               extra, different        only new ids are sent: no updates, no deletes
timestamp(+incrementing)   extra                   updates move the timestamp and are sent; deletes not
=========================  ======================  ===================================================

History is not known, so an explained row is any row of that kind: in incrementing mode a hand
edit on the target looks like an update the mode did not carry, and an extra row inserted by hand
looks like a deleted one. A missing row is never explained: it is a defect, unless the source has
not sent it yet, which the stored offset tells (``delivered_column`` above ``delivered_up_to``:
in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mungmo_pipelines.core.consistency.result import DIFFERENT, EXTRA, MISSING
from mungmo_pipelines.core.errors import ConsistencyError

_EXPLAINS = {
    "cdc": frozenset(),
    "bulk": frozenset({EXTRA}),
    "incrementing": frozenset({EXTRA, DIFFERENT}),
    "timestamp": frozenset({EXTRA}),
    "timestamp+incrementing": frozenset({EXTRA}),
}
_NOT_CARRIED = {EXTRA: "deletes", DIFFERENT: "updates"}

DEFECT, EXPLAINED, IN_FLIGHT = "defect", "explained", "in_flight"


@dataclass(frozen=True)
class ModePolicy:
    """``delivered_column``/``delivered_up_to``: the source column its stored offset is on and that
    offset, in the column's Python type (an int id; a naive datetime in the source's ``db.timezone``),
    or None when the source has stored none yet."""

    mode: str = "cdc"
    delivered_column: str | None = None
    delivered_up_to: Any = None

    def __post_init__(self) -> None:
        if self.mode not in _EXPLAINS:
            raise ConsistencyError(f"mode {self.mode!r}: expected one of {', '.join(_EXPLAINS)}")

    def classify(self, kind: str, delivered_value: Any = None) -> tuple[str, str]:
        """(``DEFECT``, ``EXPLAINED`` or ``IN_FLIGHT``, why) for a confirmed difference of ``kind``;
        ``delivered_value`` is the source row's ``delivered_column`` value (missing rows)."""
        if kind in _EXPLAINS[self.mode]:
            return EXPLAINED, f"{self.mode} mode does not carry {_NOT_CARRIED[kind]}"
        if kind == MISSING and self.delivered_column is not None:
            if self.delivered_up_to is None:
                return IN_FLIGHT, "the source has stored no offset yet: nothing is sent"
            try:
                beyond = delivered_value is not None and delivered_value > self.delivered_up_to
            except TypeError:
                raise ConsistencyError(
                    f"delivered_up_to {self.delivered_up_to!r} cannot be compared with {self.delivered_column} "
                    f"value {delivered_value!r}: expected the column's own type"
                ) from None
            if beyond:
                return IN_FLIGHT, (
                    f"{self.delivered_column} {delivered_value} is beyond the source's stored offset "
                    f"{self.delivered_up_to}: not sent yet"
                )
        return DEFECT, ""
