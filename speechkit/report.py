"""Markdown result sections (RESULTS.md): each figure with its command, date and machine."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

__all__ = ["machine_description", "provenance_lines", "update_markdown"]


def machine_description() -> str:
    """One line naming the platform, the processor and the CPU count."""
    cpu = platform.processor() or platform.machine()
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs"


def provenance_lines(command: str) -> list[str]:
    """Markdown bullet lines: the command that produced a figure, today's date, the machine."""
    return [
        f"- command: `{command}`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine_description()}",
    ]


def update_markdown(path: Path, title: str, section: str) -> None:
    """Replaces the ``## <title>`` section (up to the next ``## `` heading) or appends it."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines(keepends=True)
    heading = f"## {title}"
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    if start is None:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        path.write_text(text + sep + section, encoding="utf-8")
        return
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
        len(lines),
    )
    tail = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + section + ("\n" + tail if tail else ""), "utf-8")
