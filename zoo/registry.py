"""The static registry: zoo entries declared as data, looked up by name, never touching the network.

An entry is declared once in ``zoo/entries/<family>.py``; ``zoo/entries/__init__.py`` lists the
modules explicitly (no import-time registration decorators).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Literal

from zoo.model import ModelConfig

Domain = Literal["genomics", "protein", "forecasting", "language"]


@dataclass(frozen=True)
class Weights:
    """Where an entry's pretrained weights live: a Hub repo at a pinned revision."""

    repo_id: str
    """Hugging Face repo id, e.g. ``LongSafari/hyenadna-tiny-1k-seqlen-hf``."""
    revision: str
    """A commit hash or tag; never a moving branch."""
    source: Literal[
        "seqzoo", "hyenadna", "caduceus", "transformers-mamba", "transformers-mamba2", "mamba-ssm", "xlstm"
    ] = "seqzoo"
    """Checkpoint layout: ``seqzoo`` loads directly, anything else goes through its converter."""
    sha256: str | None = None
    """Published SHA-256 of ``model.safetensors`` at ``revision``, checked after download when known."""
    bundled: bool = False
    """The snapshot ships inside the package (``zoo/weights/<entry>/``: config.json, model.safetensors,
    README.md, exactly the files of the Hub repo) until the project's Hub organisation publishes it; it is
    loaded like a downloaded snapshot (same sha256 check, same loader), and ``zoo push`` uploads the folder
    unchanged. Asking for another ``revision`` goes to the Hub."""


@dataclass(frozen=True)
class Entry:
    """One model in the zoo: architecture, domain, weights, licence, recipe and card."""

    name: str
    """Kebab-case ``<family>-<size>[-<variant>]``."""
    family: str
    """Architecture family (hyenadna, hybridna, caduceus, xlstm, mamba, ...)."""
    domain: Domain
    """Which domain's heads, tokenizers and data apply."""
    config: ModelConfig
    """The architecture."""
    description: str
    """One line for ``zoo list``."""
    license: str
    """SPDX id of the weights' / architecture's licence."""
    weights: Weights | None = None
    """Published weights, or None when only random initialisation exists yet."""
    recipe: str | None = None
    """``recipe://domain/entry/stage`` that trains it; None while pending (training stack, issue #3)."""
    card: str | None = None
    """File name in model_cards/; None while pending."""
    reference: str = ""
    """The published architecture this entry follows."""

    @property
    def context(self) -> int:
        """Context length the entry is designed for."""
        return self.config.max_seq_len


def official_entry(
    name: str,
    family: str,
    domain: Domain,
    description: str,
    license: str,
    config: ModelConfig,
    weights: Weights,
    layout: str = "checkpoint",
) -> Entry:
    """An entry for another project's published checkpoint: converted on load by ``weights.source``'s converter,
    described by the card ``model_cards/<name>.md``, trained by no seqzoo recipe."""
    return Entry(
        name=name,
        family=family,
        domain=domain,
        description=description,
        reference=f"{weights.repo_id}: converted from the official {layout}",
        license=license,
        card=f"{name}.md",
        weights=weights,
        config=config,
    )


class UnknownModelError(KeyError):
    """An unknown model name; the message lists the closest registered names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def _all_entries() -> dict[str, Entry]:
    from zoo.entries import ENTRIES

    table: dict[str, Entry] = {}
    for entry in ENTRIES:
        if entry.name in table:
            raise RuntimeError(f"duplicate zoo entry name {entry.name!r}")
        table[entry.name] = entry
    return table


def get_entry(name: str) -> Entry:
    """The entry called ``name``; an unknown name raises ``UnknownModelError`` with close matches."""
    table = _all_entries()
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else " See zoo.list_models()."
    raise UnknownModelError(f"unknown model {name!r}.{hint}")


def list_models(pattern: str = "*", domain: Domain | None = None) -> list[str]:
    """Sorted entry names matching the shell-style ``pattern`` (e.g. ``"*dna*"``), optionally by domain."""
    return sorted(
        name
        for name, entry in _all_entries().items()
        if fnmatch.fnmatchcase(name, pattern) and (domain is None or entry.domain == domain)
    )
