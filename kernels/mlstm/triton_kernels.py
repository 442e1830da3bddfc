"""Triton kernels of the chunkwise mLSTM (TFLA-style two-level tiling): two forward stages, five backward ones.

Notation (kernels/README.md, kernels/mlstm/README.md): ``q, k [B,T,H,K]``, ``v [B,T,H,V]``, gates
``igate, fgate [B,T,H]``, chunks of ``L`` tokens, ``NC = ceil(T / L)``. Inside a chunk ``b_t`` is the cumsum of
``logsigmoid(f)``, ``u_s = i_s - b_s``, ``g = b_{L-1}`` and ``r_t = max(m_start, max_{s<=t} u_s)`` so that
``m_t = b_t + r_t``. Every exponential below has a non-positive argument (up to round-off): nothing overflows
whatever the gate pre-activations.

Two levels of tiling: the recurrence of ``(C, n, m)`` runs over chunks of ``L`` tokens (level 1), and each
chunk is cut into ``NS = ceil(L / BT)`` sub-blocks of ``BT`` tokens (level 2): the intra-chunk parallel part is
a lower-triangular grid of ``[BT, BT]`` ``tl.dot`` tiles, so a long chunk (few states to store and carry) does
not need ``[L, L]`` tiles. ``K`` and ``V`` are tiled by ``BK`` and ``BV``.

Intermediates (fp32, contiguous): ``states_C [B,H,NC,K,V]``, ``states_n [B,H,NC,K]`` (the state entering each
chunk), ``states_m [B,H,NC+1]`` (the stabiliser at every chunk boundary), and per token ``qn, m [B,H,T]``
(the signed ``q~ . n_t`` and ``m_t``, from which the backward rebuilds the denominator).

Forward:

1. ``mlstm_fwd_state_kernel``: the inter-chunk recurrence of ``(C, n, m)``, one program per ``(K block,
   V block, head)`` looping over chunks (and their sub-blocks); stores the chunk-start states and the final one.
2. ``mlstm_fwd_out_kernel``: one program per ``(V block, sub-block, head)``: the carried state's contribution
   plus the intra-chunk part over the sub-blocks up to its own, normalised.

Backward (the free-``m`` gradients, plus the gradient that flows through the stabiliser ``m`` itself):

3. ``mlstm_bwd_prep_kernel``: per token ``den``, ``d(q~.n)`` and ``dm_t = -eps <dh, h> / den`` (``m_t``
   enters ``h`` only through the ``exp(-m)`` floor and ``eps``).
4. ``mlstm_bwd_state_kernel``: the reverse recurrence of the state gradients ``(dC, dn)`` over chunks; stores
   the gradient at every chunk end and returns ``d initial_state``.
5. ``mlstm_bwd_dqdk_kernel``: ``dq, dk`` of one sub-block, one K block; partial sums ``<dq,q>``, ``<dk,k>``.
6. ``mlstm_bwd_dv_kernel``: ``dv`` of one sub-block, one V block.
7. ``mlstm_bwd_gate_kernel``: a reverse loop over sub-blocks per head: ``digate = <dk,k>``, ``dlogf`` as the
   reverse cumsum of ``<dq,q> - <dk,k>``, plus the max-stabiliser's path (``m_t = max(logf_t + m_{t-1}, i_t)``
   routes ``dm`` to ``i_t`` or on to ``logf_t`` and ``m_{t-1}``), which the reference's autograd also takes.

Offsets: the (batch, head) program id is cast to ``tl.int64``, so every base offset (a scalar per tile: batch,
first token, head) is 64-bit; offsets inside a tile (``BT`` tokens x ``BD`` columns, or a head's ``[K, V]``
block) are int32, which halves the registers of every pointer tile (int64 tiles spilled on sm_90). Tokens past
``T`` in a ragged last chunk (or past ``L`` in a ragged last sub-block) load as ``logf = 0`` (identity step) and
``u = -inf`` (no contribution).
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, HALF: tl.constexpr):
    """``a @ b`` of fp32 blocks with fp32 accumulation: tf32 tensor cores for half inputs, exact fp32 otherwise.

    tf32 is finer than bf16 inputs; rounding the fp32 states to bf16 for the dot would add a second error
    (and Triton 3.9's interpreter multiplies bf16 dots wrongly).
    """
    if HALF:
        return tl.dot(a, b, input_precision="tf32")
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _base(i_b, i_h, t0, T, H, D):
    """Offset of ``x[i_b, t0, i_h, 0]`` in a contiguous ``[B,T,H,D]`` tensor: int64 (``i_b`` is), a scalar."""
    return ((i_b * T + t0) * H + i_h) * D


@triton.jit
def _offs(H, D, o_d, BT: tl.constexpr):
    """int32 offsets of a ``[BT, BD]`` tile (rows = tokens) from its first token: ``BT H D`` stays below 2^31,
    so only the scalar base is 64-bit and the per-element offsets take one register each."""
    return tl.arange(0, BT)[:, None] * (H * D) + o_d[None, :]


@triton.jit
def _tile(x, i_b, i_h, t0, T, H, D, o_d, BT: tl.constexpr):
    """Pointers to the ``[BT, BD]`` tile of tokens ``t0 + arange(BT)``, columns ``o_d`` of ``x [B,T,H,D]``."""
    return x + _base(i_b, i_h, t0, T, H, D) + _offs(H, D, o_d, BT)


@triton.jit
def _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L: tl.constexpr, BT: tl.constexpr):
    """Gates of sub-block ``i_s`` of chunk ``i_c``: ``(o_l, o_t, m_t, f, b, u, b_end)``.

    ``b`` is the cumsum of ``logsigmoid(f)`` from the chunk start (``b_prefix`` is its value before the
    sub-block), ``u = i - b`` and ``b_end`` the prefix for the next sub-block. Padded slots get ``logf = 0``
    and ``u = -inf``.
    """
    o_l = tl.arange(0, BT)
    o_c = i_s * BT + o_l  # position in the chunk
    o_t = i_c * L + o_c
    m_t = (o_c < L) & (o_t < T)
    o_g = (i_b * T + o_t) * H + i_h
    b_f = tl.load(fgate + o_g, mask=m_t, other=0.0).to(tl.float32)
    b_i = tl.load(igate + o_g, mask=m_t, other=0.0).to(tl.float32)
    # logsigmoid(f) = min(f, 0) - log(1 + exp(-|f|)): no overflow for either sign
    b_logf = tl.where(m_t, tl.minimum(b_f, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(b_f))), 0.0)
    b_b = b_prefix + tl.cumsum(b_logf, axis=0)
    b_u = tl.where(m_t, b_i - b_b, float("-inf"))
    b_end = b_prefix + tl.sum(b_logf)
    return o_l, o_t, m_t, b_f, b_b, b_u, b_end


@triton.jit
def _prefix(igate, fgate, i_b, i_h, i_c, n_sub, T, H, L: tl.constexpr, BT: tl.constexpr):
    """``(b before sub-block n_sub, max of u over the sub-blocks before it)``: gate loads only, no tiles."""
    b_prefix = tl.sum(tl.zeros([BT], dtype=tl.float32))
    b_umax = tl.max(tl.full([BT], float("-inf"), dtype=tl.float32))
    for i_s in range(n_sub):
        _o_l, _o_t, _m_t, _b_f, _b_b, b_u, b_prefix = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
        b_umax = tl.maximum(b_umax, tl.max(b_u))
    return b_prefix, b_umax


@triton.jit
def _row_max_u(b_u, b_umax_before, b_ms, o_l, STRICT: tl.constexpr):
    """``max(m_start, max_{s<=t} u_s)`` per token of a sub-block (``s < t`` with ``STRICT``), as a masked row max."""
    if STRICT:
        m_before = o_l[:, None] > o_l[None, :]
    else:
        m_before = o_l[:, None] >= o_l[None, :]
    b_r = tl.max(tl.where(m_before, b_u[None, :], float("-inf")), axis=1)
    return tl.maximum(tl.maximum(b_r, b_umax_before), b_ms)


@triton.jit
def mlstm_fwd_state_kernel(
    k,  # [B,T,H,K] contiguous
    v,  # [B,T,H,V] contiguous
    igate,  # [B,T,H] contiguous
    fgate,  # [B,T,H] contiguous
    C0,  # [B,H,K,V] fp32 contiguous, or a dummy when not HAS_INIT
    n0,  # [B,H,K] fp32 contiguous, or a dummy when not HAS_INIT
    m0,  # [B,H] fp32 (zeros when there is no initial state)
    states_C,  # [B,H,NC,K,V] fp32, out: the state entering each chunk
    states_n,  # [B,H,NC,K] fp32, out
    states_m,  # [B,H,NC+1] fp32, out: m entering each chunk, and the final m
    C_T,  # [B,H,K,V] fp32, out
    n_T,  # [B,H,K] fp32, out
    T,
    H,
    K,
    V,
    NC,
    L: tl.constexpr,
    BT: tl.constexpr,
    NS: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_INIT: tl.constexpr,
    HALF: tl.constexpr,
):
    i_kv, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    NV = tl.cdiv(V, BV)
    i_k, i_v = i_kv // NV, i_kv % NV
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    # n and m do not depend on the V block (m on neither block): one program of each kind stores them
    m_kn = m_k & (o_k * 0 + i_v == 0)
    o_kv = o_k[:, None] * V + o_v[None, :]

    if HAS_INIT:
        b_C = tl.load(C0 + i_bh * K * V + o_kv, mask=m_kv, other=0.0)
        b_n = tl.load(n0 + i_bh * K + o_k, mask=m_k, other=0.0)
    else:
        b_C = tl.zeros([BK, BV], dtype=tl.float32)
        b_n = tl.zeros([BK], dtype=tl.float32)
    b_m = tl.load(m0 + i_bh).to(tl.float32)

    # sequential over chunks; within a chunk one [BK,BT] x [BT,BV] dot per sub-block
    for i_c in range(NC):
        tl.store(states_C + (i_bh * NC + i_c) * K * V + o_kv, b_C, mask=m_kv)
        tl.store(states_n + (i_bh * NC + i_c) * K + o_k, b_n, mask=m_kn)
        tl.store(states_m + i_bh * (NC + 1) + i_c, b_m, mask=i_kv == 0)

        # the chunk's new stabiliser first (gates only): m_new = max(g + m, g + max_s u_s)
        b_g, b_umax = _prefix(igate, fgate, i_b, i_h, i_c, NS, T, H, L, BT)
        b_m_new = tl.maximum(b_g + b_m, b_g + b_umax)
        b_decay = tl.exp(b_g + b_m - b_m_new)
        b_C = b_C * b_decay
        b_n = b_n * b_decay
        b_prefix = tl.sum(tl.zeros([BT], dtype=tl.float32))
        for i_s in range(NS):
            _o_l, _o_t, m_t, _b_f, _b_b, b_u, b_prefix = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
            t0 = i_c * L + i_s * BT  # first token of the sub-block
            b_w = tl.exp(b_u + b_g - b_m_new)  # [BT] weight in the chunk-end state, <= 1; 0 on padding
            p_k = _tile(k, i_b, i_h, t0, T, H, K, o_k, BT)
            b_k = tl.load(p_k, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)  # [BT,BK]
            p_v = _tile(v, i_b, i_h, t0, T, H, V, o_v, BT)
            b_v = tl.load(p_v, mask=m_t[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # [BT,BV]
            b_kw = b_k * b_w[:, None]
            b_C += _dot(tl.trans(b_kw), b_v, HALF)
            b_n += tl.sum(b_kw, axis=0)
        b_m = b_m_new

    tl.store(C_T + i_bh * K * V + o_kv, b_C, mask=m_kv)
    tl.store(n_T + i_bh * K + o_k, b_n, mask=m_kn)
    tl.store(states_m + i_bh * (NC + 1) + NC, b_m, mask=i_kv == 0)


@triton.jit
def mlstm_fwd_out_kernel(
    q,  # [B,T,H,K] contiguous
    k,  # [B,T,H,K] contiguous
    v,  # [B,T,H,V] contiguous
    igate,  # [B,T,H]
    fgate,  # [B,T,H]
    states_C,  # [B,H,NC,K,V] fp32
    states_n,  # [B,H,NC,K] fp32
    states_m,  # [B,H,NC+1] fp32
    h,  # [B,T,H,V], out
    qn,  # [B,H,T] fp32, out: signed q~ . n_t (stabilised)
    m_tok,  # [B,H,T] fp32, out: m_t
    T,
    H,
    K,
    V,
    NC,
    scale,
    eps,
    L: tl.constexpr,
    BT: tl.constexpr,
    NS: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HALF: tl.constexpr,
):
    i_v, i_cs, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    i_c, i_s = i_cs // NS, i_cs % NS
    i_b, i_h = i_bh // H, i_bh % H
    b_prefix, b_umax = _prefix(igate, fgate, i_b, i_h, i_c, i_s, T, H, L, BT)
    o_l, o_t, m_t, _b_f, b_b, b_u, _b_end = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
    t0 = i_c * L + i_s * BT  # first token of the sub-block
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    m_tv = m_t[:, None] & m_v[None, :]
    b_ms = tl.load(states_m + i_bh * (NC + 1) + i_c)
    b_r = _row_max_u(b_u, b_umax, b_ms, o_l, False)  # m_t - b_t

    # the carried state: q~ C_start and q~ . n_start, contracted over K in blocks of BK
    b_num = tl.zeros([BT, BV], dtype=tl.float32)
    b_qn = tl.zeros([BT], dtype=tl.float32)
    p_C = states_C + (i_bh * NC + i_c) * K * V
    p_n = states_n + (i_bh * NC + i_c) * K
    for i_k in range(0, tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_q = tl.load(_tile(q, i_b, i_h, t0, T, H, K, o_k, BT), mask=m_t[:, None] & m_k[None, :],
                      other=0.0).to(tl.float32) * scale  # fmt: skip
        b_C = tl.load(p_C + o_k[:, None] * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_n = tl.load(p_n + o_k, mask=m_k, other=0.0)
        b_num += _dot(b_q, b_C, HALF)
        b_qn += tl.sum(b_q * b_n[None, :], axis=1)
    b_inter = tl.exp(b_ms - b_r)  # weight of the carried state, <= 1
    b_num *= b_inter[:, None]
    b_qn *= b_inter

    # the intra-chunk part: sub-blocks j <= i_s of the chunk, one [BT,BT] score tile each
    b_pj = tl.sum(tl.zeros([BT], dtype=tl.float32))
    for j in range(i_s + 1):
        _o_lj, o_tj, m_tj, _b_fj, _b_bj, b_uj, b_pj = _gates(igate, fgate, i_b, i_h, i_c, j, b_pj, T, H, L, BT)
        t0j = i_c * L + j * BT
        b_s = tl.zeros([BT, BT], dtype=tl.float32)
        for i_k in range(0, tl.cdiv(K, BK)):
            o_k = i_k * BK + tl.arange(0, BK)
            m_k = o_k < K
            b_q = tl.load(_tile(q, i_b, i_h, t0, T, H, K, o_k, BT),
                          mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32) * scale  # fmt: skip
            b_k = tl.load(_tile(k, i_b, i_h, t0j, T, H, K, o_k, BT),
                          mask=m_tj[:, None] & m_k[None, :], other=0.0).to(tl.float32)  # fmt: skip
            b_s += _dot(b_q, tl.trans(b_k), HALF)
        # mask before exp: a key after the query (diagonal tile) may have u_s - r_t > 0
        m_causal = o_t[:, None] >= o_tj[None, :]
        b_s *= tl.exp(tl.where(m_causal, b_uj[None, :] - b_r[:, None], float("-inf")))
        p_v = _tile(v, i_b, i_h, t0j, T, H, V, o_v, BT)
        b_v = tl.load(p_v, mask=m_tj[:, None] & m_v[None, :], other=0.0).to(tl.float32)
        b_num += _dot(b_s, b_v, HALF)
        b_qn += tl.sum(b_s, axis=1)

    b_mt = b_b + b_r
    b_den = tl.maximum(tl.abs(b_qn), tl.exp(-b_mt)) + eps
    b_h = b_num / b_den[:, None]
    tl.store(_tile(h, i_b, i_h, t0, T, H, V, o_v, BT), b_h.to(h.dtype.element_ty), mask=m_tv)
    m_first = m_t & (o_t * 0 + i_v == 0)
    tl.store(qn + i_bh * T + o_t, b_qn, mask=m_first)
    tl.store(m_tok + i_bh * T + o_t, b_mt, mask=m_first)


@triton.jit
def mlstm_bwd_prep_kernel(
    h,  # [B,T,H,V] the forward output
    dh,  # [B,T,H,V] contiguous
    qn,  # [B,H,T] fp32
    m_tok,  # [B,H,T] fp32
    den,  # [B,H,T] fp32, out
    dqn,  # [B,H,T] fp32, out: d(q~ . n_t)
    dm,  # [B,H,T] fp32, out: d m_t with the unstabilised state held fixed
    T,
    H,
    V,
    eps,
    BT: tl.constexpr,
    BV: tl.constexpr,
):
    i_t, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_base = _base(i_b, i_h, i_t * BT, T, H, V)
    b_qn = tl.load(qn + i_bh * T + o_t, mask=m_t, other=0.0)
    b_mt = tl.load(m_tok + i_bh * T + o_t, mask=m_t, other=0.0)
    b_floor = tl.exp(-b_mt)
    b_den = tl.maximum(tl.abs(b_qn), b_floor) + eps
    b_hdh = tl.zeros([BT], dtype=tl.float32)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_tv = m_t[:, None] & (o_v < V)[None, :]
        o_y = _offs(H, V, o_v, BT)
        b_h = tl.load(h + o_base + o_y, mask=m_tv, other=0.0).to(tl.float32)
        b_dh = tl.load(dh + o_base + o_y, mask=m_tv, other=0.0).to(tl.float32)
        b_hdh += tl.sum(b_h * b_dh, axis=1)
    b_dden = -b_hdh / b_den
    # |q~.n| reaches h only where it beats the exp(-m) floor
    b_sign = tl.where(b_qn >= 0, 1.0, -1.0)
    tl.store(den + i_bh * T + o_t, b_den, mask=m_t)
    tl.store(dqn + i_bh * T + o_t, tl.where(tl.abs(b_qn) > b_floor, b_dden * b_sign, 0.0), mask=m_t)
    # in unstabilised terms h = q~ C^ / (max(|q~ n^|, 1) + eps exp(m)): d h / d m = -h eps / den
    tl.store(dm + i_bh * T + o_t, eps * b_dden, mask=m_t)


@triton.jit
def mlstm_bwd_state_kernel(
    q,  # [B,T,H,K] contiguous
    igate,  # [B,T,H]
    fgate,  # [B,T,H]
    dh,  # [B,T,H,V] contiguous
    den,  # [B,H,T] fp32
    dqn,  # [B,H,T] fp32
    m_tok,  # [B,H,T] fp32
    states_m,  # [B,H,NC+1] fp32
    dC_T,  # [B,H,K,V] fp32 contiguous: gradient into the final C
    dn_T,  # [B,H,K] fp32 contiguous
    dstates_C,  # [B,H,NC,K,V] fp32, out: gradient of the stabilised C at each chunk's end
    dstates_n,  # [B,H,NC,K] fp32, out
    dC0,  # [B,H,K,V] fp32, out
    dn0,  # [B,H,K] fp32, out
    T,
    H,
    K,
    V,
    NC,
    scale,
    L: tl.constexpr,
    BT: tl.constexpr,
    NS: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HALF: tl.constexpr,
):
    i_kv, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    NV = tl.cdiv(V, BV)
    i_k, i_v = i_kv // NV, i_kv % NV
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    m_kn = m_k & (o_k * 0 + i_v == 0)
    o_kv = o_k[:, None] * V + o_v[None, :]

    b_dC = tl.load(dC_T + i_bh * K * V + o_kv, mask=m_kv, other=0.0)
    b_dn = tl.load(dn_T + i_bh * K + o_k, mask=m_k, other=0.0)
    # backward over chunks: b_dC is d(stabilised C at the end of chunk i_c) when chunk i_c is visited
    for i_r in range(NC):
        i_c = NC - 1 - i_r
        tl.store(dstates_C + (i_bh * NC + i_c) * K * V + o_kv, b_dC, mask=m_kv)
        tl.store(dstates_n + (i_bh * NC + i_c) * K + o_k, b_dn, mask=m_kn)

        b_ms = tl.load(states_m + i_bh * (NC + 1) + i_c)
        b_me = tl.load(states_m + i_bh * (NC + 1) + i_c + 1)
        b_g, _b_umax = _prefix(igate, fgate, i_b, i_h, i_c, NS, T, H, L, BT)
        b_decay = tl.exp(b_g + b_ms - b_me)
        b_dC = b_dC * b_decay
        b_dn = b_dn * b_decay
        b_prefix = tl.sum(tl.zeros([BT], dtype=tl.float32))
        for i_s in range(NS):
            _o_l, o_t, m_t, _b_f, b_b, _b_u, b_prefix = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
            t0 = i_c * L + i_s * BT  # first token of the sub-block
            b_mt = tl.load(m_tok + i_bh * T + o_t, mask=m_t, other=0.0)
            b_den = tl.load(den + i_bh * T + o_t, mask=m_t, other=1.0)
            b_dqn = tl.load(dqn + i_bh * T + o_t, mask=m_t, other=0.0)
            # exp(m_start - r_t) = exp(m_start + b_t - m_t): the weight of the start state in token t's output
            b_inter = tl.where(m_t, tl.exp(tl.where(m_t, b_ms + b_b - b_mt, 0.0)), 0.0)
            p_q = _tile(q, i_b, i_h, t0, T, H, K, o_k, BT)
            b_q = tl.load(p_q, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32) * scale
            b_qw = b_q * b_inter[:, None]  # [BT,BK]
            p_dh = _tile(dh, i_b, i_h, t0, T, H, V, o_v, BT)
            b_do = tl.load(p_dh, mask=m_t[:, None] & m_v[None, :], other=0.0).to(tl.float32) / b_den[:, None]
            b_dC += _dot(tl.trans(b_qw), b_do, HALF)
            b_dn += tl.sum(b_qw * b_dqn[:, None], axis=0)

    tl.store(dC0 + i_bh * K * V + o_kv, b_dC, mask=m_kv)
    tl.store(dn0 + i_bh * K + o_k, b_dn, mask=m_kn)


@triton.jit
def _intra_weights(b_bt, b_mt, o_tt, m_tt, b_us, o_ts, m_ts):
    """``exp(u_s - r_t)`` for a (query tile t, key tile s) pair, 0 where ``s > t`` or either is padding.

    ``r_t = m_t - b_t`` comes from the saved ``m_t``, so the backward uses exactly the forward's stabiliser.
    """
    m_causal = (o_tt[:, None] >= o_ts[None, :]) & m_tt[:, None] & m_ts[None, :]
    return tl.exp(tl.where(m_causal, b_us[None, :] + b_bt[:, None] - b_mt[:, None], float("-inf")))


@triton.jit
def mlstm_bwd_dqdk_kernel(
    q,  # [B,T,H,K] contiguous
    k,  # [B,T,H,K] contiguous
    v,  # [B,T,H,V] contiguous
    igate,  # [B,T,H]
    fgate,  # [B,T,H]
    dh,  # [B,T,H,V] contiguous
    den,  # [B,H,T] fp32
    dqn,  # [B,H,T] fp32
    m_tok,  # [B,H,T] fp32
    states_C,  # [B,H,NC,K,V] fp32
    states_n,  # [B,H,NC,K] fp32
    states_m,  # [B,H,NC+1] fp32
    dstates_C,  # [B,H,NC,K,V] fp32 gradient at each chunk's end
    dstates_n,  # [B,H,NC,K] fp32
    dq,  # [B,T,H,K], out
    dk,  # [B,T,H,K], out
    dqq,  # [NK,B,H,T] fp32, out: this K block's share of <dq, q>
    dkk,  # [NK,B,H,T] fp32, out: this K block's share of <dk, k>
    B,
    T,
    H,
    K,
    V,
    NC,
    scale,
    L: tl.constexpr,
    BT: tl.constexpr,
    NS: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HALF: tl.constexpr,
):
    """``dq`` of sub-block ``i`` (as queries: key tiles ``j <= i`` and the chunk-start state) and ``dk`` of it
    (as keys: query tiles ``j >= i`` and the chunk-end state gradient), for one K block."""
    i_k, i_cs, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    i_c, i_s = i_cs // NS, i_cs % NS
    i_b, i_h = i_bh // H, i_bh % H
    b_g, _b_umax = _prefix(igate, fgate, i_b, i_h, i_c, NS, T, H, L, BT)
    b_prefix, _b_umax = _prefix(igate, fgate, i_b, i_h, i_c, i_s, T, H, L, BT)
    _o_l, o_t, m_t, _b_f, b_b, b_u, _b_end = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
    t0 = i_c * L + i_s * BT  # first token of the sub-block
    b_ms = tl.load(states_m + i_bh * (NC + 1) + i_c)
    b_me = tl.load(states_m + i_bh * (NC + 1) + i_c + 1)
    b_mt = tl.load(m_tok + i_bh * T + o_t, mask=m_t, other=0.0)
    b_den = tl.load(den + i_bh * T + o_t, mask=m_t, other=1.0)
    b_dqn = tl.load(dqn + i_bh * T + o_t, mask=m_t, other=0.0)
    b_inter = tl.where(m_t, tl.exp(tl.where(m_t, b_ms + b_b - b_mt, 0.0)), 0.0)
    b_wend = tl.exp(b_u + b_g - b_me)  # weight in the chunk-end state; 0 on padding (u = -inf)

    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    m_tk = m_t[:, None] & m_k[None, :]
    o_qk_base, o_qk = _base(i_b, i_h, t0, T, H, K), _offs(H, K, o_k, BT)
    b_q = tl.load(q + o_qk_base + o_qk, mask=m_tk, other=0.0).to(tl.float32)  # [BT,BK] unscaled
    b_k = tl.load(k + o_qk_base + o_qk, mask=m_tk, other=0.0).to(tl.float32)

    # the states: do C_start^T and v dC_end^T, contracted over V; the normaliser is one more value column
    # (n alongside C, a 1 alongside v)
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    p_C = states_C + (i_bh * NC + i_c) * K * V
    p_dC = dstates_C + (i_bh * NC + i_c) * K * V
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        m_kv = m_k[:, None] & m_v[None, :]
        o_y_base, o_y = _base(i_b, i_h, t0, T, H, V), _offs(H, V, o_v, BT)
        b_v = tl.load(v + o_y_base + o_y, mask=m_tv, other=0.0).to(tl.float32)  # [BT,BV]
        b_do = tl.load(dh + o_y_base + o_y, mask=m_tv, other=0.0).to(tl.float32) / b_den[:, None]
        b_C = tl.load(p_C + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)  # [BK,BV]
        b_dC = tl.load(p_dC + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)
        b_dq += _dot(b_do, tl.trans(b_C), HALF)
        b_dk += _dot(b_v, tl.trans(b_dC), HALF)
    b_n = tl.load(states_n + (i_bh * NC + i_c) * K + o_k, mask=m_k, other=0.0)
    b_dn = tl.load(dstates_n + (i_bh * NC + i_c) * K + o_k, mask=m_k, other=0.0)
    b_dq = (b_dq + b_dqn[:, None] * b_n[None, :]) * b_inter[:, None]
    b_dk = (b_dk + b_dn[None, :]) * b_wend[:, None]

    # intra-chunk: every (query tile, key tile) pair with this sub-block on one side
    b_pj = tl.sum(tl.zeros([BT], dtype=tl.float32))
    for j in range(NS):
        _o_lj, o_tj, m_tj, _b_fj, b_bj, b_uj, b_pj_next = _gates(igate, fgate, i_b, i_h, i_c, j, b_pj, T, H, L, BT)
        t0j = i_c * L + j * BT
        if j <= i_s:  # this sub-block as queries, tile j as keys: dq_t += sum_s dP_ts W_ts k_s
            b_dp = tl.zeros([BT, BT], dtype=tl.float32)
            for i_v in range(0, tl.cdiv(V, BV)):
                o_v = i_v * BV + tl.arange(0, BV)
                m_v = o_v < V
                b_do = tl.load(_tile(dh, i_b, i_h, t0, T, H, V, o_v, BT),
                               mask=m_t[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # fmt: skip
                b_vj = tl.load(_tile(v, i_b, i_h, t0j, T, H, V, o_v, BT),
                               mask=m_tj[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # fmt: skip
                b_dp += _dot(b_do, tl.trans(b_vj), HALF)
            b_dp = b_dp / b_den[:, None] + b_dqn[:, None]
            b_w = _intra_weights(b_b, b_mt, o_t, m_t, b_uj, o_tj, m_tj)
            b_kj = tl.load(_tile(k, i_b, i_h, t0j, T, H, K, o_k, BT),
                           mask=m_tj[:, None] & m_k[None, :], other=0.0).to(tl.float32)  # fmt: skip
            b_dq += _dot(b_dp * b_w, b_kj, HALF)
        if j >= i_s:  # tile j as queries, this sub-block as keys: dk_s += sum_t dP_ts W_ts q~_t
            b_mtj = tl.load(m_tok + i_bh * T + o_tj, mask=m_tj, other=0.0)
            b_denj = tl.load(den + i_bh * T + o_tj, mask=m_tj, other=1.0)
            b_dqnj = tl.load(dqn + i_bh * T + o_tj, mask=m_tj, other=0.0)
            b_dpj = tl.zeros([BT, BT], dtype=tl.float32)
            for i_v in range(0, tl.cdiv(V, BV)):
                o_v = i_v * BV + tl.arange(0, BV)
                m_v = o_v < V
                b_doj = tl.load(_tile(dh, i_b, i_h, t0j, T, H, V, o_v, BT),
                                mask=m_tj[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # fmt: skip
                b_v = tl.load(_tile(v, i_b, i_h, t0, T, H, V, o_v, BT),
                              mask=m_t[:, None] & m_v[None, :], other=0.0).to(tl.float32)  # fmt: skip
                b_dpj += _dot(b_doj, tl.trans(b_v), HALF)
            b_dpj = b_dpj / b_denj[:, None] + b_dqnj[:, None]
            b_wj = _intra_weights(b_bj, b_mtj, o_tj, m_tj, b_u, o_t, m_t)
            b_qj = tl.load(_tile(q, i_b, i_h, t0j, T, H, K, o_k, BT),
                           mask=m_tj[:, None] & m_k[None, :], other=0.0).to(tl.float32) * scale  # fmt: skip
            b_dk += _dot(tl.trans(b_dpj * b_wj), b_qj, HALF)
        b_pj = b_pj_next

    b_dq *= scale
    tl.store(dq + o_qk_base + o_qk, b_dq.to(dq.dtype.element_ty), mask=m_tk)
    tl.store(dk + o_qk_base + o_qk, b_dk.to(dk.dtype.element_ty), mask=m_tk)
    o_part = (i_k * B * H + i_bh) * T + o_t
    tl.store(dqq + o_part, tl.sum(b_dq * b_q, axis=1), mask=m_t)
    tl.store(dkk + o_part, tl.sum(b_dk * b_k, axis=1), mask=m_t)


@triton.jit
def mlstm_bwd_dv_kernel(
    q,  # [B,T,H,K] contiguous
    k,  # [B,T,H,K] contiguous
    igate,  # [B,T,H]
    fgate,  # [B,T,H]
    dh,  # [B,T,H,V] contiguous
    den,  # [B,H,T] fp32
    m_tok,  # [B,H,T] fp32
    states_m,  # [B,H,NC+1] fp32
    dstates_C,  # [B,H,NC,K,V] fp32
    dv,  # [B,T,H,V], out
    T,
    H,
    K,
    V,
    NC,
    scale,
    L: tl.constexpr,
    BT: tl.constexpr,
    NS: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HALF: tl.constexpr,
):
    """``dv`` of sub-block ``i`` (as keys: query tiles ``j >= i`` and the chunk-end state gradient), one V block."""
    i_v, i_cs, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    i_c, i_s = i_cs // NS, i_cs % NS
    i_b, i_h = i_bh // H, i_bh % H
    b_g, _b_umax = _prefix(igate, fgate, i_b, i_h, i_c, NS, T, H, L, BT)
    b_prefix, _b_umax = _prefix(igate, fgate, i_b, i_h, i_c, i_s, T, H, L, BT)
    _o_l, o_t, m_t, _b_f, _b_b, b_u, b_pj = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
    t0 = i_c * L + i_s * BT  # first token of the sub-block
    b_me = tl.load(states_m + i_bh * (NC + 1) + i_c + 1)
    b_wend = tl.exp(b_u + b_g - b_me)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V

    # the chunk-end state: k dC_end, contracted over K
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    p_dC = dstates_C + (i_bh * NC + i_c) * K * V
    for i_k in range(0, tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_k = tl.load(_tile(k, i_b, i_h, t0, T, H, K, o_k, BT), mask=m_t[:, None] & m_k[None, :],
                      other=0.0).to(tl.float32)  # fmt: skip
        b_dC = tl.load(p_dC + o_k[:, None] * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_dv += _dot(b_k, b_dC, HALF)
    b_dv *= b_wend[:, None]

    # intra-chunk: query tiles j >= i_s; S_ts = q~_t . k_s contracted over K
    b_pj = b_prefix
    for j in range(i_s, NS):
        _o_lj, o_tj, m_tj, _b_fj, b_bj, _b_uj, b_pj = _gates(igate, fgate, i_b, i_h, i_c, j, b_pj, T, H, L, BT)
        t0j = i_c * L + j * BT
        b_s = tl.zeros([BT, BT], dtype=tl.float32)
        for i_k in range(0, tl.cdiv(K, BK)):
            o_k = i_k * BK + tl.arange(0, BK)
            m_k = o_k < K
            b_qj = tl.load(_tile(q, i_b, i_h, t0j, T, H, K, o_k, BT),
                           mask=m_tj[:, None] & m_k[None, :], other=0.0).to(tl.float32) * scale  # fmt: skip
            b_k = tl.load(_tile(k, i_b, i_h, t0, T, H, K, o_k, BT),
                          mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)  # fmt: skip
            b_s += _dot(b_qj, tl.trans(b_k), HALF)
        b_mtj = tl.load(m_tok + i_bh * T + o_tj, mask=m_tj, other=0.0)
        b_denj = tl.load(den + i_bh * T + o_tj, mask=m_tj, other=1.0)
        b_s *= _intra_weights(b_bj, b_mtj, o_tj, m_tj, b_u, o_t, m_t)
        b_doj = tl.load(_tile(dh, i_b, i_h, t0j, T, H, V, o_v, BT),
                        mask=m_tj[:, None] & m_v[None, :], other=0.0).to(tl.float32) / b_denj[:, None]  # fmt: skip
        b_dv += _dot(tl.trans(b_s), b_doj, HALF)

    p_dv = _tile(dv, i_b, i_h, t0, T, H, V, o_v, BT)
    tl.store(p_dv, b_dv.to(dv.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


@triton.jit
def mlstm_bwd_gate_kernel(
    igate,  # [B,T,H]
    fgate,  # [B,T,H]
    dqq,  # [NK,B,H,T] fp32
    dkk,  # [NK,B,H,T] fp32
    dm,  # [B,H,T] fp32: d m_t from h (stabiliser held fixed elsewhere)
    states_m,  # [B,H,NC+1] fp32
    carry_f,  # [B,H] fp32: <dC_T, C_T> + <dn_T, n_T>, the final state's share of every dlogf
    carry_m,  # [B,H] fp32: dm_T - <dC_T, C_T> - <dn_T, n_T>, the total gradient of the final m
    digate,  # [B,T,H], out
    dfgate,  # [B,T,H], out
    dm0,  # [B,H] fp32, out: the stabiliser path's gradient of the initial m
    B,
    T,
    H,
    NC,
    NK,
    L: tl.constexpr,
    BT: tl.constexpr,
    NS: tl.constexpr,
):
    i_bh = tl.program_id(0).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    b_xf = tl.load(carry_f + i_bh)
    b_xm = tl.load(carry_m + i_bh)
    # backward over chunks and their sub-blocks, carrying the reverse cumsum (b_xf) and d m at the block end (b_xm)
    for i_r in range(NC * NS):
        i_c = (NC * NS - 1 - i_r) // NS
        i_s = (NC * NS - 1 - i_r) % NS
        b_ms = tl.load(states_m + i_bh * (NC + 1) + i_c)
        b_prefix, b_umax = _prefix(igate, fgate, i_b, i_h, i_c, i_s, T, H, L, BT)
        o_l, o_t, m_t, b_f, _b_b, b_u, _b_end = _gates(igate, fgate, i_b, i_h, i_c, i_s, b_prefix, T, H, L, BT)
        i_c * L + i_s * BT  # first token of the sub-block
        b_dqq = tl.zeros([BT], dtype=tl.float32)
        b_dkk = tl.zeros([BT], dtype=tl.float32)
        for i_k in range(NK):
            o_part = (i_k * B * H + i_bh) * T + o_t
            b_dqq += tl.load(dqq + o_part, mask=m_t, other=0.0)
            b_dkk += tl.load(dkk + o_part, mask=m_t, other=0.0)

        # free-m part: k_s enters only as exp(i_s) k_s, and q~_t as exp(B_t) q~_t, B the global cumsum of
        # logf; so di = <dk,k> and dlogf_j = sum_{t>=j} (<dq,q> - <dk,k>)_t + the final state's share
        b_dB = b_dqq - b_dkk
        b_dlogf = tl.cumsum(b_dB, axis=0, reverse=True) + b_xf
        b_xf += tl.sum(b_dB)

        # stabiliser path: m_t = max(logf_t + m_{t-1}, i_t), i.e. token t takes the forget branch iff
        # u_t <= r_{t-1} = max(m_start, max_{s<t} u_s). d m_t gathers dm_{t'} of every later t' reached through
        # forget branches only: t and t' lie in the same run of the count of input branches.
        b_fb = b_u <= _row_max_u(b_u, b_umax, b_ms, o_l, True)  # padding: u = -inf, a forget (identity) branch
        b_cnt = tl.cumsum(tl.where(b_fb, 0, 1), axis=0)
        b_dmt = tl.load(dm + i_bh * T + o_t, mask=m_t, other=0.0)
        m_same = (o_l[None, :] >= o_l[:, None]) & (b_cnt[None, :] == b_cnt[:, None])  # [t, t']
        b_Dm = tl.sum(tl.where(m_same, b_dmt[None, :], 0.0), axis=1)
        b_Dm += tl.where(b_cnt == tl.max(b_cnt), b_xm, 0.0)  # the gradient entering m at the block's end
        b_dlogf += tl.where(b_fb, b_Dm, 0.0)
        b_di = b_dkk + tl.where(b_fb, 0.0, b_Dm)
        b_xm = tl.sum(tl.where((o_l == 0) & b_fb, b_Dm, 0.0))  # on to m before the block via token 0's forget branch

        # d logsigmoid(f) / df = sigmoid(-f)
        b_df = b_dlogf / (1.0 + tl.exp(b_f))
        o_g = (i_b * T + o_t) * H + i_h
        tl.store(digate + o_g, b_di.to(digate.dtype.element_ty), mask=m_t)
        tl.store(dfgate + o_g, b_df.to(dfgate.dtype.element_ty), mask=m_t)
    tl.store(dm0 + i_bh, b_xm)
