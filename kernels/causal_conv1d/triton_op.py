"""Launches of the causal_conv1d Triton kernels and their autograd wrapper.

``causal_conv1d_triton`` has the signature of ``causal_conv1d_chunk_ref``:
``x [B,T,D]``, ``weight [D,W]``, ``bias [D]?``, ``activation``, ``initial_state [B,D,W-1]?``
-> ``(y [B,T,D] in x's dtype, final_state [B,D,W-1] fp32)``.
"""

from __future__ import annotations

import torch
import triton

from zoo.kernels.causal_conv1d.reference import _check
from zoo.kernels.causal_conv1d.triton_kernels import causal_conv1d_bwd_kernel, causal_conv1d_fwd_kernel


def _blocks(length: int, channels: int, block_t: int | None) -> tuple[int, int]:
    # 64x64 fp32 tiles keep a few W-shifted copies in registers; small inputs get small tiles.
    bt = block_t or min(64, max(16, triton.next_power_of_2(length)))
    bd = min(64, max(16, triton.next_power_of_2(channels)))
    return bt, bd


def _dense(x: torch.Tensor) -> torch.Tensor:
    # Time-major and channels-first (a transposed view) are both read in place; ``empty_like`` then gives
    # y and dx the same strides, so one stride triple serves x, y and dx.
    if x.is_contiguous() or x.transpose(1, 2).is_contiguous():
        return x
    return x.contiguous()


def causal_conv1d_fwd(x, weight, bias, activation, initial_state, block_t=None):
    """Forward launch: ``(y [B,T,D], final_state [B,D,W-1] fp32)``."""
    batch, length, channels = x.shape
    width = weight.shape[1]
    y = torch.empty_like(x)
    final_state = torch.empty(batch, channels, width - 1, device=x.device, dtype=torch.float32)
    bt, bd = _blocks(length, channels, block_t)
    grid = (max(triton.cdiv(length, bt), 1), triton.cdiv(channels, bd), batch)
    causal_conv1d_fwd_kernel[grid](
        x, weight, bias, initial_state, y, final_state,
        length, channels, *x.stride(),
        W=width, WP=max(2, triton.next_power_of_2(width - 1)), BT=bt, BD=bd,
        HAS_BIAS=bias is not None, HAS_H0=initial_state is not None, SILU=activation == "silu",
    )  # fmt: skip
    return y, final_state


def causal_conv1d_bwd(x, weight, bias, activation, initial_state, dy, dfinal_state, block_t=None):
    """Backward launch: ``(dx, dweight, dbias | None, dinitial_state | None)`` in the inputs' dtypes."""
    batch, length, channels = x.shape
    width = weight.shape[1]
    bt, bd = _blocks(length, channels, block_t)
    n_t = max(triton.cdiv(length, bt), 1)
    dx = torch.empty_like(x)
    dw = torch.empty(batch * n_t, channels, width, device=x.device, dtype=torch.float32)
    db = torch.empty(batch * n_t, channels, device=x.device, dtype=torch.float32) if bias is not None else None
    dh0 = torch.empty_like(initial_state, dtype=torch.float32) if initial_state is not None else None
    grid = (n_t, triton.cdiv(channels, bd), batch)
    causal_conv1d_bwd_kernel[grid](
        x, weight, bias, initial_state, dy, dfinal_state, dx, dw, db, dh0,
        length, channels, n_t, *x.stride(), *dy.stride(),
        W=width, WP=max(2, triton.next_power_of_2(width - 1)), BT=bt, BD=bd,
        HAS_BIAS=bias is not None, HAS_H0=initial_state is not None, SILU=activation == "silu",
        HAS_DHT=dfinal_state is not None,
    )  # fmt: skip
    dweight = dw.sum(0).to(weight.dtype)
    dbias = db.sum(0).to(bias.dtype) if bias is not None else None
    dinitial = dh0.to(initial_state.dtype) if initial_state is not None else None
    return dx, dweight, dbias, dinitial


class CausalConv1dFunction(torch.autograd.Function):
    """Autograd wrapper: saves the inputs only; the backward recomputes the pre-activation."""

    @staticmethod
    def forward(ctx, x, weight, bias, activation, initial_state):
        y, final_state = causal_conv1d_fwd(x, weight, bias, activation, initial_state)
        ctx.save_for_backward(x, weight, bias, initial_state)
        ctx.activation = activation
        # An unused output gets no gradient tensor instead of a materialised zero one.
        ctx.set_materialize_grads(False)
        return y, final_state

    @staticmethod
    def backward(ctx, dy, dfinal_state):
        x, weight, bias, initial_state = ctx.saved_tensors
        if dy is None:
            dy = torch.zeros_like(x)
        if dfinal_state is not None:
            dfinal_state = dfinal_state.contiguous()
        dx, dweight, dbias, dinitial = causal_conv1d_bwd(
            x, weight, bias, ctx.activation, initial_state, dy, dfinal_state
        )
        return dx, dweight, dbias, None, dinitial


def causal_conv1d_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton causal depthwise conv of ``x [B,T,D]``; returns ``(y [B,T,D], final_state [B,D,W-1] fp32)``."""
    _check(x, weight, bias, activation, initial_state)
    x = _dense(x)
    weight = weight.contiguous()
    if bias is not None:
        bias = bias.contiguous()
    if initial_state is not None:
        initial_state = initial_state.contiguous()
    return CausalConv1dFunction.apply(x, weight, bias, activation, initial_state)
