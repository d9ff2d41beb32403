"""Config provider references in option values, resolved as Kafka Connect's ``ConfigTransformer`` does.

A value may hold ``${provider:[path:]key}`` references (KIP-297). Two providers are here:

* ``${env:NAME}``, Kafka's ``EnvVarConfigProvider``: the environment variable ``NAME`` (no path).
* ``${file:path:key}``, Kafka's ``FileConfigProvider``: ``path`` is a Java properties file (UTF-8),
  ``key`` a key in it. ``${file:path}`` has no key: Kafka reads it as provider ``file`` with an empty
  path and key ``path``, finds nothing and leaves the text as it is.

Where Kafka Connect leaves a reference it cannot resolve in the value (unknown provider, missing
key) and the connector then fails far from the cause (``1045 Access denied``), this module refuses
the value with what was wrong: the provider, the file, the key, never the secret itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from mungmo_pipelines.core.errors import ConfigProviderError

# ConfigTransformer.DEFAULT_PATTERN: ${provider:key} or ${provider:path:key}.
REFERENCE = re.compile(r"\$\{([^}]*?):(([^}]*?):)?([^}]*?)\}")
PROVIDERS = ("env", "file")

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def resolve_references(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every ``${env:…}`` and ``${file:…:…}`` reference replaced by its value.

    Raises :class:`ConfigProviderError` naming the reference's provider, file and key; the caller
    adds which option it was. Replacements are not scanned again (as in Kafka).
    """
    environ = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        provider, path, key = match[1], match[3] or "", match[4]
        if provider == "env":
            return _environment_variable(path, key, environ)
        if provider == "file":
            return _file_property(path, key)
        raise ConfigProviderError(
            f"config provider {provider!r} of {match[0]!r} is not supported here (supported: {', '.join(PROVIDERS)})"
        )

    return REFERENCE.sub(replace, text)


def _environment_variable(path: str, name: str, environ: Mapping[str, str]) -> str:
    if path:
        raise ConfigProviderError(f"${{env:{path}:{name}}}: the env provider takes no path, as in ${{env:NAME}}")
    if name not in environ:
        raise ConfigProviderError(f"environment variable {name} is not set")
    return environ[name]


def _file_property(path: str, key: str) -> str:
    if not path:
        raise ConfigProviderError(
            f"${{file:{key}}} names no key: FileConfigProvider reads ${{file:path:key}}, a key of a Java "
            "properties file (Kafka Connect would leave the reference unresolved)"
        )
    try:
        properties = read_properties(Path(path))
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise ConfigProviderError(f"cannot read properties file {path!r}: {reason}") from None
    except ValueError as err:
        raise ConfigProviderError(f"properties file {path!r}: {err}") from None
    if key not in properties:
        raise ConfigProviderError(f"properties file {path!r} has no key {key!r}")
    return properties[key]


def parse_properties(text: str) -> dict[str, str]:
    """A Java properties file as ``java.util.Properties.load`` reads it: comments (``#``, ``!``), ``key=value``,
    ``key: value`` or ``key value``, backslash escapes and line continuations; the last duplicate wins."""
    properties: dict[str, str] = {}
    lines = iter(re.split(r"\r\n|\r|\n", text))
    for natural in lines:
        line = natural.lstrip(_WHITESPACE)
        if not line or line[0] in "#!":
            continue
        while _continues(line):
            line = line[:-1] + next(lines, "").lstrip(_WHITESPACE)
        key, value = _split(line)
        properties[_unescape(key)] = _unescape(value)
    return properties


def _continues(line: str) -> bool:
    """Whether a line ends in an odd number of backslashes: the last one joins the next line."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split(line: str) -> tuple[str, str]:
    """Key and value (still escaped), as ``Properties.load0`` cuts them: the key ends at the first unescaped
    ``=``, ``:`` or whitespace; whitespace and at most one ``=`` or ``:`` separate it from the value."""
    key_end, value_start, separated, escaped = len(line), len(line), False, False
    for index, char in enumerate(line):
        if not escaped and (char in "=:" or char in _WHITESPACE):
            key_end, value_start, separated = index, index + 1, char in "=:"
            break
        escaped = char == "\\" and not escaped
    while value_start < len(line):
        char = line[value_start]
        if char not in _WHITESPACE:
            if separated or char not in "=:":
                break
            separated = True
        value_start += 1
    return line[:key_end], line[value_start:]


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char != "\\":
            out.append(char)
            continue
        if index == len(text):
            break
        escaped = text[index]
        index += 1
        if escaped == "u":
            digits = text[index : index + 4]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ValueError("malformed \\uxxxx escape")
            out.append(chr(int(digits, 16)))
            index += 4
        else:
            out.append(_ESCAPES.get(escaped, escaped))
    return "".join(out)


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file's entries (``OSError`` when it cannot be read)."""
    return parse_properties(path.read_text(encoding="utf-8"))


def format_properties(properties: dict[str, str]) -> str:
    """``properties`` as a properties file that :func:`read_properties` (and Java) reads back unchanged."""
    return "".join(f"{_escape(key, True)}={_escape(value, False)}\n" for key, value in properties.items())


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
