"""A fused Triton decode step of the mLSTM (inference only: no autograd).

One launch does the whole token: gates, the stabiliser, the rank-one update of ``C`` and ``n`` and the
normalised readout. Each program owns one ``V`` block of one head and walks ``K`` in blocks, so ``C`` is read
and written exactly once (the step is memory-bound: ``2 K V`` fp32 per head and token).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from zoo.kernels.mlstm.reference import MLSTMStateTuple


@triton.jit
def mlstm_step_kernel(
    q,  # [B,H,K] contiguous
    k,  # [B,H,K] contiguous
    v,  # [B,H,V] contiguous
    igate,  # [B,H] contiguous
    fgate,  # [B,H] contiguous
    C,  # [B,H,K,V] fp32 contiguous
    n,  # [B,H,K] fp32 contiguous
    m,  # [B,H] fp32 contiguous
    h,  # [B,H,V], out
    C_new,  # [B,H,K,V] fp32, out
    n_new,  # [B,H,K] fp32, out
    m_new,  # [B,H] fp32, out
    K,
    V,
    scale,
    eps,
    BK: tl.constexpr,
    BV: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)  # only the head index meets a large stride
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V

    b_f = tl.load(fgate + i_bh).to(tl.float32)
    b_i = tl.load(igate + i_bh).to(tl.float32)
    b_m = tl.load(m + i_bh)
    b_logf = tl.minimum(b_f, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(b_f)))
    b_m_new = tl.maximum(b_logf + b_m, b_i)
    b_fa = tl.exp(b_logf + b_m - b_m_new)  # both gates <= 1 after stabilisation
    b_ia = tl.exp(b_i - b_m_new)
    b_v = tl.load(v + i_bh * V + o_v, mask=m_v, other=0.0).to(tl.float32)

    b_num = tl.zeros([BV], dtype=tl.float32)
    b_qn = tl.zeros([BK], dtype=tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        m_kv = m_k[:, None] & m_v[None, :]
        b_q = tl.load(q + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32) * scale
        b_k = tl.load(k + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        o_kv = o_k[:, None] * V + o_v[None, :]  # int32 inside the head's [K,V] block; the base is int64
        b_C = tl.load(C + i_bh * K * V + o_kv, mask=m_kv, other=0.0)
        b_C = b_fa * b_C + (b_ia * b_k)[:, None] * b_v[None, :]
        tl.store(C_new + i_bh * K * V + o_kv, b_C, mask=m_kv)
        b_n = b_fa * tl.load(n + i_bh * K + o_k, mask=m_k, other=0.0) + b_ia * b_k
        # every V block computes n; the first one stores it
        tl.store(n_new + i_bh * K + o_k, b_n, mask=m_k & (o_k * 0 + i_v == 0))
        b_num += tl.sum(b_q[:, None] * b_C, axis=0)
        b_qn += b_q * b_n

    b_den = tl.maximum(tl.abs(tl.sum(b_qn)), tl.exp(-b_m_new)) + eps
    tl.store(h + i_bh * V + o_v, (b_num / b_den).to(h.dtype.element_ty), mask=m_v)
    tl.store(m_new + i_bh, b_m_new, mask=i_v == 0)


def mlstm_step_triton(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    i_t: torch.Tensor,
    f_t: torch.Tensor,
    state: MLSTMStateTuple,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """One decode token in one launch: ``q_t, k_t [B,H,K]``, ``v_t [B,H,V]``, ``i_t, f_t [B,H]``, ``state``.

    Returns ``(h_t [B,H,V] in q_t's dtype, new (C, n, m) fp32)``; the old state is left untouched. Shapes are
    checked by ``ops.mlstm_step``. No autograd (decode / inference only).
    """
    b, nh, dk = q_t.shape
    dv = v_t.shape[-1]
    q_t, k_t, v_t, i_t, f_t = (x.contiguous() for x in (q_t, k_t, v_t, i_t, f_t))
    C, n, m = (s.float().contiguous() for s in state)
    h = torch.empty(b, nh, dv, device=q_t.device, dtype=q_t.dtype)
    C_new, n_new, m_new = torch.empty_like(C), torch.empty_like(n), torch.empty_like(m)
    # BK x BV fp32 tile of C per iteration; 64 x 64 keeps it in registers with room for the update
    BK = max(16, min(64, triton.next_power_of_2(dk)))
    BV = max(16, min(64, triton.next_power_of_2(dv)))
    mlstm_step_kernel[(triton.cdiv(dv, BV), b * nh)](
        q_t, k_t, v_t, i_t, f_t, C, n, m, h, C_new, n_new, m_new, dk, dv, dk**-0.5, eps, BK=BK, BV=BV
    )
    return h, (C_new, n_new, m_new)
