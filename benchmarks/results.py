"""benchmarks/RESULTS.md holds one section per script, between ``<!-- name:start -->`` and ``<!-- name:end -->``.

Each script rewrites only its own section, so results of different scripts and machines live side by side
with the prose that reads them.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between the markers of ``name`` in ``path`` (appended if absent); the rest is kept."""
    start, end = markers(name)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
