"""Heads on a ``SeqModel``'s hidden states: pooling, sequence-level and per-position heads.

Tensor contract: ``hidden [B, T, D]`` and ``attention_mask [B, T]`` bool (True on real tokens; batches are
right-padded, see ``zoo.domains.genomics.labelled``). A pooled vector is ``[B, D]``; a sequence head maps
it to ``[B, C]``; a token head maps ``[B, T, D]`` to ``[B, T, C]``.

Reverse-complement-equivariant models (Caduceus-PS) return ``[B, T, 2D]``: forward strand, then the
reverse strand channel-flipped. ``fold_strands`` averages the two into ``[B, T, D]``, which is
reverse-complement *invariant* after mean/max pooling, as Caduceus' own downstream heads do
(they apply the head to both strands and average).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Pooling = Literal["mean", "last", "cls", "max"]
POOLINGS = ("mean", "last", "cls", "max")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: Pooling = "mean") -> torch.Tensor:
    """``[B, T, D]`` -> ``[B, D]`` over the unpadded positions of each row.

    ``mean`` / ``max``: over positions where ``attention_mask`` is True; ``last``: the last such position
    (the one that has read the whole sequence in a causal model); ``cls``: position 0 (a ``[CLS]`` token
    where the data prepends one, else the first base).
    """
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} does not match hidden {tuple(hidden.shape)}")
    mask = attention_mask.bool()
    lengths = mask.sum(1)  # [B]
    if (lengths == 0).any():
        raise ValueError(f"row {int(torch.argmin(lengths))} of the batch has no unpadded position")
    if how == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        return (hidden * weights).sum(1) / lengths.unsqueeze(-1).to(hidden.dtype)
    if how == "max":
        return hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    if how == "last":
        # The last True position, also for masks that are not a contiguous prefix.
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(mask, positions, -1).amax(1)  # [B]
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how == "cls":
        return hidden[:, 0]
    raise ValueError(f"pooling {how!r} is not one of {POOLINGS}")


def fold_strands(hidden: torch.Tensor) -> torch.Tensor:
    """``[..., 2D]`` (forward strand, channel-flipped reverse strand) -> ``[..., D]``, their average."""
    d = hidden.shape[-1] // 2
    return (hidden[..., :d] + hidden[..., d:].flip(-1)) / 2


def hidden_width(model: nn.Module) -> int:
    """Width of ``model(...).hidden``: ``d_model``, doubled for reverse-complement-equivariant models."""
    return model.d_model * (2 if model.config.rc_equivariant else 1)


class SequenceHead(nn.Module):
    """Dropout + linear ``[B, D] -> [B, C]``, or dropout + a 2-layer GELU MLP when ``hidden`` is given."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.1, hidden: int | None = None):
        super().__init__()
        if hidden is None:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, out_features))
        else:
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_features, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_features),
            )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` -> ``[B, C]``."""
        return self.net(pooled)


class TokenHead(nn.Module):
    """Dropout + a per-position linear map ``[B, T, D] -> [B, T, C]``."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, T, C]``."""
        return self.linear(self.dropout(hidden))
