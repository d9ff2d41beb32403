"""Java properties files, the format of Kafka Connect's FileConfigProvider (``${file:path:key}``).

Read as ``Properties.load`` does (``key=value``, ``key: value`` or ``key value`` lines, ``#``/``!``
comments, backslash escapes, continuation lines); written so that reading gives back every key
and value exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_SEPARATORS = "=: \t\f"


def read_properties(path: Path) -> dict[str, str]:
    properties: dict[str, str] = {}
    logical = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip(" \t\f")
        if not logical and (not stripped or stripped[0] in "#!"):
            continue
        if (len(stripped) - len(stripped.rstrip("\\"))) % 2:  # an odd number of backslashes: continued
            logical += stripped[:-1]
            continue
        key, value = _split(logical + stripped)
        properties[key] = value
        logical = ""
    if logical:
        key, value = _split(logical)
        properties[key] = value
    return properties


def format_properties(properties: Mapping[str, str]) -> str:
    return "".join(f"{_escape(key, True)}={_escape(value, False)}\n" for key, value in properties.items())


def _split(line: str) -> tuple[str, str]:
    position = 0
    while position < len(line) and line[position] not in _SEPARATORS:
        position += 2 if line[position] == "\\" else 1
    rest = line[position:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(line[:position]), _unescape(rest)


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            following = text[i + 1]
            if following == "u" and i + 6 <= len(text):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(following, following))
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _escape(text: str, is_key: bool) -> str:
    out: list[str] = []
    for position, char in enumerate(text):
        if char in "\\=:#!" or (char == " " and (is_key or position == 0)):
            out.append("\\" + char)
        elif char in "\t\n\r\f":
            out.append("\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}[char])
        else:
            out.append(char)
    return "".join(out)
