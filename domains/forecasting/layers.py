"""Forecasting input layers: per-instance normalisation (RevIN), patching and the patch embedding.

Tensor contract (letters used in every shape comment of the forecasting models):
``B`` batch, ``L`` look-back (``seq_len``), ``H`` horizon (``pred_len``), ``C`` channels (variates),
``N`` patches, ``P`` patch length, ``D`` backbone width, ``Q`` quantiles.

Missing values: NaN in the look-back is allowed. ``RevIN`` computes each series' statistics over the observed
values only, and after normalising replaces every missing value by 0 (the series mean on the normalised scale).
The observed mask is not thrown away: the patch embedding reads it beside the values (``PatchEmbedding`` takes
``2 P`` features per patch), so the model can tell an imputed mean from a measured one.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

PositionKind = Literal["learned", "sinusoidal", "none"]
POSITIONS: tuple[str, ...] = ("learned", "sinusoidal", "none")


class RevINStats(NamedTuple):
    """Per-instance, per-channel statistics of one look-back window, kept to map forecasts back."""

    mean: torch.Tensor
    """``[B, 1, C]``: mean of the observed values (0 for a channel with none)."""
    std: torch.Tensor
    """``[B, 1, C]``: ``sqrt(var + eps)`` of the observed values (1 for a channel with none)."""


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al., ICLR 2022), NaN-aware.

    ``normalise(x [B, L, C]) -> (z [B, L, C], observed [B, L, C] bool, stats)``: each series is shifted by its
    own look-back mean and scaled by its standard deviation (population variance, as the paper), then the
    learned per-channel affine ``z * weight + bias`` is applied; missing values become 0.
    ``denormalise(y [B, H, C, ...], stats)`` inverts both steps, so the model forecasts on ``x``'s scale.

    A channel whose whole look-back is missing gets mean 0 and standard deviation 1: on the protocol's
    z-scored scale that forecasts from the training mean instead of failing a whole batch (the data side
    rejects series that are missing entirely).
    """

    def __init__(self, num_channels: int, affine: bool = True, eps: float = 1e-5):
        """
        Args:
            num_channels: ``C``, the number of series per sample.
            affine: learn a per-channel scale and shift applied after normalising (undone before output).
            eps: added to the variance (and, squared, to the affine scale when inverting) for stability.
        """
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"num_channels must be positive, got {num_channels}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))

    def statistics(self, x: torch.Tensor) -> tuple[RevINStats, torch.Tensor]:
        """Mean and standard deviation over time of the observed values of ``x [B, L, C]``, and the mask."""
        observed = ~torch.isnan(x)  # [B, L, C]
        count = observed.sum(1, keepdim=True)  # [B, 1, C]
        values = torch.where(observed, x, torch.zeros_like(x))
        # nanmean/nanvar exist, but a fully missing channel would give NaN stats and NaN gradients; counting
        # explicitly lets such a channel fall back to (0, 1).
        safe = count.clamp(min=1)
        mean = values.sum(1, keepdim=True) / safe
        var = (torch.where(observed, x - mean, torch.zeros_like(x)) ** 2).sum(1, keepdim=True) / safe
        empty = count == 0
        mean = torch.where(empty, torch.zeros_like(mean), mean)
        std = torch.where(empty, torch.ones_like(var), torch.sqrt(var + self.eps))
        return RevINStats(mean.detach(), std.detach()), observed

    def normalise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, RevINStats]:
        """``x [B, L, C]`` (NaN = missing) -> ``(z [B, L, C], observed [B, L, C], stats)``; ``z`` has no NaN."""
        self._check(x)
        stats, observed = self.statistics(x)
        # fill before arithmetic: a NaN left in an unselected torch.where branch still poisons the gradients
        z = (torch.where(observed, x, stats.mean) - stats.mean) / stats.std
        if self.affine:
            z = z * self.weight + self.bias
        return torch.where(observed, z, torch.zeros_like(z)), observed, stats

    def denormalise(self, y: torch.Tensor, stats: RevINStats) -> torch.Tensor:
        """Map ``y [B, H, C]`` or ``[B, H, C, Q]`` from the normalised scale back to the input's scale."""
        if y.ndim not in (3, 4) or y.shape[2] != self.num_channels:
            raise ValueError(
                f"denormalise expects [B, H, {self.num_channels}] or [B, H, {self.num_channels}, Q], "
                f"got {tuple(y.shape)}"
            )
        extra = (None,) * (y.ndim - 3)  # broadcast over a trailing quantile axis
        mean, std = stats.mean[(..., *extra)], stats.std[(..., *extra)]
        if self.affine:
            weight, bias = self.weight[(..., *extra)], self.bias[(..., *extra)]
            y = (y - bias) / (weight + self.eps**2)
        return y * std + mean

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.num_channels:
            raise ValueError(f"RevIN expects x [B, L, {self.num_channels}], got {tuple(x.shape)}")
        if torch.isinf(x).any():
            raise ValueError(f"the look-back contains {int(torch.isinf(x).sum())} infinite values; use NaN for missing")


