"""Kafka Connect's ``JsonConverter`` wire format with ``schemas.enable=true``: encode and decode.

A message is ``{"schema": <schema>, "payload": ...}``, compact UTF-8 JSON, exactly as Kafka
Connect writes it (Jackson), so any Connect sink (or plain consumer) reads our topics and our
sink reads theirs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from mungmo_pipelines.core.connect.schema import struct_schema
from mungmo_pipelines.core.connect.source_types import FieldCodec
from mungmo_pipelines.core.errors import MalformedRecord, RecordRejected

# A \u00XX escape (after an even run of backslashes, so not an escaped backslash followed by "u").
_LOWER_HEX_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})")
# The lead bytes of 4-byte UTF-8 sequences: characters outside the Basic Multilingual Plane, such as
# emoji. In valid UTF-8 (orjson's output) these bytes occur nowhere else.
_SUPPLEMENTARY_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")


@functools.lru_cache(maxsize=4096)
def _surrogate_pair_escape(character: bytes) -> bytes:
    """One 4-byte UTF-8 character as Jackson's escaped UTF-16 surrogate pair."""
    offset = ord(character.decode("utf-8")) - 0x10000
    return b"\\u%04X\\u%04X" % (0xD800 + (offset >> 10), 0xDC00 + (offset & 0x3FF))


def _escape_supplementary(text: bytes, lead: bytes) -> bytes:
    """Every character starting with ``lead`` as a surrogate pair, found with ``bytes.find`` (memchr):
    a regular expression over the whole text cost ~2 us per 300-byte row, six times orjson's own time."""
    parts = []
    start = 0
    at = text.find(lead)
    while at >= 0:
        parts.append(text[start:at])
        parts.append(_surrogate_pair_escape(text[at : at + 4]))
        start = at + 4
        at = text.find(lead, start)
    parts.append(text[start:])
    return b"".join(parts)


def dumps(document: Any) -> bytes:
    """Compact UTF-8 JSON, as Jackson writes it for the JsonConverter."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def jackson_json(document: Any) -> bytes:
    """Compact UTF-8 JSON byte for byte as Jackson writes it in Kafka's ``JsonConverter``.

    orjson matches Jackson except for the hex digits of ``\\u00XX`` control-character escapes,
    which Jackson writes in upper case, and for characters beyond the Basic Multilingual Plane
    (emoji), which Jackson's UTF-8 generator writes as an escaped surrogate pair
    (``\\uD83D\\uDC36``), as records Debezium produced through Kafka 4.3's JsonConverter show
    (tests/fixtures/debezium).
    """
    text = orjson.dumps(document)
    if b"\\" in text and b"\\u00" in text:  # the one-byte test is a memchr, the four-byte one is not
        text = _LOWER_HEX_ESCAPE.sub(lambda m: m[1] + b"\\u00" + m[2].upper(), text)
    if not text.isascii():
        for lead in _SUPPLEMENTARY_LEADS:
            if lead in text:
                text = _escape_supplementary(text, lead)
    return text


class RowEncoder:
    """Turns one table's rows into (key, value) bytes; schemas are serialized once per table.

    The value is the row as a struct named after the table; the key is the primary key as a
    struct (``<table>.Key``), or null when there is none (the JDBC source always left it null).
    """

    def __init__(self, codecs: Sequence[FieldCodec], schema_name: str | None, key_positions: Sequence[int]) -> None:
        self.value_schema = struct_schema([codec.schema for codec in codecs], schema_name)
        self.key_positions = tuple(key_positions)
        self.key_schema = (
            struct_schema([codecs[i].schema for i in key_positions], f"{schema_name}.Key" if schema_name else None)
            if key_positions
            else None
        )
        self._names = tuple(codec.schema["field"] for codec in codecs)
        self._encoders = tuple(codec.encode for codec in codecs)
        self._key_names = tuple(self._names[i] for i in self.key_positions)
        self._value_prefix = b'{"schema":' + jackson_json(self.value_schema) + b',"payload":'
        self._key_prefix = b'{"schema":' + jackson_json(self.key_schema) + b',"payload":' if self.key_schema else b""

    def payload(self, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: None if value is None else encode(value)
            for name, encode, value in zip(self._names, self._encoders, row, strict=True)
        }

    def encode(self, row: Sequence[Any]) -> tuple[bytes | None, bytes]:
        payload = self.payload(row)
        value = self._value_prefix + jackson_json(payload) + b"}"
        if not self.key_positions:
            return None, value
        key_payload = {name: payload[name] for name in self._key_names}
        return self._key_prefix + jackson_json(key_payload) + b"}", value

    def encode_key(self, key: Sequence[Any]) -> bytes:
        """The record key of the row whose primary-key values are ``key`` (a tombstone's key), byte for
        byte the key :meth:`encode` gives that row."""
        if not self.key_positions:
            raise ValueError("the table has no primary key: its records have no key")
        encoders = [self._encoders[i] for i in self.key_positions]
        payload = {
            name: None if value is None else encode(value)
            for name, encode, value in zip(self._key_names, encoders, key, strict=True)
        }
        return self._key_prefix + jackson_json(payload) + b"}"


@dataclass(frozen=True)
class Envelope:
    """A decoded ``{"schema", "payload"}`` pair; ``payload is None`` with a schema means null."""

    schema: dict[str, Any] | None
    payload: Any


def loads(data: bytes) -> Any:
    """Parse JSON with orjson (3x the standard library here, see bench/sink.py).

    Integers beyond 64 bits, which orjson refuses, are parsed again by the standard library,
    whose message also names what is wrong when the bytes are not JSON at all.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, parse_float=Decimal)


