"""Collation numbers in table maps to character sets and the Python codecs that decode them.

A table map names each text column's collation by number; the numbers come from the server's own
``information_schema.COLLATIONS`` (MariaDB 10.10+ adds UCA-14 collations above 255 that no static
table knows), read once per reader.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

BINARY_COLLATION = 63


def _mysql_latin1_holes(error: UnicodeError) -> tuple[str, int]:
    """MariaDB's latin1 is cp1252 whose five unassigned bytes (0x81 0x8D 0x8F 0x90 0x9D) map to
    the code points of the same number, as in ISO 8859-1."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return chr(error.object[error.start]), error.start + 1


codecs.register_error("mariadb-latin1", _mysql_latin1_holes)

# MariaDB character set -> Python codec (None: bytes are kept as bytes).
_CODECS = {
    "binary": None,
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "ascii": "ascii",
    "latin1": "cp1252",
    "latin2": "iso8859_2",
    "latin5": "iso8859_9",
    "latin7": "iso8859_13",
    "greek": "iso8859_7",
    "hebrew": "iso8859_8",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
    "macroman": "mac_roman",
    "macce": "mac_latin2",
    "tis620": "tis_620",
    "euckr": "euc_kr",
    "sjis": "shift_jis",
    "cp932": "cp932",
    "ujis": "euc_jp",
    "eucjpms": "euc_jp",
    "gbk": "gbk",
    "gb2312": "gb2312",
    "big5": "big5",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
}


class UnsupportedCharset(ValueError):
    """A text column in a character set this reader cannot decode."""


@dataclass(frozen=True)
class Charset:
    """A character set: its MariaDB name, the most bytes one character takes, how to decode it."""

    name: str
    max_bytes: int
    codec: str | None
    errors: str = "strict"

    @property
    def binary(self) -> bool:
        return self.codec is None


class Collations:
    """Collation number -> :class:`Charset`, as the server defines them."""

    def __init__(self, rows: list[tuple[int, str, int]]) -> None:
        self._charsets: dict[int, Charset] = {}
        self._unknown: dict[int, str] = {}
        for collation_id, charset_name, max_bytes in rows:
            if charset_name in _CODECS:
                errors = "mariadb-latin1" if charset_name == "latin1" else "strict"
                self._charsets[collation_id] = Charset(charset_name, max_bytes, _CODECS[charset_name], errors)
            else:
                self._unknown[collation_id] = charset_name

    @classmethod
    def load(cls, connection: Any) -> Collations:
        """From a PyMySQL connection (``information_schema`` is readable by every account)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT co.ID, co.CHARACTER_SET_NAME, cs.MAXLEN FROM information_schema.COLLATIONS co "
                "JOIN information_schema.CHARACTER_SETS cs ON cs.CHARACTER_SET_NAME = co.CHARACTER_SET_NAME"
            )
            return cls([(int(i), str(name), int(maxlen)) for i, name, maxlen in cursor.fetchall()])

    def charset(self, collation_id: int, where: str) -> Charset:
        """``where`` names the column for the error when the charset cannot be decoded."""
        found = self._charsets.get(collation_id)
        if found is not None:
            return found
        name = self._unknown.get(collation_id, f"collation number {collation_id}")
        raise UnsupportedCharset(
            f"{where}: character set {name} has no Python codec in this reader; "
            f"convert the column to utf8mb4 (ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4)"
        )
