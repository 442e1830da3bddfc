"""Fused Triton decode step of the causal depthwise convolution: one token, inference only.

``causal_conv1d_step_triton`` takes the arguments of ``causal_conv1d_step`` (``x_t [B,D]``, ``weight [D,W]``,
``bias [D]?``, ``activation``, ``state [B,D,W-1]``) and returns ``(y_t [B,D] in x_t's dtype,
new_state [B,D,W-1] fp32)``, the window shifted by one with ``x_t`` appended; the old state is never written.
One program owns one batch row and ``BLOCK_D`` channels and reads each input once, where the torch step
concatenates a ``[B,D,W]`` window and launches a kernel per operation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def causal_conv1d_step_kernel(
    x,  # [B,D] strides s_xb, s_xd
    w,  # [D,W] contiguous
    bias,  # [D]
    h,  # [B,D,W-1] contiguous, any float dtype
    y,  # [B,D] contiguous out, x's dtype
    h_new,  # [B,D,W-1] contiguous fp32 out
    D,
    s_xb,
    s_xd,
    W: tl.constexpr,
    BLOCK_W: tl.constexpr,  # next power of two >= W - 1 (at least 1)
    BLOCK_D: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SILU: tl.constexpr,
):
    i_d, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_w = tl.arange(0, BLOCK_W)
    m_d, m_w = o_d < D, o_w < W - 1
    m_dw = m_d[:, None] & m_w[None, :]
    # the state is 64-bit indexed: B D (W-1) passes 2**31 at large batch
    o_h = i_b * D * (W - 1) + o_d[:, None] * (W - 1) + o_w[None, :]

    b_x = tl.load(x + i_b * s_xb + o_d * s_xd, mask=m_d, other=0.0).to(tl.float32)
    b_h = tl.load(h + o_h, mask=m_dw, other=0.0).to(tl.float32)
    # weight[:, :W-1] multiplies the history (oldest first), weight[:, W-1] the current token
    b_wh = tl.load(w + o_d[:, None] * W + o_w[None, :], mask=m_dw, other=0.0).to(tl.float32)
    b_wx = tl.load(w + o_d * W + (W - 1), mask=m_d, other=0.0).to(tl.float32)
    b_y = tl.sum(b_h * b_wh, axis=1) + b_wx * b_x
    if HAS_BIAS:
        b_y += tl.load(bias + o_d, mask=m_d, other=0.0).to(tl.float32)
    if SILU:
        b_y = b_y * tl.sigmoid(b_y)
    tl.store(y + i_b * D + o_d, b_y.to(y.dtype.element_ty), mask=m_d)

    # new_state[j] = state[j + 1] for j < W - 2, new_state[W - 2] = x_t: a second (cached) read of the
    # history shifted by one is simpler than moving registers between lanes
    m_shift = m_d[:, None] & (o_w + 1 < W - 1)[None, :]
    b_hs = tl.load(h + o_h + 1, mask=m_shift, other=0.0).to(tl.float32)
    b_hs = tl.where((o_w == W - 2)[None, :], b_x[:, None], b_hs)
    tl.store(h_new + o_h, b_hs, mask=m_dw)


def causal_conv1d_step_triton(
    x_t: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One fused token of the causal conv; arguments and results as ``causal_conv1d_step`` (checked there).

    Inference only: raises a ValueError when autograd would need a graph (grad mode on and an input that
    requires grad); ``impl="auto"`` routes those calls to the torch step instead.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x_t, weight, bias, state)):
        raise ValueError(
            "the Triton causal_conv1d_step has no backward: call it under torch.no_grad() / inference_mode, "
            "or use impl='torch' (impl='auto' does) to differentiate through the step"
        )
    b, d = x_t.shape
    width = weight.shape[1]
    # parameters and the state are contiguous in practice (no copy then); x_t often comes as a slice of a
    # projection's output, so it is read through its strides instead
    weight, state = weight.contiguous(), state.contiguous()
    bias = None if bias is None else bias.contiguous()
    y = torch.empty(b, d, device=x_t.device, dtype=x_t.dtype)
    new_state = torch.empty(b, d, width - 1, device=x_t.device, dtype=torch.float32)
    # 256 channels a program: the step is a few loads per channel, so larger tiles only cut parallelism
    BLOCK_D = min(triton.next_power_of_2(d), 256)
    causal_conv1d_step_kernel[(triton.cdiv(d, BLOCK_D), b)](
        x_t, weight,
        x_t if bias is None else bias,  # never read without HAS_BIAS
        state, y, new_state,
        d, x_t.stride(0), x_t.stride(1),
        W=width,
        BLOCK_W=triton.next_power_of_2(max(width - 1, 1)),
        BLOCK_D=BLOCK_D,
        HAS_BIAS=bias is not None,
        SILU=activation == "silu",
    )  # fmt: skip
    return y, new_state
