"""The connectors directory as Kafka Connect's config store: read, create, replace and remove bodies.

Writers hold an exclusive ``flock`` on the directory itself, so two processes adding one name
cannot both succeed (one gets 409, as two POSTs to Kafka Connect do), and each file is written
to a temporary name and renamed, so a reader never sees half a body. Nothing is left in the
directory but the ``*.json`` bodies.

Passwords given in clear never reach the directory (users commit it): they go to an owner-only
properties file outside it (:class:`SecretsFile`) and the body keeps ``${file:<path>:<key>}``,
which the loader resolves as Kafka Connect's FileConfigProvider does. ``${env:…}`` and
``${file:…}`` references are kept as they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mungmo_pipelines.core.config.base import ConnectorConfig
from mungmo_pipelines.core.config.loader import Connectors, connector_identifier, load_connectors
from mungmo_pipelines.core.config.options import Password, options_of
from mungmo_pipelines.core.config.providers import format_properties, read_properties
from mungmo_pipelines.core.errors import ConnectorConfigError
from mungmo_pipelines.core.mariadb.connection import parse_jdbc_url

_WHOLE_REFERENCE = re.compile(r"^\$\{(env|file):[^}]+\}$")
CONNECTION_URL = "connection.url"


@dataclass(frozen=True)
class ConnectorFile:
    """One connector of the directory: its body as written, and its config or why it did not load."""

    name: str
    path: Path
    config: ConnectorConfig | None
    error: ConnectorConfigError | None

    def body(self) -> dict[str, Any] | None:
        """The JSON as written (references unresolved); ``None`` when the file is not a JSON object."""
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def raw_config(self) -> dict[str, Any]:
        """The config map as Kafka Connect returns it: references kept, ``name`` included."""
        body = self.body() or {}
        raw = body.get("config", body)
        config = {key: value for key, value in raw.items()} if isinstance(raw, dict) else {}
        config.setdefault("name", self.name)
        return config


@dataclass(frozen=True)
class Catalog:
    """The directory read once: every connector by name, loaded or not."""

    connectors: Connectors
    files: dict[str, ConnectorFile]

    def find(self, name: str) -> ConnectorFile | None:
        return self.files.get(name)

    def identifier_owner(self, name: str) -> ConnectorFile | None:
        """Another connector whose name makes the same identifier (job name) as ``name``."""
        identifier = connector_identifier(name)
        return next(
            (f for other, f in self.files.items() if other != name and connector_identifier(other) == identifier),
            None,
        )


def file_name_for(name: str) -> str:
    """A file name for a new connector: its name, characters unsafe in file names as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") + ".json"


class ConnectorDirectory:
    def __init__(self, directory: Path, secrets: SecretsFile, environ: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.secrets = secrets
        self.environ = environ

    def catalog(self) -> Catalog:
        connectors = load_connectors(self.directory, self.environ)
        files = {c.name: ConnectorFile(c.name, Path(c.origin), c, None) for c in connectors.all()}
        for error in connectors.errors:
            # A duplicate name keeps the first file it was seen in; its error names the other one.
            files.setdefault(error.connector, ConnectorFile(error.connector, Path(error.origin), None, error))
        return Catalog(connectors, dict(sorted(files.items())))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes while a writer checks and writes (flock on the directory itself)."""
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def write(self, path: Path, body: dict[str, Any]) -> None:
        """Write ``body`` to ``path`` whole (temporary file, then rename)."""
        text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def new_path(self, name: str) -> Path:
        path = self.directory / file_name_for(name)
        number = 2
        while path.exists():
            path = self.directory / f"{file_name_for(name)[:-5]}-{number}.json"
            number += 1
        return path


def secret_options(config_class: type[ConnectorConfig]) -> set[str]:
    """The options of a class that hold credentials (declared with the :class:`Password` kind)."""
    return {name for name, declared in options_of(config_class).items() if isinstance(declared.kind, Password)}


def _holds_password(key: str, value: str) -> bool:
    if key != CONNECTION_URL:
        return False
    try:
        return parse_jdbc_url(value).password is not None
    except ValueError:
        return False


class SecretsFile:
    """Credentials of connector bodies, in an owner-only (0600) properties file, as ``<connector>.<option>`` keys."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def reference(self, connector: str, option: str) -> str:
        return f"${{file:{self.path}:{connector}.{option}}}"

    def externalize(
        self, connector: str, config: Mapping[str, Any], config_class: type[ConnectorConfig]
    ) -> dict[str, Any]:
        """``config`` with every credential given in clear moved here and replaced by its reference.

        Values that are a reference already (``${env:…}``, ``${file:…}``) stay as they are.
        """
        sensitive = secret_options(config_class)
        moved: dict[str, str] = {}
        result: dict[str, Any] = {}
        for key, value in config.items():
            clear = isinstance(value, str) and value != "" and not _WHOLE_REFERENCE.match(value)
            if clear and (key in sensitive or _holds_password(key, value)):
                moved[f"{connector}.{key}"] = value
                result[key] = self.reference(connector, key)
            else:
                result[key] = value
        kept = {str(v) for v in result.values()}
        stale = [
            key
            for key in self._read()
            if key.startswith(f"{connector}.") and key not in moved and f"${{file:{self.path}:{key}}}" not in kept
        ]
        self._update(moved, stale)
        return result

    def forget(self, connector: str) -> None:
        """Remove every credential of ``connector``."""
        self._update({}, [key for key in self._read() if key.startswith(f"{connector}.")])

    def _read(self) -> dict[str, str]:
        return read_properties(self.path) if self.path.exists() else {}

    def _update(self, values: Mapping[str, str], removed: list[str]) -> None:
        if not values and not removed:
            return
        properties = {k: v for k, v in self._read().items() if k not in removed}
        properties.update(values)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")  # created 0600
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write("# Connector credentials (mungmo-connect); never commit this file.\n")
                out.write(format_properties(properties))
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