def num_patches(seq_len: int, patch_len: int, stride: int) -> int:
    """Patches ``Patching`` cuts from ``seq_len`` steps: ``(seq_len - patch_len) // stride + 2`` (end padded)."""
    if seq_len < patch_len:
        raise ValueError(f"seq_len={seq_len} is shorter than patch_len={patch_len}; lower patch_len")
    return (seq_len - patch_len) // stride + 2


class Patching(nn.Module):
    """PatchTST patching: repeat the last step ``stride`` times, then cut windows of ``patch_len`` every ``stride``.

    ``x [..., L] -> patches [..., N, P]`` with ``N = num_patches(L, P, stride)``. The end padding gives the most
    recent steps a patch of their own whatever ``L`` is.
    """

    def __init__(self, patch_len: int = 16, stride: int = 8):
        """
        Args:
            patch_len: ``P``, steps per patch.
            stride: steps between the starts of consecutive patches (``stride < patch_len`` overlaps them).
        """
        super().__init__()
        if patch_len < 1 or stride < 1:
            raise ValueError(f"patch_len and stride must be positive, got patch_len={patch_len}, stride={stride}")
        self.patch_len = patch_len
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., L] -> [..., N, P]``."""
        num_patches(x.shape[-1], self.patch_len, self.stride)  # validates the length
        lead = x.shape[:-1]
        # replicate padding works on [batch, channels, L]; fold every leading axis into one
        padded = F.pad(x.reshape(-1, 1, x.shape[-1]), (0, self.stride), mode="replicate")
        patches = padded.squeeze(1).unfold(-1, self.patch_len, self.stride)  # [*, N, P]
        return patches.reshape(*lead, *patches.shape[-2:])


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """``[length, width]`` fixed sine/cosine position codes (Vaswani et al. 2017), interleaved sin, cos."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequencies = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequencies)
    table[:, 1::2] = torch.cos(position * frequencies)[:, : width // 2]
    return table


class PatchEmbedding(nn.Module):
    """``tokens [B', N, F] -> [B', N, D]``: a linear map of each token's features plus a position code, dropout.

    ``F`` is the token's feature count (``2 P``: a patch of values and its observed mask, or ``2 L`` for a
    variate token). ``position``: ``learned`` (PatchTST's ``W_pos``), ``sinusoidal`` (fixed) or ``none``
    (recurrent backbones already know the order; attention entries add rotary positions of their own).
    """

    def __init__(
        self, in_features: int, d_model: int, num_tokens: int, position: PositionKind = "learned", dropout: float = 0.0
    ):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position={position!r} is not one of {POSITIONS}")
        self.proj = nn.Linear(in_features, d_model)
        self.num_tokens = num_tokens
        if position == "learned":
            self.position = nn.Parameter(torch.empty(num_tokens, d_model).normal_(std=0.02))
        elif position == "sinusoidal":
            self.register_buffer("position", sinusoidal_positions(num_tokens, d_model), persistent=False)
        else:
            self.position = None
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B', N, F] -> [B', N, D]``."""
        if tokens.shape[-2] != self.num_tokens:
            raise ValueError(f"expected {self.num_tokens} tokens, got {tokens.shape[-2]}")
        h = self.proj(tokens)
        if self.position is not None:
            h = h + self.position
        return self.dropout(h)
