"""The public API: ``load``, ``info``, ``list_models``.

Names ``load`` accepts:

* a registry entry, ``"hybridna-small"``;
* ``"local-dir:PATH"``, a folder written by ``save_pretrained`` / ``zoo export``;
* ``"hf-hub:org/name[@revision]"``, a Hub repository (lands with the Hub, issue #5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from zoo.config import to_dict
from zoo.io import load_pretrained
from zoo.model import SeqModel, count_parameters
from zoo.registry import Entry, get_entry, list_models

LOCAL_PREFIX = "local-dir:"
HUB_PREFIX = "hf-hub:"


def load(
    name: str,
    pretrained: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> SeqModel:
    """Build the model called ``name``; with ``pretrained`` also load its published weights.

    ``pretrained=False`` gives a randomly initialised model and never touches the network.
    """
    if name.startswith(LOCAL_PREFIX):
        return load_pretrained(name[len(LOCAL_PREFIX) :], device=device, dtype=dtype)
    if name.startswith(HUB_PREFIX):
        raise NotImplementedError(
            f"{name!r}: loading from the Hugging Face Hub is not available in this version of seqzoo; "
            "use a registry name with pretrained=False or a local-dir: folder"
        )
    entry = get_entry(name)
    if pretrained:
        if entry.weights is None:
            raise ValueError(
                f"{name!r} has no published weights yet; use zoo.load({name!r}, pretrained=False) "
                "for a randomly initialised model"
            )
        raise NotImplementedError(
            f"{name!r}: downloading weights from {entry.weights.repo_id} is not available yet"
        )
    model = SeqModel(entry.config)
    return model.to(device=device, dtype=dtype)


@dataclass
class ModelInfo:
    """What ``zoo.info`` reports about an entry (no network, no weights)."""

    name: str
    family: str
    domain: str
    description: str
    parameters: int
    context: int
    pattern: str
    license: str
    pretrained: bool
    weights: str | None
    recipe: str | None
    card: str | None
    reference: str
    config: dict[str, Any]


def info(name: str) -> ModelInfo:
    """Facts about the entry ``name``: size, context, licence, weights, recipe, card and full config."""
    entry = get_entry(name)
    return ModelInfo(
        name=entry.name,
        family=entry.family,
        domain=entry.domain,
        description=entry.description,
        parameters=parameter_count(entry),
        context=entry.context,
        pattern=entry.config.backbone.pattern,
        license=entry.license,
        pretrained=entry.weights is not None,
        weights=None if entry.weights is None else f"{entry.weights.repo_id}@{entry.weights.revision}",
        recipe=entry.recipe,
        card=entry.card,
        reference=entry.reference,
        config=to_dict(entry.config),
    )


def parameter_count(entry: Entry) -> int:
    """Parameters of ``entry``, counted on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return count_parameters(SeqModel(entry.config))


__all__ = ["ModelInfo", "info", "list_models", "load"]
