"""A bench's result table: printed, and with ``--markdown`` appended to ``docs/performance.md`` (or the
page a bench names).

Published figures are then the bench's own output, stamped with the date, the commit and the
machine, never numbers pasted by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE_PAGE = ROOT / "docs" / "performance.md"
PUBLISHED_HEADING = "## Published runs"


def add_markdown_flag(parser: argparse.ArgumentParser, page: Path = PERFORMANCE_PAGE) -> None:
    parser.add_argument(
        "--markdown",
        action="store_true",
        help=f"also append the result table to {page.relative_to(ROOT)} with the date, commit and machine",
    )


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model or platform.machine()}), {memory:.0f} GiB"


class Report:
    """Lines of a result, shown when the bench ends."""

    def __init__(self, title: str, page: Path = PERFORMANCE_PAGE) -> None:
        self.title = title
        self.page = page
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(text)

    def header(self, text: str) -> None:
        """A table's header row and the markdown separator under it, each column as wide as its heading."""
        self.line(text)
        self.line("|" + "|".join("-" * len(cell) for cell in text.split("|")[1:-1]) + "|")

    def emit(self, markdown: bool) -> None:
        text = "\n".join(self.lines)
        print(text)
        if not markdown:
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        command = "PYTHONPATH=. python " + shlex.join(["bench/" + Path(sys.argv[0]).name, *sys.argv[1:]])
        page = self.page.read_text(encoding="utf-8")
        if PUBLISHED_HEADING not in page:
            page = page.rstrip() + f"\n\n{PUBLISHED_HEADING}\n\nAppended by the benches' `--markdown` flag.\n"
        section = f"\n### {self.title}: {stamp}, commit {commit()}, {machine()}\n\n`{command}`\n\n{text}\n"
        self.page.write_text(page.rstrip() + "\n" + section, encoding="utf-8")
        print(f"\nappended to {self.page.relative_to(ROOT)}", file=sys.stderr)
