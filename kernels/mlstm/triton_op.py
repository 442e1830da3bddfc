"""The Triton chunkwise mLSTM: kernel launches and the autograd wrapper, signature of ``mlstm_chunk_ref``.

Forward and backward both run in Triton (``triton_kernels.py``); the only torch glue is ``O(B H K V)``
(dot products of the final / initial state with their gradients) and allocations.
"""

from __future__ import annotations

import torch
import triton

from zoo.kernels.mlstm.reference import MLSTMStateTuple, _check
from zoo.kernels.mlstm.triton_kernels import (
    mlstm_bwd_dqdk_kernel,
    mlstm_bwd_dv_kernel,
    mlstm_bwd_gate_kernel,
    mlstm_bwd_prep_kernel,
    mlstm_bwd_state_kernel,
    mlstm_fwd_out_kernel,
    mlstm_fwd_state_kernel,
)

#: largest K / V block of one program (registers: a [BT, BK] and a [BK, BV] fp32 tile per operand)
_BLOCK_CAP = 64
#: largest sub-block of a chunk (level 2 of the tiling: [BT, BT] score tiles); chunks longer than this are cut
_SUB_CAP = 64
#: warps of the tile kernels (all but prep / gate). With BT = BK = BV = 64 on sm_90 (ptxas of Triton 3.9, bf16
#: inputs) 8 warps compile without register spills except ``dqdk`` (~230 B/thread); 4 warps spill everywhere.
_NUM_WARPS = 8


def _block(n: int, cap: int = _BLOCK_CAP) -> int:
    """A power-of-two block for a dimension of size ``n``: at least 16 (``tl.dot``'s minimum), at most ``cap``."""
    return max(16, min(cap, triton.next_power_of_2(n)))


def _sizes(q: torch.Tensor, v: torch.Tensor, chunk_size: int) -> dict:
    b, t, h, k = q.shape
    L = min(chunk_size, t)  # a chunk longer than the input only wastes L^2 work
    BT = _block(L, _SUB_CAP)
    return dict(
        B=b, T=t, H=h, K=k, V=v.shape[-1], L=L, NC=triton.cdiv(t, L), BT=BT, NS=triton.cdiv(L, BT),
        BK=_block(k), BV=_block(v.shape[-1]), HALF=q.dtype in (torch.float16, torch.bfloat16),
    )  # fmt: skip


def mlstm_triton_fwd(q, k, v, igate, fgate, C0, n0, m0, eps: float, chunk_size: int):
    """Forward launches on contiguous inputs. Returns ``(h, C_T, n_T, m_T, saved)`` where ``saved`` holds the
    chunk-start states ``(states_C, states_n, states_m)`` and the per-token ``(qn, m_tok)`` for the backward."""
    s = _sizes(q, v, chunk_size)
    B, T, H, K, V, NC = s["B"], s["T"], s["H"], s["K"], s["V"], s["NC"]
    f32 = dict(device=q.device, dtype=torch.float32)
    has_init = C0 is not None
    if m0 is None:
        m0 = torch.zeros(B, H, **f32)
    states_C = torch.empty(B, H, NC, K, V, **f32)
    states_n = torch.empty(B, H, NC, K, **f32)
    states_m = torch.empty(B, H, NC + 1, **f32)
    C_T = torch.empty(B, H, K, V, **f32)
    n_T = torch.empty(B, H, K, **f32)
    consts = dict(L=s["L"], BT=s["BT"], NS=s["NS"], BK=s["BK"], BV=s["BV"], HALF=s["HALF"])
    grid = (triton.cdiv(K, s["BK"]) * triton.cdiv(V, s["BV"]), B * H)
    mlstm_fwd_state_kernel[grid](
        k, v, igate, fgate, C0 if has_init else C_T, n0 if has_init else n_T, m0,
        states_C, states_n, states_m, C_T, n_T, T, H, K, V, NC, HAS_INIT=has_init, **consts, num_warps=_NUM_WARPS,
    )  # fmt: skip

    h = torch.empty(B, T, H, V, device=q.device, dtype=q.dtype)
    qn = torch.empty(B, H, T, **f32)
    m_tok = torch.empty(B, H, T, **f32)
    grid = (triton.cdiv(V, s["BV"]), NC * s["NS"], B * H)
    mlstm_fwd_out_kernel[grid](
        q, k, v, igate, fgate, states_C, states_n, states_m, h, qn, m_tok,
        T, H, K, V, NC, K**-0.5, eps, **consts, num_warps=_NUM_WARPS,
    )  # fmt: skip
    m_T = states_m[:, :, NC].clone()
    return h, C_T, n_T, m_T, (states_C, states_n, states_m, qn, m_tok)