def exact_numbers(data: bytes) -> Any:
    """Parse again keeping every JSON fraction exact, for Decimals written as numbers."""
    return json.loads(data, parse_float=Decimal)


def decode_envelope(data: bytes | None, what: str = "value") -> Envelope | None:
    """Parse a JsonConverter message; ``None`` stays ``None`` (a tombstone or a null key)."""
    if data is None:
        return None
    try:
        document = loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MalformedRecord(f"{what} is not valid JSON: {err}") from None
    if document is None:
        return None
    if not isinstance(document, dict) or document.keys() != {"schema", "payload"}:
        raise MalformedRecord(
            f'{what} lacks the JsonConverter envelope: expected an object with exactly "schema" and "payload"'
        )
    schema = document["schema"]
    if schema is not None and not (isinstance(schema, dict) and isinstance(schema.get("type"), str)):
        raise MalformedRecord(f'{what} schema must be an object with a "type"')
    return Envelope(schema, document["payload"])


def struct_fields(schema: dict[str, Any] | None, what: str = "value") -> list[dict[str, Any]]:
    """The field schemas of a struct schema, each checked to have a name."""
    if schema is None or schema.get("type") != "struct" or not isinstance(schema.get("fields"), list):
        raise MalformedRecord(f'{what} schema must be a struct with "fields" (got {schema and schema.get("type")!r})')
    fields: list[dict[str, Any]] = schema["fields"]
    for field in fields:
        if not isinstance(field, dict) or not isinstance(field.get("field"), str):
            raise MalformedRecord(f'{what} schema has a field without a "field" name')
    return fields


# --- reading many messages fast ----------------------------------------------------------

PAYLOAD_MARK = b',"payload":'
SCHEMA_OPEN = b'{"schema":'
KNOWN_SCHEMAS_LIMIT = 1024


class EnvelopeReader:
    """Parses JsonConverter messages, and only their payload once their schema bytes are known.

    A message is ``{"schema":S,"payload":P}``. Its bytes up to the first ``,"payload":`` are
    remembered once proven to be exactly ``{"schema":`` + S + ``,"payload":`` (S parsed alone
    equals the schema of the fully parsed message); a later message that starts with the same
    bytes then has the same schema, and only P is parsed. The prefix that matched last is tried
    first, with one byte comparison instead of a search and a lookup. Anything else takes the
    full path, whose errors name what is wrong.
    """

    def __init__(self, what: str, stage: str) -> None:
        self.what = what
        self.stage = stage
        self._known: dict[bytes, tuple[bytes, dict[str, Any] | None]] = {}
        self._last: tuple[bytes, bytes, dict[str, Any] | None] | None = None

    def read(self, data: bytes | None) -> tuple[bytes, dict[str, Any] | None, Any] | None:
        """``(schema identity, schema, payload)``, or ``None`` for a null message."""
        if data is None:
            return None
        last = self._last
        if last is not None and data.startswith(last[0]) and data.endswith(b"}"):
            prefix, identity, schema = last
        else:
            mark = data.find(PAYLOAD_MARK)
            known = self._known.get(data[: mark + len(PAYLOAD_MARK)]) if mark > 0 and data.endswith(b"}") else None
            if known is None:
                return self._read_in_full(data, mark)
            prefix = data[: mark + len(PAYLOAD_MARK)]
            identity, schema = known
            self._last = (prefix, identity, schema)
        try:
            return identity, schema, orjson.loads(memoryview(data)[len(prefix) : -1])
        except orjson.JSONDecodeError:
            return self._read_in_full(data, data.find(PAYLOAD_MARK))

    def _read_in_full(self, data: bytes, mark: int) -> tuple[bytes, dict[str, Any] | None, Any] | None:
        try:
            envelope = decode_envelope(data, self.what)
        except MalformedRecord as err:
            raise RecordRejected(self.stage, str(err), err) from None
        if envelope is None:
            return None
        identity = orjson.dumps(envelope.schema, option=orjson.OPT_SORT_KEYS)
        self._learn(data, mark, envelope.schema, identity)
        return identity, envelope.schema, envelope.payload

    def _learn(self, data: bytes, mark: int, schema: dict[str, Any] | None, identity: bytes) -> None:
        if mark <= len(SCHEMA_OPEN) or not data.startswith(SCHEMA_OPEN) or not data.endswith(b"}"):
            return
        try:
            proven = orjson.loads(data[len(SCHEMA_OPEN) : mark]) == schema
        except orjson.JSONDecodeError:
            proven = False
        if proven:
            if len(self._known) >= KNOWN_SCHEMAS_LIMIT:
                self._known.clear()
            self._known[data[: mark + len(PAYLOAD_MARK)]] = (identity, schema)
