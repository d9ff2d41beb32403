"""The README and docs/ stay true to the code: generated tables, the layout, links, length."""

from __future__ import annotations

import re
from pathlib import Path

from mungmo_pipelines.core.docs import stale_pages

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def layout_block() -> str:
    section = README[README.index("## Layout") :]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def test_generated_tables_match_the_code() -> None:
    assert stale_pages() == []


def test_readme_is_short() -> None:
    assert len(README.splitlines()) <= 200


def test_readme_layout_names_every_core_package_and_module() -> None:
    block = layout_block()
    core = ROOT / "mungmo_pipelines" / "core"
    entries = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in core.iterdir()
        if p.name != "__init__.py" and not p.name.startswith(("_", ".")) and p.suffix in ("", ".py")
    )
    assert [entry for entry in entries if entry not in block] == []


def test_readme_layout_names_only_paths_that_exist() -> None:
    block = layout_block()
    named = re.findall(r"[\w./-]+(?:/|\.py|\.md|\.yml)(?=[\s,:]|$)", block)
    core = ROOT / "mungmo_pipelines" / "core"
    dagster_layer = ROOT / "mungmo_pipelines"
    missing = [
        name
        for name in named
        if not any((base / name.rstrip("/")).exists() for base in (ROOT, core, dagster_layer, ROOT / "docs"))
    ]
    assert missing == []


def test_links_in_readme_and_docs_point_at_files_that_exist() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
