"""Public entry points of the causal depthwise convolution: chunked (training/prefill) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.causal_conv1d.reference import (
    _activate,
    causal_conv1d_chunk_ref,
    causal_conv1d_recurrent_ref,
)
from zoo.kernels.common import Impl, dispatch, lazy

_IMPLS = {
    "triton": lazy("zoo.kernels.causal_conv1d.triton_op", "causal_conv1d_triton"),
    "torch": causal_conv1d_chunk_ref,
    "reference": causal_conv1d_recurrent_ref,
}


def causal_conv1d_chunk(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise conv of ``x [B,T,D]`` with ``weight [D,W]``; returns ``(y [B,T,D], state [B,D,W-1])``."""
    return dispatch(impl, _IMPLS, x)(x, weight, bias, activation, initial_state)


def causal_conv1d_step(
    x_t: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``x_t [B,D]``, ``state [B,D,W-1]`` -> ``(y_t [B,D], new_state [B,D,W-1])``."""
    window = torch.cat([state, x_t.float().unsqueeze(-1)], dim=-1)  # [B, D, W]
    y_t = (window * weight.float()).sum(-1)
    if bias is not None:
        y_t = y_t + bias.float()
    return _activate(y_t, activation).to(x_t.dtype), window[:, :, 1:]
