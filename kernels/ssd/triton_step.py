"""Fused Triton decode step of the SSD scan (Mamba-2): one token, inference only.

``ssd_step_triton`` takes the arguments of ``ssd_step`` (``x_t [B,H,V]``, ``dt_t [B,H]``, ``A [H]``,
``B_t, C_t [B,G,K]``, ``D_skip [H]?``, ``state [B,H,K,V]``) and returns ``(y_t [B,H,V] in x_t's dtype,
new_state [B,H,K,V] fp32)``; the old state is never written. One program owns one ``(batch, head)`` and
``BLOCK_V`` columns of its ``[K,V]`` state (the whole ``K``, which the read-out sums over): it reads the state
once, writes the new one once and reads its group's ``B_t, C_t`` directly, where the torch step first repeats
them per head and round-trips ``[B,H,K,V]`` temporaries through memory.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def ssd_step_kernel(
    x,  # [B,H,V] strides s_xb, s_xh, s_xv
    dt,  # [B,H] strides s_tb, s_th
    A,  # [H]
    Bt,  # [B,G,K] strides s_bb, s_bg, s_bk
    Ct,  # [B,G,K] strides s_cb, s_cg, s_ck
    D_skip,  # [H]
    S,  # [B,H,K,V] contiguous, any float dtype
    y,  # [B,H,V] contiguous out, x's dtype
    S_new,  # [B,H,K,V] contiguous fp32 out
    H,
    K,
    V,
    HEADS_PER_GROUP,  # H // G
    s_xb,
    s_xh,
    s_xv,
    s_tb,
    s_th,
    s_bb,
    s_bg,
    s_bk,
    s_cb,
    s_cg,
    s_ck,
    BLOCK_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
    HAS_D_SKIP: tl.constexpr,
):
    # (batch, head) on grid axis 0: axis 1 is limited to 65535 programs, and B H can pass that
    i_bh, i_v = tl.program_id(0).to(tl.int64), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // HEADS_PER_GROUP
    o_k = tl.arange(0, BLOCK_K)
    o_v = i_v * BLOCK_V + tl.arange(0, BLOCK_V)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    # (batch, head) rows of the state are 64-bit indexed: B H K V passes 2**31 at large batch
    o_S = i_bh * K * V + o_k[:, None] * V + o_v[None, :]

    b_dt = tl.load(dt + i_b * s_tb + i_h * s_th).to(tl.float32)
    b_decay = tl.exp(b_dt * tl.load(A + i_h).to(tl.float32))
    b_x = tl.load(x + i_b * s_xb + i_h * s_xh + o_v * s_xv, mask=m_v, other=0.0).to(tl.float32)
    b_B = tl.load(Bt + i_b * s_bb + i_g * s_bg + o_k * s_bk, mask=m_k, other=0.0).to(tl.float32)
    b_C = tl.load(Ct + i_b * s_cb + i_g * s_cg + o_k * s_ck, mask=m_k, other=0.0).to(tl.float32)
    b_S = tl.load(S + o_S, mask=m_kv, other=0.0).to(tl.float32)

    b_S = b_decay * b_S + (b_dt * b_B)[:, None] * b_x[None, :]
    b_y = tl.sum(b_C[:, None] * b_S, axis=0)
    if HAS_D_SKIP:
        b_y += tl.load(D_skip + i_h).to(tl.float32) * b_x
    tl.store(S_new + o_S, b_S, mask=m_kv)
    tl.store(y + i_bh * V + o_v, b_y.to(y.dtype.element_ty), mask=m_v)


def _block_v(V: int, BLOCK_K: int) -> int:
    # ~4K state elements per program (32 of V=64 at K=128): the step is memory-bound on the state; two
    # programs per head give a single sequence of a 24-head model 48 programs to spread over the SMs
    return min(triton.next_power_of_2(V), max(1, 4096 // BLOCK_K))


def ssd_step_triton(
    x_t: torch.Tensor,
    dt_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D_skip: torch.Tensor | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One fused token of the SSD scan; arguments and results as ``ssd_step`` (shapes checked there).

    Inference only: raises a ValueError when autograd would need a graph (grad mode on and an input that
    requires grad); ``impl="auto"`` routes those calls to the torch step instead.
    """
    tensors = (x_t, dt_t, A, B_t, C_t, D_skip, state)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise ValueError(
            "the Triton ssd_step has no backward: call it under torch.no_grad() / inference_mode, "
            "or use impl='torch' (impl='auto' does) to differentiate through the step"
        )
    b, h, v = x_t.shape
    g, k = B_t.shape[1:]
    # parameters and the state are contiguous in practice (no copy then); the per-token activations come
    # as slices of a projection's output, so they are read through their strides instead
    A, state = A.contiguous(), state.contiguous()
    D_skip = None if D_skip is None else D_skip.contiguous()
    y = torch.empty(b, h, v, device=x_t.device, dtype=x_t.dtype)
    new_state = torch.empty(b, h, k, v, device=x_t.device, dtype=torch.float32)
    BLOCK_K = triton.next_power_of_2(k)
    BLOCK_V = _block_v(v, BLOCK_K)
    ssd_step_kernel[(b * h, triton.cdiv(v, BLOCK_V))](
        x_t, dt_t, A, B_t, C_t,
        A if D_skip is None else D_skip,  # never read without HAS_D_SKIP
        state, y, new_state,
        h, k, v, h // g,
        *x_t.stride(), *dt_t.stride(), *B_t.stride(), *C_t.stride(),
        BLOCK_K=BLOCK_K,
        BLOCK_V=BLOCK_V,
        HAS_D_SKIP=D_skip is not None,
        # a 4K-element fp32 tile: ~110 registers a thread at 8 warps, ~150 at 4 (sm_90 ptxas, no spills either way)
        num_warps=8 if BLOCK_K * BLOCK_V >= 4096 else 4,
    )  # fmt: skip
    return y, new_state
