"""Triton kernels of the chunked SSD scan (Mamba-2): three forward stages and three backward ones.

Notation (kernels/README.md): ``x [B,T,H,V]``, ``dt [B,T,H]``, ``A [H]``, ``Bm, Cm [B,T,G,K]``, ``D [H]?``,
chunks of ``L`` tokens. Chunks are numbered globally, ``i_cg in [0, NC)``: without ``cu_seqlens`` chunk
``i_c`` of batch row ``i_b`` is ``i_cg = i_b NT + i_c`` (``NT = ceil(T / L)``); with ``cu_seqlens`` (``B = 1``)
every sequence is cut into its own chunks, so no chunk ever holds tokens of two sequences, and the tables
``chunk_start / chunk_end [NC]`` give each chunk's first token and its sequence's end. Intermediates are fp32
and contiguous: ``cum_end [NC,H]`` (each chunk's total log-decay) and ``states [NC,H,K,V]``. The within-chunk
cumsum of ``dt A`` is recomputed in registers by every kernel that needs it (``L`` loads, never stored).

1. ``ssd_chunk_state_kernel`` (``TO_END``): each chunk's own end state ``sum_s B_s^T exp(cum_end - cum_s) dt_s x_s``,
   and ``cum_end`` (the chunk cumsum is fused in here).
2. ``ssd_state_passing_kernel``: a loop over each sequence's chunks that turns chunk states into start states (in
   place) and writes the final state.
3. ``ssd_chunk_scan_kernel``: ``y_l = exp(cum_l) C_l S_start + sum_{s<=l} (C_l.B_s) exp(cum_l - cum_s) dt_s x_s
   + D x_l``.

Backward (stages 1-2 are recomputed first; only the inputs are saved):

4. ``ssd_chunk_state_kernel`` with ``TO_END=False``: what each chunk's outputs send to its start state,
   ``sum_l C_l^T exp(cum_l) dy_l``.
5. ``ssd_state_passing_bwd_kernel``: a reverse loop over chunks giving ``d(state at each chunk's end)``,
   ``d initial_state`` and the gradient of each chunk's total decay.
6. ``ssd_chunk_scan_bwd_kernel``: every input gradient of one chunk of one head (``dB, dC`` per head, summed
   over a group's heads by the caller; ``dA, dD`` per chunk, summed by the caller: no atomics anywhere).

Offsets: every program id and every table entry is cast to ``tl.int64`` before it meets a stride, so every
offset expression is int64 (``t * stride_t`` passes 2^31 at ``T ~ 2^31 / (H V)``, e.g. 64K tokens at
``H V = 32K``: the overflow of mamba_ssm#1015). Tokens past a sequence's end load as ``dt = 0`` (identity steps).
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, HALF: tl.constexpr):
    """``a @ b`` of fp32 blocks, fp32 accumulation: tf32 tensor cores for half inputs, exact fp32 for fp32 ones.

    tf32 (10-bit mantissa) is already finer than the bf16 inputs; casting the operands to bf16 instead would
    round the fp32 states and decays a second time (and Triton 3.9's interpreter multiplies bf16 dots wrong).
    """
    if HALF:
        return tl.dot(a, b, input_precision="tf32")
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _chunk_span(i_cg, chunk_start, chunk_end, T, NT, L: tl.constexpr, IS_VARLEN: tl.constexpr):
    """``(i_b, bos, eos)`` of global chunk ``i_cg`` (int64): batch row, first token, end of its sequence."""
    if IS_VARLEN:
        i_b = i_cg * 0  # packed sequences: B == 1
        bos = tl.load(chunk_start + i_cg).to(tl.int64)
        eos = tl.load(chunk_end + i_cg).to(tl.int64)
    else:
        i_b = i_cg // NT
        bos = (i_cg % NT) * L
        eos = i_cg * 0 + T
    return i_b, bos, eos


@triton.jit
def _chunk_dt_cum(dt, A, i_b, i_h, o_t, m_t, stride_dt_b, stride_dt_t, stride_dt_h):
    """``dt`` (fp32, 0 past the sequence) and ``cum_l = sum_{j<=l} dt_j A`` of one chunk of one head."""
    b_dt = tl.load(dt + i_b * stride_dt_b + o_t * stride_dt_t + i_h * stride_dt_h, mask=m_t, other=0.0)
    b_dt = b_dt.to(tl.float32)
    b_cum = tl.cumsum(b_dt * tl.load(A + i_h).to(tl.float32), axis=0)
    return b_dt, b_cum


@triton.jit
def ssd_chunk_state_kernel(
    x,  # [B,T,H,V] (dy in the backward)
    dt,  # [B,T,H]
    A,  # [H]
    Bm,  # [B,T,G,K] (Cm in the backward)
    states,  # [NC,H,K,V] fp32, out
    cum_end,  # [NC,H] fp32, out when WRITE_CUM
    chunk_start,  # [NC] first token of each chunk (IS_VARLEN only)
    chunk_end,  # [NC] end of each chunk's sequence (IS_VARLEN only)
    T,
    H,
    G,
    K,
    V,
    NT,
    stride_x_b,
    stride_x_t,
    stride_x_h,
    stride_x_v,
    stride_dt_b,
    stride_dt_t,
    stride_dt_h,
    stride_b_b,
    stride_b_t,
    stride_b_g,
    stride_b_k,
    L: tl.constexpr,
    BL: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    TO_END: tl.constexpr,
    WRITE_CUM: tl.constexpr,
    IS_VARLEN: tl.constexpr,
    HALF: tl.constexpr,
):
    """``TO_END``: ``sum_s B_s^T exp(cum_end - cum_s) dt_s x_s``; else (backward, ``x = dy``, ``Bm = Cm``) the
    gradient a chunk's outputs send to its start state, ``sum_l C_l^T exp(cum_l) dy_l``."""
    i_cg, i_h, i_kv = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64), tl.program_id(2).to(tl.int64)
    NV = tl.cdiv(V, BV)
    i_k, i_v = i_kv // NV, i_kv % NV
    i_g = i_h // (H // G)
    i_b, bos, eos = _chunk_span(i_cg, chunk_start, chunk_end, T, NT, L, IS_VARLEN)

    o_l = tl.arange(0, BL)
    o_t = bos + o_l
    m_t = (o_l < L) & (o_t < eos)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V

    b_dt, b_cum = _chunk_dt_cum(dt, A, i_b, i_h, o_t, m_t, stride_dt_b, stride_dt_t, stride_dt_h)
    # positions past the sequence have dt = 0, so the last slot holds the chunk's total log-decay
    b_cum_end = tl.sum(tl.where(o_l == BL - 1, b_cum, 0.0))
    if WRITE_CUM:
        if i_kv == 0:
            tl.store(cum_end + i_cg * H + i_h, b_cum_end)
    # the where keeps exp() of padded positions out of the product whatever the sign of A
    if TO_END:
        b_w = tl.where(m_t, tl.exp(b_cum_end - b_cum) * b_dt, 0.0)  # [BL]
    else:
        b_w = tl.where(m_t, tl.exp(b_cum), 0.0)

    p_x = x + i_b * stride_x_b + o_t[:, None] * stride_x_t + i_h * stride_x_h + o_v[None, :] * stride_x_v
    b_x = tl.load(p_x, mask=m_t[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # [BL,BV]
    p_b = Bm + i_b * stride_b_b + o_t[None, :] * stride_b_t + i_g * stride_b_g + o_k[:, None] * stride_b_k
    b_b = tl.load(p_b, mask=m_k[:, None] & m_t[None, :], other=0.0).to(tl.float32)  # [BK,BL] = B^T
    b_s = _dot(b_b, b_x * b_w[:, None], HALF)  # [BK,BV]

    p_s = states + (i_cg * H + i_h) * K * V + o_k[:, None] * V + o_v[None, :]
    tl.store(p_s, b_s, mask=m_k[:, None] & m_v[None, :])


@triton.jit
def ssd_state_passing_kernel(
    states,  # [NC,H,K,V] fp32, in: chunk states, out: start states
    cum_end,  # [NC,H] fp32
    h0,  # [NS,H,K,V] contiguous, or a dummy when not HAS_H0
    final,  # [NS,H,K,V] fp32, out
    seq_chunks,  # [NS+1] first global chunk of each sequence (IS_VARLEN only)
    H,
    KV,
    NT,
    BS: tl.constexpr,
    HAS_H0: tl.constexpr,
    IS_VARLEN: tl.constexpr,
):
    """One sequence (batch row, or packed sequence) of one head, ``BS`` state entries: a loop over its chunks."""
    i_nh, i_s = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    i_n, i_h = i_nh // H, i_nh % H
    if IS_VARLEN:
        c0 = tl.load(seq_chunks + i_n).to(tl.int64)
        c1 = tl.load(seq_chunks + i_n + 1).to(tl.int64)
    else:
        c0 = i_n * NT
        c1 = c0 + NT
    o_s = i_s * BS + tl.arange(0, BS)
    m_s = o_s < KV
    if HAS_H0:
        b_h = tl.load(h0 + i_nh * KV + o_s, mask=m_s, other=0.0).to(tl.float32)
    else:
        b_h = tl.zeros([BS], dtype=tl.float32)
    # sequential over chunks: each step is O(K V) per head, the whole loop O(T/L K V)
    for i_cg in range(c0, c1):
        p_s = states + (i_cg * H + i_h) * KV + o_s
        b_s = tl.load(p_s, mask=m_s, other=0.0)
        tl.store(p_s, b_h, mask=m_s)
        b_h = b_h * tl.exp(tl.load(cum_end + i_cg * H + i_h)) + b_s
    tl.store(final + i_nh * KV + o_s, b_h, mask=m_s)


@triton.jit
def ssd_chunk_scan_kernel(
    x,  # [B,T,H,V]
    dt,  # [B,T,H]
    A,  # [H]
    Bm,  # [B,T,G,K]
    Cm,  # [B,T,G,K]
    states,  # [NC,H,K,V] fp32 start states
    D,  # [H], or a dummy when not HAS_D
    y,  # [B,T,H,V] contiguous, out
    chunk_start,
    chunk_end,
    T,
    H,
    G,
    K,
    V,
    NT,
    stride_x_b,
    stride_x_t,
    stride_x_h,
    stride_x_v,
    stride_dt_b,
    stride_dt_t,
    stride_dt_h,
    stride_b_b,
    stride_b_t,
    stride_b_g,
    stride_b_k,
    stride_c_b,
    stride_c_t,
    stride_c_g,
    stride_c_k,
    L: tl.constexpr,
    BL: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_D: tl.constexpr,
    IS_VARLEN: tl.constexpr,
    HALF: tl.constexpr,
):
    """The outputs of one chunk of one head for ``BV`` value channels (``C B^T`` is contracted in ``BK`` blocks)."""
    i_cg, i_h, i_v = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64), tl.program_id(2).to(tl.int64)
    i_g = i_h // (H // G)
    i_b, bos, eos = _chunk_span(i_cg, chunk_start, chunk_end, T, NT, L, IS_VARLEN)

    o_l = tl.arange(0, BL)
    o_t = bos + o_l
    m_t = (o_l < L) & (o_t < eos)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V

    # C S_start and C B^T, both contracted over K in blocks of BK
    b_off = tl.zeros([BL, BV], dtype=tl.float32)
    b_scores = tl.zeros([BL, BL], dtype=tl.float32)
    p_s0 = states + (i_cg * H + i_h) * K * V
    for i_k in range(0, tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        p_c = Cm + i_b * stride_c_b + o_t[:, None] * stride_c_t + i_g * stride_c_g + o_k[None, :] * stride_c_k
        b_c = tl.load(p_c, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)  # [BL,BK]
        p_b = Bm + i_b * stride_b_b + o_t[None, :] * stride_b_t + i_g * stride_b_g + o_k[:, None] * stride_b_k
        b_b = tl.load(p_b, mask=m_k[:, None] & m_t[None, :], other=0.0).to(tl.float32)  # [BK,BL] = B^T
        b_s = tl.load(p_s0 + o_k[:, None] * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_off += _dot(b_c, b_s, HALF)
        b_scores += _dot(b_c, b_b, HALF)

    b_dt, b_cum = _chunk_dt_cum(dt, A, i_b, i_h, o_t, m_t, stride_dt_b, stride_dt_t, stride_dt_h)
    b_y = b_off * tl.exp(b_cum)[:, None]
    # mask before exp: above the diagonal cum_l - cum_s > 0 and could overflow to inf
    m_causal = (o_l[:, None] >= o_l[None, :]) & m_t[None, :]
    b_decay = tl.exp(tl.where(m_causal, b_cum[:, None] - b_cum[None, :], float("-inf")))

    p_x = x + i_b * stride_x_b + o_t[:, None] * stride_x_t + i_h * stride_x_h + o_v[None, :] * stride_x_v
    b_x = tl.load(p_x, mask=m_t[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # [BL,BV]
    b_y += _dot(b_scores * b_decay, b_x * b_dt[:, None], HALF)
    if HAS_D:
        b_y += tl.load(D + i_h).to(tl.float32) * b_x

    p_y = y + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :]
    tl.store(p_y, b_y.to(y.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


@triton.jit
def ssd_state_passing_bwd_kernel(
    dstates,  # [NC,H,K,V] fp32, in: sum_l C_l^T exp(cum_l) dy_l per chunk, out: d(state at each chunk's end)
    states,  # [NC,H,K,V] fp32 start states
    cum_end,  # [NC,H] fp32
    dfinal,  # [NS,H,K,V] contiguous
    dh0,  # [NS,H,K,V] fp32, out
    ddecay,  # [NBS,NC,H] fp32, out: this program's share of d cum_end per chunk
    seq_chunks,  # [NS+1] (IS_VARLEN only)
    H,
    KV,
    NT,
    NC,
    BS: tl.constexpr,
    IS_VARLEN: tl.constexpr,
):
    """The state passing run backwards over one sequence's chunks, for one head and ``BS`` state entries."""
    i_nh, i_s = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    i_n, i_h = i_nh // H, i_nh % H
    if IS_VARLEN:
        c0 = tl.load(seq_chunks + i_n).to(tl.int64)
        c1 = tl.load(seq_chunks + i_n + 1).to(tl.int64)
    else:
        c0 = i_n * NT
        c1 = c0 + NT
    o_s = i_s * BS + tl.arange(0, BS)
    m_s = o_s < KV
    b_d = tl.load(dfinal + i_nh * KV + o_s, mask=m_s, other=0.0).to(tl.float32)
    # b_d is d(state at the end of chunk i_cg) when chunk i_cg is visited
    for i_r in range(c0, c1):
        i_cg = c1 - 1 - (i_r - c0)
        o_state = (i_cg * H + i_h) * KV + o_s
        b_local = tl.load(dstates + o_state, mask=m_s, other=0.0)
        tl.store(dstates + o_state, b_d, mask=m_s)
        b_decay = tl.exp(tl.load(cum_end + i_cg * H + i_h))
        b_s = tl.load(states + o_state, mask=m_s, other=0.0)
        # S_end = exp(cum_end) S_start + ...: the decay's gradient, this block's share (summed by the caller)
        tl.store(ddecay + (i_s * NC + i_cg) * H + i_h, b_decay * tl.sum(b_s * b_d))
        b_d = b_local + b_decay * b_d
    tl.store(dh0 + i_nh * KV + o_s, b_d, mask=m_s)


@triton.jit
def ssd_chunk_scan_bwd_kernel(
    x,  # [B,T,H,V]
    dt,  # [B,T,H]
    A,  # [H]
    Bm,  # [B,T,G,K]
    Cm,  # [B,T,G,K]
    states,  # [NC,H,K,V] fp32 start states
    dstates,  # [NC,H,K,V] fp32 d(state at each chunk's end)
    ddecay,  # [NC,H] fp32 d cum_end from the state passing
    D,  # [H], or a dummy when not HAS_D
    dy,  # [B,T,H,V] contiguous
    dx,  # [B,T,H,V] contiguous, out
    ddt,  # [B,T,H] fp32, out
    db,  # [B,T,H,K] fp32 per head, out (the caller sums a group's heads)
    dc,  # [B,T,H,K] fp32 per head, out
    dA,  # [NC,H] fp32, out: per-chunk shares
    dD,  # [NC,H] fp32, out: per-chunk shares
    chunk_start,
    chunk_end,
    T,
    H,
    G,
    K,
    V,
    NT,
    stride_x_b,
    stride_x_t,
    stride_x_h,
    stride_x_v,
    stride_dt_b,
    stride_dt_t,
    stride_dt_h,
    stride_b_b,
    stride_b_t,
    stride_b_g,
    stride_b_k,
    stride_c_b,
    stride_c_t,
    stride_c_g,
    stride_c_k,
    L: tl.constexpr,
    BL: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_D: tl.constexpr,
    IS_VARLEN: tl.constexpr,
    HALF: tl.constexpr,
):
    """All gradients of one chunk of one head; ``BK >= K`` (the whole state size in one block), V in ``BV`` blocks."""
    i_cg, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    i_g = i_h // (H // G)
    i_b, bos, eos = _chunk_span(i_cg, chunk_start, chunk_end, T, NT, L, IS_VARLEN)

    o_l = tl.arange(0, BL)
    o_t = bos + o_l
    m_t = (o_l < L) & (o_t < eos)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    m_tk = m_t[:, None] & m_k[None, :]

    b_dt, b_cum = _chunk_dt_cum(dt, A, i_b, i_h, o_t, m_t, stride_dt_b, stride_dt_t, stride_dt_h)
    b_cum_end = tl.sum(tl.where(o_l == BL - 1, b_cum, 0.0))
    b_to_end = tl.where(m_t, tl.exp(b_cum_end - b_cum), 0.0)
    b_w = b_to_end * b_dt  # [BL] weights of the chunk's end state
    p_b = Bm + i_b * stride_b_b + o_t[:, None] * stride_b_t + i_g * stride_b_g + o_k[None, :] * stride_b_k
    b_b = tl.load(p_b, mask=m_tk, other=0.0).to(tl.float32)  # [BL,BK]
    p_c = Cm + i_b * stride_c_b + o_t[:, None] * stride_c_t + i_g * stride_c_g + o_k[None, :] * stride_c_k
    b_c = tl.load(p_c, mask=m_tk, other=0.0).to(tl.float32)  # [BL,BK]

    m_causal = (o_l[:, None] >= o_l[None, :]) & m_t[None, :]
    b_decay = tl.exp(tl.where(m_causal, b_cum[:, None] - b_cum[None, :], float("-inf")))
    b_m = _dot(b_c, tl.trans(b_b), HALF) * b_decay  # [BL,BL] the intra-chunk "attention" matrix

    b_dm = tl.zeros([BL, BL], dtype=tl.float32)
    b_dc = tl.zeros([BL, BK], dtype=tl.float32)
    b_db = tl.zeros([BL, BK], dtype=tl.float32)
    b_dw = tl.zeros([BL], dtype=tl.float32)
    b_ddt = tl.zeros([BL], dtype=tl.float32)
    b_dd = tl.zeros([BL], dtype=tl.float32)
    if HAS_D:
        b_D = tl.load(D + i_h).to(tl.float32)
    p_s0 = states + (i_cg * H + i_h) * K * V
    p_ds0 = dstates + (i_cg * H + i_h) * K * V
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        m_kv = m_k[:, None] & m_v[None, :]
        p_x = x + i_b * stride_x_b + o_t[:, None] * stride_x_t + i_h * stride_x_h + o_v[None, :] * stride_x_v
        b_x = tl.load(p_x, mask=m_tv, other=0.0).to(tl.float32)  # [BL,BV]
        o_y = ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :]
        b_dy = tl.load(dy + o_y, mask=m_tv, other=0.0).to(tl.float32)  # [BL,BV]
        b_s = tl.load(p_s0 + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)  # [BK,BV]
        b_ds = tl.load(p_ds0 + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)  # [BK,BV]

        b_dm += _dot(b_dy, tl.trans(b_x * b_dt[:, None]), HALF)
        b_dc += _dot(b_dy, tl.trans(b_s), HALF)
        b_db += _dot(b_x, tl.trans(b_ds), HALF)
        b_bds = _dot(b_b, b_ds, HALF)  # [BL,BV] B_s dS_end
        b_dw += tl.sum(b_bds * b_x, axis=1)
        b_dxdt = _dot(tl.trans(b_m), b_dy, HALF)  # [BL,BV] d(dt_s x_s) from the intra-chunk term
        b_ddt += tl.sum(b_dxdt * b_x, axis=1)
        b_dx = b_w[:, None] * b_bds + b_dt[:, None] * b_dxdt
        if HAS_D:
            b_dx += b_D * b_dy
            b_dd += tl.sum(b_x * b_dy, axis=1)
        tl.store(dx + o_y, b_dx.to(dx.dtype.element_ty), mask=m_tv)

    # carried state: y_l += exp(cum_l) C_l S_start
    b_dc = b_dc * tl.exp(b_cum)[:, None]
    b_dcum = tl.sum(b_dc * b_c, axis=1)
    # end state: S_end += sum_s exp(cum_end - cum_s) dt_s B_s^T x_s
    b_db = b_db * b_w[:, None]
    b_ddt += b_to_end * b_dw
    b_wdw = b_w * b_dw
    b_dcum -= b_wdw
    b_dcum_end = tl.sum(b_wdw) + tl.load(ddecay + i_cg * H + i_h)
    # intra-chunk: M_ls = (C_l . B_s) exp(cum_l - cum_s)
    b_dm = tl.where(m_causal, b_dm, 0.0)
    b_q = b_dm * b_m
    b_dcum += tl.sum(b_q, axis=1) - tl.sum(b_q, axis=0)
    b_dscores = b_dm * b_decay
    b_dc += _dot(b_dscores, b_b, HALF)
    b_db += _dot(tl.trans(b_dscores), b_c, HALF)
    # cum_l = sum_{j<=l} dt_j A, and cum_end is cum at the last slot (dt = 0 past the sequence's end)
    b_dcum += tl.where(o_l == BL - 1, b_dcum_end, 0.0)
    b_da = tl.cumsum(b_dcum, axis=0, reverse=True)
    b_ddt += tl.load(A + i_h).to(tl.float32) * b_da

    tl.store(ddt + (i_b * T + o_t) * H + i_h, b_ddt, mask=m_t)
    o_bc = ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :]
    tl.store(db + o_bc, b_db, mask=m_tk)
    tl.store(dc + o_bc, b_dc, mask=m_tk)
    tl.store(dA + i_cg * H + i_h, tl.sum(tl.where(m_t, b_dt * b_da, 0.0)))
    tl.store(dD + i_cg * H + i_h, tl.sum(b_dd))
