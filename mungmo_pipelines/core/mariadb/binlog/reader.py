"""The binlog reader: events from a replica connection to decoded changes with exact positions.

    reader = BinlogReader(settings, start=position, include=lambda db, table: db == "mungMo")
    for change in reader:          # TransactionBegin, RowChange, Statement, TransactionCommit, Heartbeat
        ...
        store(change.position)     # after handling it

Resuming: ``start`` is any position a change carried. The reader resumes by the GTID state by
default (file/pos when ``by_gtid=False`` or the position has no GTID state) and skips, inside a
transaction, the events and rows the position says were handled. A dropped connection (network,
``KILL`` of the dump thread, server restart) is reopened from the position of the last change
delivered, never from ``start``, so nothing is delivered twice or lost.

The reader always asks for ANNOTATE_ROWS events (the statement behind rows, Debezium's ``query``),
so its event counts inside a transaction are Debezium's with ``include.query=true``; Debezium
offsets written with ``include.query=false`` count one event fewer per annotated statement.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from zlib import crc32

import pymysql

from mungmo_pipelines.core.mariadb.binlog import wire
from mungmo_pipelines.core.mariadb.binlog.changes import (
    Change,
    Heartbeat,
    RowChange,
    RowsEventSource,
    Statement,
    TransactionBegin,
    TransactionCommit,
    TransactionContext,
)
from mungmo_pipelines.core.mariadb.binlog.charsets import Collations
from mungmo_pipelines.core.mariadb.binlog.positions import BinlogPosition, Gtid, GtidState
from mungmo_pipelines.core.mariadb.binlog.replica import (
    ER_MASTER_FATAL_ERROR_READING_BINLOG,
    RECONNECTABLE_ERRORS,
    BinlogDump,
    ReplicaSettings,
    open_dump,
)
from mungmo_pipelines.core.mariadb.binlog.rows import RowDecodeError, RowDecoder
from mungmo_pipelines.core.mariadb.binlog.table_map import parse_table_map, table_id_of, table_name_of
from mungmo_pipelines.core.mariadb.session import fetch_one

log = logging.getLogger(__name__)

# GTID event flags (MariaDB's Gtid_log_event).
FL_STANDALONE = 0x01
FL_GROUP_COMMIT_ID = 0x02
FL_PREPARED_XA = 0x40
FL_COMPLETED_XA = 0x80
_STATEMENT_DML = ("insert", "update", "delete", "replace", "load")
_DECODER_CACHE_LIMIT = 2048


class BinlogError(RuntimeError):
    """The binlog cannot be read on as asked; the message says what and what to do."""


class PositionUnavailable(BinlogError):
    """The server no longer has (or never had) the binlog at the requested position."""


class UnsupportedBinlogEvent(BinlogError):
    """An event whose changes this reader cannot deliver (named), refused rather than dropped."""


IncludeTable = Callable[[str, str], bool]


class BinlogReader:
    """Iterates decoded changes from ``start`` on; ``blocking=False`` stops at the binlog's end.

    ``include(database, table)`` picks the tables whose rows are delivered; the table maps of the
    others are not even parsed (a column type this reader refuses stops nothing there). Every
    transaction still delivers its begin and commit, so positions advance past other tables'
    changes, and statements (DDL) are delivered for every database: filter them by ``database``
    and by the statement itself.
    """

    def __init__(
        self,
        settings: ReplicaSettings,
        start: BinlogPosition,
        *,
        include: IncludeTable | None = None,
        by_gtid: bool = True,
        blocking: bool = True,
        reconnect_attempts: int = 5,
        reconnect_delay_seconds: float = 0.5,
    ) -> None:
        self.settings = settings
        self.include = include
        self.by_gtid = by_gtid
        self.blocking = blocking
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay_seconds = reconnect_delay_seconds
        self._start = start
        self._last: Change | None = None
        self.connections = 0
        self._dump: BinlogDump | None = None
        self._collations: Collations | None = None
        self._decoders: dict[bytes, RowDecoder] = {}

    @property
    def position(self) -> BinlogPosition:
        """Right after the last change delivered (``start`` before any): where a reconnect resumes."""
        return self._start if self._last is None else self._last.position

    def close(self) -> None:
        if self._dump is not None:
            self._dump.close()
            self._dump = None

    def __iter__(self) -> Iterator[Change]:
        failures = 0
        while True:
            try:
                self._open()
                for change in self._changes():
                    failures = 0
                    self._last = change
                    yield change
                return
            except (pymysql.OperationalError, pymysql.InternalError, OSError) as error:
                code = error.args[0] if error.args and isinstance(error.args[0], int) else None
                if code == ER_MASTER_FATAL_ERROR_READING_BINLOG:
                    message = str(error.args[-1])
                    if "max_allowed_packet" in message:
                        raise BinlogError(
                            f"the server cannot send an event larger than the reader's max_allowed_packet ({message}); "
                            "SET GLOBAL max_allowed_packet to more than the largest row event (it applies to new "
                            "connections) and max_allowed_packet= under [mysqld] in my.cnf"
                        ) from error
                    raise PositionUnavailable(_unavailable_message(self.position, message)) from error
                if code is not None and code not in RECONNECTABLE_ERRORS:
                    raise
                failures += 1
                if failures > self.reconnect_attempts:
                    raise BinlogError(
                        f"binlog connection to {self.settings.host}:{self.settings.port} lost {failures} times "
                        f"in a row ({error}); last delivered position {self.position}"
                    ) from error
                log.warning("binlog connection lost (%s); resuming from %s", error, self.position)
                time.sleep(self.reconnect_delay_seconds * 2 ** (failures - 1))
            finally:
                self.close()

    def _open(self) -> None:
        start = self.position
        by_gtid = self.by_gtid and (bool(start.gtids.gtids) or start.file is None)
        control = self.settings.connect()
        try:
            if self._collations is None:
                self._collations = Collations.load(control)
            with control.cursor() as cursor:
                cursor.execute("SELECT @@global.binlog_checksum")
                (checksum,) = fetch_one(cursor)
                if not by_gtid and not start.gtids.gtids:
                    cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (start.file, start.pos))
                    (state,) = fetch_one(cursor)
                    start = replace(start, gtids=GtidState.parse(state))
                    self._start, self._last = start, None
        finally:
            control.close()
        self._checksum = wire.CHECKSUM_CRC32 if str(checksum).upper() == "CRC32" else wire.CHECKSUM_OFF
        self._dump = open_dump(self.settings, start, by_gtid, self.blocking, str(checksum))
        self.connections += 1

    def _changes(self) -> Iterator[Change]:
        """Decodes events of the open dump into changes, applying the start position's skips."""
        start = self.position
        assert self._dump is not None and self._collations is not None
        read = self._dump.read
        collations = self._collations
        include = self.include
        state = start.gtids
        file = start.file or ""
        checksum = self._checksum
        tables: dict[int, RowDecoder | None] = {}
        # The transaction being read and its event counter (GTID event = 0).
        transaction: TransactionContext | None = None
        event_index = 0
        thread_id: int | None = None
        query: str | None = None
        # Skips for the transaction ``start`` points into (pending until its GTID event arrives).
        pending_skip = start if start.inside_transaction else None
        skip_events = skip_rows = 0
        header = wire.HEADER.unpack_from
        while True:
            packet = read()
            if packet is None:
                return
            timestamp, kind, server_id, size, next_pos, flags = header(packet, 1)
            pos = next_pos - size
            end = len(packet)
            if checksum == wire.CHECKSUM_CRC32 or kind == wire.FORMAT_DESCRIPTION:
                if kind == wire.FORMAT_DESCRIPTION:
                    # The algorithm of this binlog file: the byte before the FDE's own checksum.
                    checksum = packet[-5]
                if checksum == wire.CHECKSUM_CRC32:
                    end -= 4
                    if crc32(memoryview(packet)[1:end]) != int.from_bytes(packet[end:], "little"):
                        raise wire.BinlogFormatError(_where(kind, file, pos) + ": the event's CRC32 does not match")
            body = 1 + wire.HEADER_SIZE

            if kind == wire.ROTATE:
                file = packet[body + 8 : end].decode("ascii")
                continue
            if kind == wire.HEARTBEAT:
                if transaction is None:
                    file = packet[body:end].decode("ascii")
                    yield Heartbeat(BinlogPosition(state, file, next_pos), timestamp)
                continue
            if kind in (wire.FORMAT_DESCRIPTION, wire.GTID_LIST, wire.BINLOG_CHECKPOINT, wire.START_ENCRYPTION):
                continue
            if kind == wire.STOP:
                continue

            if kind == wire.GTID:
                if transaction is not None:
                    raise wire.BinlogFormatError(
                        _where(kind, file, pos) + f": transaction {transaction.gtid} has no commit"
                    )
                sequence = int.from_bytes(packet[body : body + 8], "little")
                domain = int.from_bytes(packet[body + 8 : body + 12], "little")
                gtid_flags = packet[body + 12]
                gtid = Gtid(domain, server_id, sequence)
                if gtid_flags & (FL_PREPARED_XA | FL_COMPLETED_XA):
                    raise UnsupportedBinlogEvent(
                        _where(kind, file, pos)
                        + f": transaction {gtid} is an XA transaction (XA PREPARE/COMMIT), whose rows are "
                        "logged before the outcome is known; this reader does not read XA transactions"
                    )
                transaction = TransactionContext(gtid, file, pos, state, bool(gtid_flags & FL_STANDALONE))
                event_index, thread_id, query = 0, None, None
                skip_events = skip_rows = 0
                if pending_skip is not None:
                    expected = pending_skip.transaction
                    if expected is None or expected == gtid:
                        skip_events, skip_rows, pending_skip = pending_skip.events, pending_skip.rows, None
                    elif expected.domain == domain and sequence > expected.sequence:
                        raise PositionUnavailable(
                            _where(kind, file, pos)
                            + f": resuming inside transaction {expected}, but the server sent {gtid} "
                            "after it without it: the binlog no longer holds that transaction"
                        )
                if skip_events == 0:
                    yield TransactionBegin(transaction, server_id, timestamp)
                event_index = 1
                continue

            if transaction is None:
                if flags & wire.IGNORABLE_FLAG:
                    continue
                raise wire.BinlogFormatError(
                    _where(kind, file, pos) + " outside a transaction (no GTID event before it)"
                )
            index = event_index
            event_index += 1
            skipped = index < skip_events

            if kind == wire.ANNOTATE_ROWS:
                query = packet[body:end].decode("utf-8", "replace")
            elif kind == wire.TABLE_MAP:
                # Tables left out are never parsed: a type this reader refuses there stops nothing.
                shape = packet[body + 6 : end]
                decoder = self._decoders.get(shape)
                if decoder is None and (include is None or include(*table_name_of(packet, body))):
                    if len(self._decoders) >= _DECODER_CACHE_LIMIT:
                        self._decoders.clear()
                    decoder = RowDecoder(parse_table_map(packet, body, end, collations))
                    self._decoders[shape] = decoder
                tables[table_id_of(packet, body)] = decoder
            elif kind in wire.ROWS_EVENTS:
                operation, post_header, compressed = wire.ROWS_EVENTS[kind]
                table_id = table_id_of(packet, body)
                if table_id not in tables:
                    raise wire.BinlogFormatError(
                        _where(kind, file, pos) + f": rows of table id {table_id} without its TABLE_MAP"
                    )
                decoder = tables[table_id]
                if decoder is None or skipped:
                    continue
                p = body + post_header
                if post_header == 10:
                    p += int.from_bytes(packet[p - 2 : p], "little") - 2
                width, p = wire.packed_int(packet, p)
                bitmap_bytes = (width + 7) // 8
                full = (1 << width) - 1
                images = 2 if operation == "update" else 1
                for _ in range(images):
                    if int.from_bytes(packet[p : p + bitmap_bytes], "little") != full:
                        raise UnsupportedBinlogEvent(
                            _where(kind, file, pos)
                            + f": a {operation} of {decoder.table_map.database}.{decoder.table_map.name} "
                            "without all columns: the server logs partial row images "
                            "(binlog_row_image=MINIMAL or NOBLOB); set binlog_row_image=FULL "
                            "(SET GLOBAL binlog_row_image = FULL; my.cnf: binlog_row_image=FULL)"
                        )
                    p += bitmap_bytes
                data, data_end = packet, end
                if compressed:
                    data, p = wire.uncompress(packet, p, end, _where(kind, file, pos)), 0
                    data_end = len(data)
                try:
                    if operation == "update":
                        pairs = decoder.pairs(data, p, data_end)
                    else:
                        images_read = decoder.images(data, p, data_end)
                except (IndexError, ValueError, struct.error) as error:
                    table = decoder.table_map.schema
                    raise RowDecodeError(
                        _where(kind, file, pos)
                        + f": rows of {table.database}.{table.name} do not decode with the table map "
                        f"({type(error).__name__}: {error})"
                    ) from error
                table = decoder.table_map.schema
                count = len(pairs) if operation == "update" else len(images_read)
                source = RowsEventSource(
                    transaction, file, pos, next_pos, index, server_id, timestamp, thread_id, query, count
                )
                first = skip_rows if index == skip_events else 0
                if operation == "update":
                    for row in range(first, count):
                        before, after = pairs[row]
                        yield RowChange("update", table, before, after, source, row)
                elif operation == "insert":
                    for row in range(first, count):
                        yield RowChange("insert", table, None, images_read[row], source, row)
                else:
                    for row in range(first, count):
                        yield RowChange("delete", table, images_read[row], None, source, row)
            elif kind in (wire.QUERY, wire.QUERY_COMPRESSED):
                thread_id = int.from_bytes(packet[body : body + 4], "little")
                db_len = packet[body + 8]
                status_len = int.from_bytes(packet[body + 11 : body + 13], "little")
                p = body + 13 + status_len
                database = packet[p : p + db_len].decode("utf-8")
                p += db_len + 1
                text = (
                    wire.uncompress(packet, p, end, _where(kind, file, pos))
                    if kind == wire.QUERY_COMPRESSED
                    else packet[p:end]
                )
                statement = text.decode("utf-8", "replace")
                keyword = _first_keyword(statement)
                if keyword in ("commit", "rollback") and not statement.lower().startswith("rollback to"):
                    state = state.advance(transaction.gtid)
                    yield TransactionCommit(transaction, file, pos, next_pos, server_id, timestamp, None, state)
                    transaction = None
                    continue
                if keyword in ("begin", "savepoint") or statement.lower().startswith("rollback to"):
                    continue
                if keyword in _STATEMENT_DML or keyword == "xa":
                    raise UnsupportedBinlogEvent(
                        _where(kind, file, pos)
                        + f": {keyword.upper()} logged as a statement in transaction {transaction.gtid}, "
                        "so its row changes are not in the binlog; the session used binlog_format=STATEMENT or "
                        "MIXED. Keep binlog_format=ROW for every session (SET GLOBAL binlog_format = ROW; "
                        f"my.cnf: binlog_format=ROW). Statement: {statement[:200]}"
                    )
                if not skipped:
                    yield Statement(
                        transaction, database, statement, file, pos, next_pos, index, server_id, timestamp, thread_id
                    )
                if transaction.standalone:
                    state = state.advance(transaction.gtid)
                    yield TransactionCommit(transaction, file, pos, next_pos, server_id, timestamp, None, state)
                    transaction = None
            elif kind == wire.XID:
                xid = int.from_bytes(packet[body : body + 8], "little")
                state = state.advance(transaction.gtid)
                yield TransactionCommit(transaction, file, pos, next_pos, server_id, timestamp, xid, state)
                transaction = None
            elif kind == wire.INCIDENT:
                raise UnsupportedBinlogEvent(
                    _where(kind, file, pos)
                    + ": the server logged an incident (changes it could not write to the binlog were "
                    "lost); the binlog is incomplete from here, take a new snapshot"
                )
            elif kind in (wire.INTVAR, wire.RAND, wire.USER_VAR):
                pass  # context of a statement-logged query, which is refused when it comes
            elif kind == wire.XA_PREPARE:
                raise UnsupportedBinlogEvent(
                    _where(kind, file, pos) + ": XA PREPARE; this reader does not read XA transactions"
                )
            elif not flags & wire.IGNORABLE_FLAG:
                raise UnsupportedBinlogEvent(
                    _where(kind, file, pos) + ": this reader does not know the event, so it cannot skip it"
                )


def _where(kind: int, file: str, pos: int) -> str:
    return f"{wire.EVENT_NAMES.get(kind, f'event type {kind}')} at {file}:{pos}"


def _first_keyword(statement: str) -> str:
    """The statement's first word, past leading comments (``/* ... */``, ``-- ...``, ``# ...``)."""
    text = statement.lstrip()
    while text.startswith(("/*", "--", "#")):
        if text.startswith("/*"):
            text = text[text.find("*/") + 2 :] if "*/" in text else ""
        else:
            text = text[text.find("\n") + 1 :] if "\n" in text else ""
        text = text.lstrip()
    word = text.split(None, 1)[0] if text else ""
    return word.rstrip(";(").lower()


def _unavailable_message(position: BinlogPosition, server_message: str) -> str:
    return (
        f"the server cannot send the binlog from {position} ({server_message}): the binlog files holding it "
        "were purged (binlog_expire_logs_seconds, PURGE BINARY LOGS) or the server's binlog was reset. "
        "Take a new snapshot (Debezium: snapshot.mode=when_needed does it automatically)"
    )
