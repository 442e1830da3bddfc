"""Public entry points of the causal depthwise convolution: chunked (training/prefill) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.causal_conv1d.reference import (
    ACTIVATIONS,
    _activate,
    causal_conv1d_chunk_ref,
    causal_conv1d_recurrent_ref,
)
from zoo.kernels.common import Impl, check_shape, dispatch, lazy

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


def _causal_conv1d_step_torch(x_t, weight, bias, activation, state):
    """The step in plain torch (the step's spec; differentiable). Shapes are checked by the caller."""
    window = torch.cat([state.float(), x_t.float().unsqueeze(-1)], dim=-1)  # [B, D, W]
    y_t = (window * weight.float()).sum(-1)
    if bias is not None:
        y_t = y_t + bias.float()
    return _activate(y_t, activation).to(x_t.dtype), window[:, :, 1:]


_STEP_IMPLS = {
    "triton": lazy("zoo.kernels.causal_conv1d.triton_step", "causal_conv1d_step_triton"),
    "torch": _causal_conv1d_step_torch,
    # the one-token step is its own spec: there is no separate recurrent form of it
    "reference": _causal_conv1d_step_torch,
}


def causal_conv1d_step(
    x_t: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    state: torch.Tensor,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``x_t [B,D]``, ``weight [D,W]``, ``bias [D]?``, ``state [B,D,W-1]``.

    Returns ``(y_t [B,D] in x_t's dtype, new_state [B,D,W-1] fp32)``: the window shifted by one with ``x_t``
    appended; ``state`` is left unchanged. ``impl="triton"`` is one fused kernel, inference only (a ValueError
    if autograd would need a graph); ``"auto"`` takes it for CUDA tensors unless grad mode is on and an input
    requires grad, then the torch step.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not one of {ACTIVATIONS}")
    check_shape("x_t", x_t, (None, None), "[B,D]")
    b, d = x_t.shape
    check_shape("weight", weight, (d, None), "[D,W]")
    if bias is not None:
        check_shape("bias", bias, (d,), "[D]")
    check_shape("state", state, (b, d, weight.shape[1] - 1), "[B,D,W-1]")
    if (
        impl == "auto"
        and torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in (x_t, weight, bias, state))
    ):
        # a decode step called with trainable parameters outside no_grad: keep it differentiable
        impl = "torch"
    return dispatch(impl, _STEP_IMPLS, x_t)(x_t, weight, bias, activation, state)