def mlstm_triton_bwd(q, k, v, igate, fgate, C0, n0, h, C_T, n_T, saved, dh, dC_T, dn_T, dm_T, eps, chunk_size):
    """Backward launches. Returns ``(dq, dk, dv, digate, dfgate, dC0, dn0, dm0)`` (the last three None without
    an initial state)."""
    states_C, states_n, states_m, qn, m_tok = saved
    s = _sizes(q, v, chunk_size)
    B, T, H, K, V, NC = s["B"], s["T"], s["H"], s["K"], s["V"], s["NC"]
    consts = dict(L=s["L"], BT=s["BT"], NS=s["NS"], BK=s["BK"], BV=s["BV"], HALF=s["HALF"])
    f32 = dict(device=q.device, dtype=torch.float32)
    scale = K**-0.5
    dh = dh.contiguous()
    dC_T = dC_T.float().contiguous()
    dn_T = dn_T.float().contiguous()

    den, dqn, dm_tok = (torch.empty(B, H, T, **f32) for _ in range(3))
    BT = min(64, max(16, triton.next_power_of_2(T)))
    mlstm_bwd_prep_kernel[(triton.cdiv(T, BT), B * H)](
        h, dh, qn, m_tok, den, dqn, dm_tok, T, H, V, eps, BT=BT, BV=s["BV"]
    )

    dstates_C = torch.empty(B, H, NC, K, V, **f32)
    dstates_n = torch.empty(B, H, NC, K, **f32)
    dC0 = torch.empty(B, H, K, V, **f32)
    dn0 = torch.empty(B, H, K, **f32)
    grid = (triton.cdiv(K, s["BK"]) * triton.cdiv(V, s["BV"]), B * H)
    mlstm_bwd_state_kernel[grid](
        q, igate, fgate, dh, den, dqn, m_tok, states_m, dC_T, dn_T, dstates_C, dstates_n, dC0, dn0,
        T, H, K, V, NC, scale, **consts, num_warps=_NUM_WARPS,
    )  # fmt: skip

    NK = triton.cdiv(K, s["BK"])
    dq, dk = torch.empty_like(q), torch.empty_like(k)
    dqq = torch.empty(NK, B, H, T, **f32)
    dkk = torch.empty(NK, B, H, T, **f32)
    mlstm_bwd_dqdk_kernel[(NK, NC * s["NS"], B * H)](
        q, k, v, igate, fgate, dh, den, dqn, m_tok, states_C, states_n, states_m, dstates_C, dstates_n,
        dq, dk, dqq, dkk, B, T, H, K, V, NC, scale, **consts, num_warps=_NUM_WARPS,
    )  # fmt: skip
    dv = torch.empty_like(v)
    mlstm_bwd_dv_kernel[(triton.cdiv(V, s["BV"]), NC * s["NS"], B * H)](
        q, k, igate, fgate, dh, den, m_tok, states_m, dstates_C, dv,
        T, H, K, V, NC, scale, **consts, num_warps=_NUM_WARPS,
    )  # fmt: skip

    # The final state is exp(-m_T) times the unstabilised one: its gradient reaches every logf through the
    # unstabilised state and m_T through the stabiliser; both are these O(B H K V) dot products.
    final_dot = (dC_T * C_T).sum((-2, -1)) + (dn_T * n_T).sum(-1)
    carry_m = dm_T.float() - final_dot
    digate, dfgate = torch.empty_like(igate), torch.empty_like(fgate)
    dm0 = torch.empty(B, H, **f32)
    mlstm_bwd_gate_kernel[(B * H,)](
        igate, fgate, dqq, dkk, dm_tok, states_m, final_dot.contiguous(), carry_m.contiguous(),
        digate, dfgate, dm0, B, T, H, NC, NK, L=s["L"], BT=s["BT"], NS=s["NS"],
    )  # fmt: skip
    if C0 is None:
        return dq, dk, dv, digate, dfgate, None, None, None
    # likewise the initial state is exp(-m0) times an unstabilised one
    dm0 = dm0 + (dC0 * C0).sum((-2, -1)) + (dn0 * n0).sum(-1)
    return dq, dk, dv, digate, dfgate, dC0, dn0, dm0


class MLSTMTritonFunction(torch.autograd.Function):
    """Triton forward and backward; saves the chunk-start states (``[B,H,T/L,K,V]``), not per-token states."""

    @staticmethod
    def forward(ctx, q, k, v, igate, fgate, C0, n0, m0, eps, chunk_size):
        q, k, v, igate, fgate = (x.contiguous() for x in (q, k, v, igate, fgate))
        init = None if C0 is None else tuple(x.float().contiguous() for x in (C0, n0, m0))
        h, C_T, n_T, m_T, saved = mlstm_triton_fwd(q, k, v, igate, fgate, *(init or (None,) * 3), eps, chunk_size)
        init_cn = (None, None) if init is None else init[:2]
        ctx.save_for_backward(q, k, v, igate, fgate, *init_cn, h, C_T, n_T, *saved)
        ctx.eps, ctx.chunk_size = eps, chunk_size
        ctx.state_dtypes = None if C0 is None else (C0.dtype, n0.dtype, m0.dtype)
        return h, C_T, n_T, m_T

    @staticmethod
    def backward(ctx, dh, dC_T, dn_T, dm_T):
        q, k, v, igate, fgate, C0, n0, h, C_T, n_T, *saved = ctx.saved_tensors
        grads = mlstm_triton_bwd(
            q, k, v, igate, fgate, C0, n0, h, C_T, n_T, saved, dh, dC_T, dn_T, dm_T, ctx.eps, ctx.chunk_size
        )
        dstate = grads[5:]
        if ctx.state_dtypes is not None:
            dstate = tuple(g.to(dt) for g, dt in zip(dstate, ctx.state_dtypes))
        return (*grads[:5], *dstate, None, None)


def mlstm_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    initial_state: MLSTMStateTuple | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """The Triton chunkwise mLSTM: ``q, k [B,T,H,K]``, ``v [B,T,H,V]``, ``igate, fgate [B,T,H]``.

    Returns ``(h [B,T,H,V] in q's dtype, (C, n, m) fp32)`` as ``mlstm_chunk_ref``, with every gradient in
    Triton (the gradient through the max-stabiliser ``m`` included, as the reference's autograd takes it).
    Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (tests).
    """
    _check(q, k, v, igate, fgate, initial_state, chunk_size)
    C0, n0, m0 = (None, None, None) if initial_state is None else initial_state
    h, C, n, m = MLSTMTritonFunction.apply(q, k, v, igate, fgate, C0, n0, m0, eps, chunk_size)
    return h, (C, n, m)
