"""Close-match hints for unknown names (tasks, datasets): one wording everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.4) -> str:
    """``"did you mean 'a', 'b'? "`` for the names of ``known`` closest to ``name`` (difflib), or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f"did you mean {', '.join(map(repr, close))}? " if close else ""
