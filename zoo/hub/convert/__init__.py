"""Converters: official checkpoints of other projects -> seqzoo models.

A converter reads a downloaded snapshot folder (the other project's ``config.json`` and its weights, in
safetensors only: nothing pickled is ever loaded) and returns a ``SeqModel`` whose weights were loaded with
``strict=True``. Converters are picked by the ``source`` of an entry's ``Weights`` or detected from the
snapshot's ``config.json``; each lives in its own module and is imported on first use.

Contract of a converter module ``zoo.hub.convert.<name>``:

* ``convert(folder: Path) -> SeqModel``: config mapping + key renames + a strict load; a clear
  ``IncompatibleCheckpointError`` (one line, naming the file and the first offending key) otherwise.
* ``matches(config: dict) -> bool``: whether a foreign ``config.json`` is in this converter's layout.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.model import SeqModel

#: source name (``Weights.source``) -> module under zoo.hub.convert implementing the contract above
CONVERTERS: dict[str, str] = {
    "transformers-mamba": "mamba",
    "transformers-mamba2": "mamba2",
    "mamba-ssm": "mamba_ssm",
    "xlstm": "xlstm",
    "hyenadna": "hyenadna",
    "caduceus": "caduceus",
}


class IncompatibleCheckpointError(ValueError):
    """A checkpoint that no converter (or not the chosen one) can map onto a seqzoo model."""


def _module(source: str):
    if source not in CONVERTERS:
        known = ", ".join(sorted(CONVERTERS)) or "none yet"
        raise IncompatibleCheckpointError(f"no converter for checkpoint source {source!r} (known: {known})")
    return importlib.import_module(f"zoo.hub.convert.{CONVERTERS[source]}")


def detect_source(folder: str | Path) -> str | None:
    """The source whose layout ``folder/config.json`` is in, or None (seqzoo's own or unknown)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    if config.get("format") == "seqzoo":
        return None
    for source in CONVERTERS:
        if _module(source).matches(config):
            return source
    return None


def convert(source: str, folder: str | Path) -> SeqModel:
    """The seqzoo model of the ``source``-layout checkpoint in ``folder`` (weights loaded strictly)."""
    return _module(source).convert(Path(folder))
