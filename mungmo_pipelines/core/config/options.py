"""Connector options, each defined once: name, kind (type and validator), default, doc, attribute.

A connector config is a dataclass whose fields are declared with :func:`option`; the field's
name is the attribute the option sets. The loader, the docs tables (``docs/source.md``,
``docs/sink.md``) and validation all read the options from the class, as Kafka Connect's
``ConfigDef`` does, so an option cannot be documented one way and parsed another.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mungmo_pipelines.core.secret import Secret
from mungmo_pipelines.core.settings import Setting

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class Kind(Generic[T]):
    """How an option's text becomes its value; ``parse`` raises ``ValueError`` saying what was expected."""

    def parse(self, text: str) -> T:
        raise NotImplementedError

    def show(self, value: T) -> str:
        """A default value as the docs show it."""
        return str(value)


class Text(Kind[str]):
    def parse(self, text: str) -> str:
        return text


class Password(Kind["Secret | None"]):
    """A secret: kept as :class:`Secret`, never printed; ``""`` is no password."""

    def parse(self, text: str) -> Secret | None:
        return Secret(text) if text else None


# Kafka Connect's ConfigDef integer types: SHORT, INT and LONG are Java's 16, 32 and 64-bit integers.
SHORT_MAX = 2**15 - 1
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1


@dataclass(frozen=True)
class Int(Kind[int]):
    """A ConfigDef ``INT``: at least ``minimum`` (the option's own range) and at most Java's ``int``."""

    minimum: int
    maximum: int = INT_MAX

    def parse(self, text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if not self.minimum <= number <= self.maximum:
            raise ValueError(f"expected an integer from {self.minimum} to {self.maximum}, got {number}")
        return number


@dataclass(frozen=True)
class Long(Int):
    """A ConfigDef ``LONG``: Java's 64-bit ``long``."""

    maximum: int = LONG_MAX


@dataclass(frozen=True)
class Short(Int):
    """A ConfigDef ``SHORT`` (replication factors): Java's 16-bit ``short``."""

    maximum: int = SHORT_MAX


class OptionalLong(Kind["int | None"]):
    """A 64-bit integer, or ``""`` for none."""

    def parse(self, text: str) -> int | None:
        if text == "":
            return None
        return Long(-LONG_MAX - 1).parse(text)


class Bool(Kind[bool]):
    def parse(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return lowered == "true"

    def show(self, value: bool) -> str:
        return str(value).lower()


@dataclass(frozen=True)
class Choice(Kind[E]):
    """One of an enum's values, case-insensitively."""

    enum: type[E]

    def parse(self, text: str) -> E:
        lowered = text.strip().lower()
        for member in self.enum:
            if member.value == lowered:
                return member
        raise ValueError(f"expected one of {', '.join(m.value for m in self.enum)}, got {text!r}")

    def show(self, value: E) -> str:
        return value.value


class Csv(Kind[tuple[str, ...]]):
    """A comma list; blanks around items and empty items are dropped."""

    def parse(self, text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value)


class TimeZone(Kind[str]):
    def parse(self, text: str) -> str:
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone such as UTC or Asia/Seoul, got {text!r}") from None
        return text


class Regex(Kind[str]):
    def parse(self, text: str) -> str:
        try:
            re.compile(text)
        except re.error as err:
            raise ValueError(f"expected a regular expression ({err})") from None
        return text


class Select(Kind[str]):
    """A SQL ``SELECT`` (or ``WITH``) statement; a trailing ``;`` is dropped."""

    def parse(self, text: str) -> str:
        statement = text.strip().rstrip(";").strip()
        if statement and not re.match(r"(?is)^(select|with)\b", statement):
            raise ValueError("expected a SELECT statement")
        return statement


class ConverterClass(Kind[str]):
    def parse(self, text: str) -> str:
        if text != JSON_CONVERTER:
            raise ValueError(f"expected {JSON_CONVERTER} (the only converter this project speaks), got {text!r}")
        return text


class SchemasEnabled(Kind[bool]):
    def parse(self, text: str) -> bool:
        if not Bool().parse(text):
            raise ValueError("expected true: records carry their schema, as the JDBC connectors need")
        return True

    def show(self, value: bool) -> str:
        return "true"


@dataclass(frozen=True)
class Option:
    """One connector option, as in Kafka Connect's ``ConfigDef``.

    ``default`` is :data:`REQUIRED`, a value, or a :class:`Setting` whose environment variable
    supplies it when the body does not. ``aliases`` are older names the option is also read
    under (Kafka Connect's deprecated aliases).
    """

    name: str
    kind: Kind[Any]
    default: Any
    doc: str
    attribute: str = ""
    aliases: tuple[str, ...] = ()

    def resolve_default(self) -> Any:
        return self.default.get() if isinstance(self.default, Setting) else self.default

    def shown_default(self) -> str:
        default = self.default
        if default is REQUIRED:
            return "required"
        if isinstance(default, Setting):
            return f"`{default.name}`, else {default.default}"
        if default in ("", (), None):
            return "—"
        return self.kind.show(default)


def option(name: str, kind: Kind[Any], default: Any, doc: str, aliases: tuple[str, ...] = ()) -> Any:
    """A dataclass field for the option ``name``; the field's name is the attribute it sets."""
    meta = {"option": Option(name, kind, default, doc, aliases=aliases)}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    if isinstance(default, Setting):
        return dataclasses.field(default=default.default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionGroup:
    """Options named by a prefix and a name the body chooses (``transforms.<alias>.type``): the
    loader hands them, unparsed, to the field as ``((name, text), ...)`` in body order; the
    config's ``validate`` parses them."""

    prefix: str
    doc: str
    attribute: str = ""


def option_group(prefix: str, doc: str) -> Any:
    """A dataclass field collecting every option whose name starts with ``prefix``."""
    return dataclasses.field(default=(), metadata={"option_group": OptionGroup(prefix, doc)})


def options_of(config_class: type) -> dict[str, Option]:
    """The options a config class declares, by option name, each knowing its attribute."""
    found: dict[str, Option] = {}
    for field in dataclasses.fields(config_class):
        declared = field.metadata.get("option")
        if declared is not None:
            found[declared.name] = dataclasses.replace(declared, attribute=field.name)
    return found


def option_groups_of(config_class: type) -> list[OptionGroup]:
    """The option groups a config class declares, each knowing its attribute."""
    return [
        dataclasses.replace(field.metadata["option_group"], attribute=field.name)
        for field in dataclasses.fields(config_class)
        if "option_group" in field.metadata
    ]


def options_markdown(config_class: type, effects: Callable[[Option], str] | None = None) -> str:
    """The option table of a config class, as the docs show it."""
    lines = ["| option | default | here |", "| --- | --- | --- |"]
    for declared in options_of(config_class).values():
        doc = declared.doc if effects is None else effects(declared)
        if declared.aliases:
            doc += f" (also read as {', '.join(f'`{alias}`' for alias in declared.aliases)})"
        lines.append(f"| `{declared.name}` | {declared.shown_default()} | {doc} |")
    for group in option_groups_of(config_class):
        lines.append(f"| `{group.prefix}…` | — | {group.doc} |")
    return "\n".join(lines)


def no_effect_markdown(no_effect: dict[str, str]) -> str:
    """A config class's ``NO_EFFECT`` options as the docs show them."""
    lines = ["| option | why it changes nothing here |", "| --- | --- |"]
    lines += [f"| `{name}` | {why} |" for name, why in no_effect.items()]
    return "\n".join(lines)
