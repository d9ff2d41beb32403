"""Where a binlog reader is: MariaDB GTIDs, the GTID state, and the position a reader resumes from.

Positions are their own small frozen types (as Debezium's binlog connectors keep offsets apart
from the change events): a consumer stores ``BinlogPosition.as_offset()`` beside what it wrote
and hands ``BinlogPosition.from_offset()`` back to the reader after a restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

_GTID = re.compile(r"^\s*(\d+)-(\d+)-(\d+)\s*$")


class Gtid(NamedTuple):
    """A MariaDB GTID ``domain-server-sequence`` (``0-1-42``); one per transaction, so a named tuple."""

    domain: int
    server_id: int
    sequence: int

    @classmethod
    def parse(cls, text: str) -> Gtid:
        match = _GTID.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a MariaDB GTID (expected domain-server-sequence, e.g. 0-1-42)")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.sequence}"


@dataclass(frozen=True)
class GtidState:
    """MariaDB's GTID state: the last GTID of each replication domain (``@@gtid_binlog_pos`` form).

    A replica that sends this state as ``@slave_connect_state`` receives every transaction after
    it, in every domain.
    """

    gtids: tuple[Gtid, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> GtidState:
        """``"0-1-42,1-2-7"``. Several GTIDs of one domain (Debezium lists one per domain and
        server) keep the one with the highest sequence: MariaDB orders a domain by sequence."""
        latest: dict[int, Gtid] = {}
        for part in (text or "").replace("\n", "").split(","):
            if part.strip():
                gtid = Gtid.parse(part)
                if gtid.domain not in latest or gtid.sequence > latest[gtid.domain].sequence:
                    latest[gtid.domain] = gtid
        return cls(tuple(sorted(latest.values())))

    def advance(self, gtid: Gtid) -> GtidState:
        """The state after the transaction ``gtid`` committed."""
        if len(self.gtids) == 1 and self.gtids[0].domain == gtid.domain:
            return GtidState((gtid,))
        kept = tuple(g for g in self.gtids if g.domain != gtid.domain)
        return GtidState(tuple(sorted((*kept, gtid))))

    def domain(self, domain: int) -> Gtid | None:
        for gtid in self.gtids:
            if gtid.domain == domain:
                return gtid
        return None

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.gtids)


@dataclass(frozen=True)
class BinlogPosition:
    """Where to resume reading: after a whole transaction, or inside one.

    ``gtids`` is the state of the transactions completed before this point and ``file``/``pos``
    the same point in binlog coordinates (MariaDB 12.3+ can keep the binlog inside InnoDB, where
    only the GTID state exists, so the reader resumes by GTID by default and by file/pos when asked
    or when there is no GTID state).

    Inside a transaction, ``file``/``pos`` is where the transaction starts (its GTID event),
    ``transaction`` is its GTID, ``events`` the number of its events already handled (counting the
    GTID event, ANNOTATE_ROWS, TABLE_MAP and rows events, as Debezium's ``event`` offset does) and
    ``rows`` the rows already handled of the next rows event (Debezium's ``row``). A reader started
    here skips exactly those and delivers the rest, so no row is lost or repeated.
    """

    gtids: GtidState
    file: str | None = None
    pos: int | None = None
    transaction: Gtid | None = None
    events: int = 0
    rows: int = 0

    def __post_init__(self) -> None:
        if (self.file is None) != (self.pos is None):
            raise ValueError(f"a binlog position needs both file and pos, got file={self.file!r} pos={self.pos!r}")
        if self.events < 0 or self.rows < 0:
            raise ValueError(f"events and rows to skip must not be negative, got {self.events} and {self.rows}")
        if self.rows and not self.events:
            raise ValueError("rows to skip need the number of events before them (events > 0)")

    @property
    def inside_transaction(self) -> bool:
        return self.events > 0

    def at_file_pos(self) -> BinlogPosition:
        """The same position without the GTID state (forces a file/pos resume)."""
        return replace(self, gtids=GtidState())

    def as_offset(self) -> dict[str, Any]:
        """The position in Debezium's MariaDB offset keys (``file``, ``pos``, ``gtids``, ``event``,
        ``row``), plus ``transaction_gtid`` inside a transaction; zero skips are left out as
        Debezium leaves them out. Debezium adds ``server_id`` and ``ts_sec`` from the event."""
        offset: dict[str, Any] = {"file": self.file or "", "pos": self.pos or 0}
        if self.gtids.gtids:
            offset["gtids"] = str(self.gtids)
        if self.events:
            offset["event"] = self.events
        if self.rows:
            offset["row"] = self.rows
        if self.transaction is not None:
            offset["transaction_gtid"] = str(self.transaction)
        return offset

    @classmethod
    def from_offset(cls, offset: dict[str, Any]) -> BinlogPosition:
        """Reads ``as_offset()`` and Debezium's own MariaDB offsets. Debezium's carry no
        ``transaction_gtid``: their skips then apply to the first transaction the server sends,
        as Debezium applies them."""
        file = offset.get("file") or None
        transaction = offset.get("transaction_gtid")
        return cls(
            gtids=GtidState.parse(offset.get("gtids")),
            file=file,
            pos=int(offset["pos"]) if file is not None else None,
            transaction=Gtid.parse(transaction) if transaction else None,
            events=int(offset.get("event", 0)),
            rows=int(offset.get("row", 0)),
        )
