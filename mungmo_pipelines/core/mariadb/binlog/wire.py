"""The binary log's framing: event types, the common header, length-encoded integers, checksums
and MariaDB's compressed events (``log_bin_compress=ON``), which are decompressed, never skipped."""

from __future__ import annotations

import struct
import zlib

# Event types (MariaDB's log_event.h).
QUERY = 2
STOP = 3
ROTATE = 4
INTVAR = 5
RAND = 13
USER_VAR = 14
FORMAT_DESCRIPTION = 15
XID = 16
TABLE_MAP = 19
WRITE_ROWS_V1, UPDATE_ROWS_V1, DELETE_ROWS_V1 = 23, 24, 25
INCIDENT = 26
HEARTBEAT = 27
WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2 = 30, 31, 32
XA_PREPARE = 38
ANNOTATE_ROWS = 160
BINLOG_CHECKPOINT = 161
GTID = 162
GTID_LIST = 163
START_ENCRYPTION = 164
QUERY_COMPRESSED = 165
WRITE_ROWS_COMPRESSED_V1, UPDATE_ROWS_COMPRESSED_V1, DELETE_ROWS_COMPRESSED_V1 = 166, 167, 168
WRITE_ROWS_COMPRESSED_V2, UPDATE_ROWS_COMPRESSED_V2, DELETE_ROWS_COMPRESSED_V2 = 169, 170, 171

EVENT_NAMES = {
    QUERY: "QUERY_EVENT",
    STOP: "STOP_EVENT",
    ROTATE: "ROTATE_EVENT",
    INTVAR: "INTVAR_EVENT",
    RAND: "RAND_EVENT",
    USER_VAR: "USER_VAR_EVENT",
    FORMAT_DESCRIPTION: "FORMAT_DESCRIPTION_EVENT",
    XID: "XID_EVENT",
    TABLE_MAP: "TABLE_MAP_EVENT",
    WRITE_ROWS_V1: "WRITE_ROWS_EVENT_V1",
    UPDATE_ROWS_V1: "UPDATE_ROWS_EVENT_V1",
    DELETE_ROWS_V1: "DELETE_ROWS_EVENT_V1",
    INCIDENT: "INCIDENT_EVENT",
    HEARTBEAT: "HEARTBEAT_LOG_EVENT",
    WRITE_ROWS_V2: "WRITE_ROWS_EVENT",
    UPDATE_ROWS_V2: "UPDATE_ROWS_EVENT",
    DELETE_ROWS_V2: "DELETE_ROWS_EVENT",
    XA_PREPARE: "XA_PREPARE_LOG_EVENT",
    ANNOTATE_ROWS: "ANNOTATE_ROWS_EVENT",
    BINLOG_CHECKPOINT: "BINLOG_CHECKPOINT_EVENT",
    GTID: "GTID_EVENT",
    GTID_LIST: "GTID_LIST_EVENT",
    START_ENCRYPTION: "START_ENCRYPTION_EVENT",
    QUERY_COMPRESSED: "QUERY_COMPRESSED_EVENT",
    WRITE_ROWS_COMPRESSED_V1: "WRITE_ROWS_COMPRESSED_EVENT_V1",
    UPDATE_ROWS_COMPRESSED_V1: "UPDATE_ROWS_COMPRESSED_EVENT_V1",
    DELETE_ROWS_COMPRESSED_V1: "DELETE_ROWS_COMPRESSED_EVENT_V1",
    WRITE_ROWS_COMPRESSED_V2: "WRITE_ROWS_COMPRESSED_EVENT",
    UPDATE_ROWS_COMPRESSED_V2: "UPDATE_ROWS_COMPRESSED_EVENT",
    DELETE_ROWS_COMPRESSED_V2: "DELETE_ROWS_COMPRESSED_EVENT",
}

# Rows event type -> (operation, post-header length, compressed).
ROWS_EVENTS = {
    WRITE_ROWS_V1: ("insert", 8, False),
    UPDATE_ROWS_V1: ("update", 8, False),
    DELETE_ROWS_V1: ("delete", 8, False),
    WRITE_ROWS_V2: ("insert", 10, False),
    UPDATE_ROWS_V2: ("update", 10, False),
    DELETE_ROWS_V2: ("delete", 10, False),
    WRITE_ROWS_COMPRESSED_V1: ("insert", 8, True),
    UPDATE_ROWS_COMPRESSED_V1: ("update", 8, True),
    DELETE_ROWS_COMPRESSED_V1: ("delete", 8, True),
    WRITE_ROWS_COMPRESSED_V2: ("insert", 10, True),
    UPDATE_ROWS_COMPRESSED_V2: ("update", 10, True),
    DELETE_ROWS_COMPRESSED_V2: ("delete", 10, True),
}

HEADER_SIZE = 19
# timestamp, type, server_id, event_size, log_pos (end of the event), flags
HEADER = struct.Struct("<IBIIIH")
ARTIFICIAL_FLAG = 0x20
# LOG_EVENT_IGNORABLE_F: the server marks events a replica that does not know them may skip.
IGNORABLE_FLAG = 0x80
CHECKSUM_OFF, CHECKSUM_CRC32 = 0, 1
ROWS_END_OF_STATEMENT = 0x0001


class BinlogFormatError(ValueError):
    """Bytes from the server that do not have the shape the binlog format says."""


def packed_int(buf: bytes, p: int) -> tuple[int, int]:
    """A length-encoded integer at ``p``: its value and the position after it."""
    first = buf[p]
    if first < 0xFB:
        return first, p + 1
    if first == 0xFC:
        return buf[p + 1] | buf[p + 2] << 8, p + 3
    if first == 0xFD:
        return int.from_bytes(buf[p + 1 : p + 4], "little"), p + 4
    if first == 0xFE:
        return int.from_bytes(buf[p + 1 : p + 9], "little"), p + 9
    raise BinlogFormatError(f"byte 0x{first:02x} does not start a length-encoded integer")


def uncompress(buf: bytes, p: int, end: int, where: str) -> bytes:
    """MariaDB's compressed block: a header byte (0x80 | algorithm << 4 | n), the uncompressed
    length in n big-endian bytes, then the data (algorithm 0: zlib)."""
    header = buf[p]
    if header & 0x80 == 0:
        raise BinlogFormatError(f"{where}: compressed block without its header byte")
    algorithm, length_bytes = (header & 0x70) >> 4, header & 0x07
    if algorithm != 0:
        raise BinlogFormatError(f"{where}: compression algorithm {algorithm} is not zlib (the only one MariaDB writes)")
    size = int.from_bytes(buf[p + 1 : p + 1 + length_bytes], "big")
    data = zlib.decompress(buf[p + 1 + length_bytes : end])
    if len(data) != size:
        raise BinlogFormatError(f"{where}: decompressed {len(data)} bytes, the header says {size}")
    return data
