"""Fused Triton decode step of the sLSTM: one token, inference only.

``slstm_step_triton`` takes the arguments of ``slstm_step`` (``gates_x_t [B,4,H,D]``, ``R [H,D,4,D]``,
``bias [4,H,D]``, ``state = (h, c, n, m)`` each ``[B,H,D]``) and returns ``(h_t [B,H,D] in gates_x_t's dtype,
(h, c, n, m) fp32)`` in new tensors; the old state is never written. One launch does the whole token, where
the torch step launches an einsum and a dozen elementwise kernels.

A decode step reads ``R`` once (``16 H D^2`` bytes in fp32) and little else, so it is bound by that read. The
grid splits every head's output channels into ``BO``-wide tiles so that even batch 1 spreads the read over
``H D / BO`` programs; each program walks the input channels in ``BK`` blocks. There is no head-dim limit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from zoo.kernels.slstm.triton_kernels import _dot, _logsigmoid, _tanh


@triton.jit
def slstm_step_kernel(
    gx,  # [B,4,H,D] strides s_xb, s_xg, s_xh, s_xd
    R,  # [H,D,4,D] contiguous
    bias,  # [4,H,D] contiguous
    h,  # [B,H,D] contiguous (c, n, m likewise), any float dtype
    c,
    n,
    m,
    y,  # [B,H,D] out, gx's dtype
    h_new,  # [B,H,D] fp32 out (c_new, n_new, m_new likewise)
    c_new,
    n_new,
    m_new,
    B,
    H,
    D,
    s_xb,
    s_xg,
    s_xh,
    s_xd,
    BB: tl.constexpr,
    BK: tl.constexpr,
    BO: tl.constexpr,
    HALF: tl.constexpr,
):
    i_bb, i_h, i_o = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64), tl.program_id(2)
    o_b = i_bb * BB + tl.arange(0, BB).to(tl.int64)
    o_o = i_o * BO + tl.arange(0, BO)
    o_k = tl.arange(0, BK)
    m_b, m_o = o_b < B, o_o < D
    m_bo = m_b[:, None] & m_o[None, :]
    HD = H * D

    # recurrent term of this output tile: h_{t-1} [BB, D] @ R[h][:, g, tile] for the four gates
    b_ai = tl.zeros([BB, BO], dtype=tl.float32)
    b_af = tl.zeros([BB, BO], dtype=tl.float32)
    b_az = tl.zeros([BB, BO], dtype=tl.float32)
    b_ao = tl.zeros([BB, BO], dtype=tl.float32)
    for k0 in range(0, D, BK):
        m_k = k0 + o_k < D
        b_h = tl.load(h + o_b[:, None] * HD + i_h * D + k0 + o_k[None, :], mask=m_b[:, None] & m_k[None, :], other=0.0)
        b_h = b_h.to(tl.float32)
        p_r = R + i_h * D * 4 * D + (k0 + o_k[:, None]) * (4 * D) + o_o[None, :]
        m_r = m_k[:, None] & m_o[None, :]
        b_ai += _dot(b_h, tl.load(p_r, mask=m_r, other=0.0).to(tl.float32), HALF)
        b_af += _dot(b_h, tl.load(p_r + D, mask=m_r, other=0.0).to(tl.float32), HALF)
        b_az += _dot(b_h, tl.load(p_r + 2 * D, mask=m_r, other=0.0).to(tl.float32), HALF)
        b_ao += _dot(b_h, tl.load(p_r + 3 * D, mask=m_r, other=0.0).to(tl.float32), HALF)

    p_x = gx + o_b[:, None] * s_xb + i_h * s_xh + o_o[None, :] * s_xd
    p_bias = bias + i_h * D + o_o
    raw_i = b_ai + tl.load(p_x, mask=m_bo, other=0.0).to(tl.float32)
    raw_f = b_af + tl.load(p_x + s_xg, mask=m_bo, other=0.0).to(tl.float32)
    raw_z = b_az + tl.load(p_x + 2 * s_xg, mask=m_bo, other=0.0).to(tl.float32)
    raw_o = b_ao + tl.load(p_x + 3 * s_xg, mask=m_bo, other=0.0).to(tl.float32)
    raw_i += tl.load(p_bias, mask=m_o, other=0.0).to(tl.float32)[None, :]
    raw_f += tl.load(p_bias + HD, mask=m_o, other=0.0).to(tl.float32)[None, :]
    raw_z += tl.load(p_bias + 2 * HD, mask=m_o, other=0.0).to(tl.float32)[None, :]
    raw_o += tl.load(p_bias + 3 * HD, mask=m_o, other=0.0).to(tl.float32)[None, :]

    o_s = o_b[:, None] * HD + i_h * D + o_o[None, :]
    b_c = tl.load(c + o_s, mask=m_bo, other=0.0).to(tl.float32)
    b_n = tl.load(n + o_s, mask=m_bo, other=0.0).to(tl.float32)
    b_m = tl.load(m + o_s, mask=m_bo, other=0.0).to(tl.float32)
    b_L = b_m + _logsigmoid(raw_f)
    b_m_new = tl.where(b_n == 0.0, raw_i, tl.maximum(raw_i, b_L))
    b_i = tl.exp(raw_i - b_m_new)
    b_f = tl.exp(b_L - b_m_new)
    b_c = b_f * b_c + b_i * _tanh(raw_z)
    b_n = b_f * b_n + b_i
    b_h_new = tl.sigmoid(raw_o) * b_c / b_n
    tl.store(y + o_s, b_h_new.to(y.dtype.element_ty), mask=m_bo)
    tl.store(h_new + o_s, b_h_new, mask=m_bo)
    tl.store(c_new + o_s, b_c, mask=m_bo)
    tl.store(n_new + o_s, b_n, mask=m_bo)
    tl.store(m_new + o_s, b_m_new, mask=m_bo)


def slstm_step_triton(
    gates_x_t: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One fused sLSTM token; arguments and results as ``slstm_step`` (shapes checked there).

    Inference only: raises a ValueError when autograd would need a graph (grad mode on and an input that
    requires grad); ``impl="auto"`` routes those calls to the torch step instead.
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (gates_x_t, R, bias, *state)):
        raise ValueError(
            "the Triton slstm_step has no backward: call it under torch.no_grad() / inference_mode, "
            "or use impl='torch' (impl='auto' does) to differentiate through the step"
        )
    b, _, heads, d = gates_x_t.shape
    # parameters and the state are contiguous in practice (no copy then); gates_x_t is often a view of a
    # projection's output, so it is read through its strides
    R, bias = R.contiguous(), bias.contiguous()
    h, c, n, m = (s.contiguous() for s in state)
    dev = gates_x_t.device
    y = torch.empty(b, heads, d, device=dev, dtype=gates_x_t.dtype)
    new = tuple(torch.empty(b, heads, d, device=dev, dtype=torch.float32) for _ in range(4))
    bd = max(16, triton.next_power_of_2(d))
    # tl.dot needs >= 16 rows: a decode batch below 16 is padded with masked rows
    BB = min(64, max(16, triton.next_power_of_2(b)))
    BK, BO = min(bd, 64), min(bd, 32)
    grid = (triton.cdiv(b, BB), heads, triton.cdiv(d, BO))
    slstm_step_kernel[grid](
        gates_x_t, R, bias, h, c, n, m, y, *new,
        b, heads, d, *gates_x_t.stride(),
        BB=BB, BK=BK, BO=BO, HALF=gates_x_t.dtype in (torch.float16, torch.bfloat16),
    )  # fmt: skip
    return y, new
