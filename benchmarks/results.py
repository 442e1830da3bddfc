"""Shared plumbing of the benchmark scripts.

benchmarks/RESULTS.md holds one section per script, between ``<!-- name:start -->`` and ``<!-- name:end -->``.

Each script rewrites only its own section, so results of different scripts and machines live side by side
with the prose that reads them.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
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


def run_child(script: str, args: list[str], what: str) -> dict:
    """Run ``script`` with ``args`` in a fresh Python (its peak memory is its own) and parse the JSON row
    it prints last; a failing child raises with the end of its stderr, naming ``what`` was measured."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (e.g. ``AMD EPYC 9B14``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
