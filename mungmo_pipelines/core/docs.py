"""The generated parts of ``docs/``: option, type and setting tables, rendered from the code.

Each generated block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
in its page. ``python -m mungmo_pipelines.core.docs`` rewrites the blocks; ``--check`` exits
non-zero when a page differs from the code (the test suite runs the same comparison).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from mungmo_pipelines.core.config.debezium_sink import DebeziumSinkConfig
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.options import no_effect_markdown, options_markdown
from mungmo_pipelines.core.connect.sink_types import sink_types_markdown
from mungmo_pipelines.core.connect.source_types import source_types_markdown
from mungmo_pipelines.core.consistency.expressions import rules_markdown
from mungmo_pipelines.core.consistency.policy import policy_markdown
from mungmo_pipelines.core.expiry.members import members_schema_markdown
from mungmo_pipelines.core.settings import PROJECT_ROOT, settings_markdown

# page (relative to the project root) -> block name -> what renders it
GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "docs/source.md": {"jdbc-source-options": lambda: options_markdown(JdbcSourceConfig)},
    "docs/cdc.md": {
        "cdc-source-options": lambda: options_markdown(DebeziumSourceConfig),
        "cdc-source-without-effect": lambda: no_effect_markdown(DebeziumSourceConfig.NO_EFFECT),
    },
    "docs/sink.md": {
        "jdbc-sink-options": lambda: options_markdown(JdbcSinkConfig),
        "debezium-sink-options": lambda: options_markdown(DebeziumSinkConfig),
        "debezium-sink-no-effect": lambda: no_effect_markdown(DebeziumSinkConfig.NO_EFFECT),
    },
    "docs/types.md": {"source-types": source_types_markdown, "sink-types": sink_types_markdown},
    "docs/stack.md": {"settings": settings_markdown},
    "docs/expiry.md": {"members-schema": members_schema_markdown},
    "docs/consistency.md": {"canonical-forms": rules_markdown, "mode-policy": policy_markdown},
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{re.escape(name)} -->\n).*?(\n<!-- /generated:{re.escape(name)} -->)", re.S)


def render(page: str, text: str) -> str:
    """``text`` of ``page`` with every generated block replaced by what the code renders now."""
    for name, make in GENERATED[page].items():
        match = _block(name).search(text)
        if match is None:
            raise LookupError(f"{page} has no block <!-- generated:{name} --> … <!-- /generated:{name} -->")
        text = text[: match.start()] + match[1] + make() + match[2] + text[match.end() :]
    return text


def stale_pages(root: Path = PROJECT_ROOT) -> list[str]:
    """The pages whose generated blocks differ from the code."""
    return [page for page in GENERATED if render(page, (root / page).read_text()) != (root / page).read_text()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_pages()
        for page in stale:
            print(f"{page}: generated tables differ from the code; run python -m mungmo_pipelines.core.docs")
        return 1 if stale else 0
    for page in GENERATED:
        path = PROJECT_ROOT / page
        path.write_text(render(page, path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
