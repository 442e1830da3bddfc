"""Triton kernels of the sLSTM recurrence: the recurrent weights stay on chip for the whole sequence.

Notation (kernels/README.md, kernels/slstm/README.md): ``gates_x [B,T,4,H,D]`` (gate order ``i, f, z, o``),
``R [H,D,4,D]``, ``bias [4,H,D]``, state ``(h, c, n, m)`` each ``[B,H,D]`` fp32. ``BD`` is ``D`` padded to a
power of two >= 16 (``tl.dot`` needs every dim >= 16), ``BB`` the batch rows of one program (>= 16 for the
same reason). Padded rows and channels load zeros: their ``R`` rows are zero, so they never reach a real
channel, and a zero state takes the empty-state branch, so they stay finite (``n = 1, h = 0``).

The recurrence is nonlinear in ``h``, so there is no chunked / parallel form: the only parallelism is over
heads and batch rows. One program owns one head and ``BB`` batch rows and walks all ``T`` steps; it loads
its head's ``R`` (``4 D x D``) once, before the time loop, so every step's ``h_{t-1} @ R`` is four on-chip
``tl.dot`` and the only memory traffic per step is the step's inputs and outputs (FlashRNN's idea; the code
here is our own).

1. ``slstm_fwd_kernel``: the forward; with ``SAVE`` it also writes every step's state ``(h, c, n, m)`` in fp32
   to ``states [B,T+1,4,H,D]`` (slot 0 = the initial state), which is all the backward needs.
2. ``slstm_bwd_kernel``: a reverse-time loop with the same ``R`` on chip, used both ways: ``h_{t-1} @ R``
   recomputes the pre-activations from the saved ``h_{t-1}`` and ``dRaw @ R^T`` carries the gradient to
   ``h_{t-1}``. ``dR`` and ``dbias`` are summed in fp32 registers per program and written per batch block;
   the caller sums the blocks (deterministic, no atomics).

Offsets: batch-row offsets are int64 before they meet a stride, and the time loop advances 64-bit pointers
instead of computing ``t * stride`` (``T 4 H D`` passes 2^31 at long sequences).
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, HALF: tl.constexpr):
    """``a @ b`` of fp32 blocks with fp32 accumulation: tf32 tensor cores for half inputs, exact for fp32 ones.

    tf32 is finer than bf16 inputs; casting the fp32 state ``h`` to bf16 would round it a second time (and
    Triton 3.9's interpreter computes bf16 dots wrongly).
    """
    if HALF:
        return tl.dot(a, b, input_precision="tf32")
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _log1p_small(e):
    """``log(1 + e)`` for ``0 <= e <= 1``, accurate when ``e`` is tiny (Goldberg's correction; no tl.log1p)."""
    w = 1.0 + e
    # the unselected branch must not divide by zero (0/0 NaNs are harmless on GPU but noisy in the interpreter)
    exact = w == 1.0
    return tl.where(exact, e, tl.log(w) * (e / tl.where(exact, 1.0, w - 1.0)))


@triton.jit
def _logsigmoid(x):
    """``log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|))``, finite for any finite ``x``."""
    return tl.minimum(x, 0.0) - _log1p_small(tl.exp(-tl.abs(x)))


@triton.jit
def _tanh(x):
    """``tanh(x) = sign(x) (1 - e) / (1 + e)``, ``e = exp(-2|x|)``; ``1 - e = -expm1(-2|x|)`` is computed with
    Goldberg's correction so small ``x`` keep their relative precision (Triton 3.9 has no tl.tanh)."""
    y = -2.0 * tl.abs(x)
    e = tl.exp(y)
    # the correction is needed only near e = 1; far from it (and where e underflows to 0, log(e) = -inf)
    # 1 - e is already exact
    near = (e > 0.5) & (e != 1.0)
    e_safe = tl.where(near, e, 0.5)  # keeps the unselected branch finite
    one_minus_e = tl.where(near, (1.0 - e) * (y / tl.log(e_safe)), 1.0 - e)
    one_minus_e = tl.where(e == 1.0, -y, one_minus_e)
    t = one_minus_e / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _load_weights(R, bias, i_h, o_d, m_d, D, H):
    """The head's ``R[h][:, g, :]`` as four fp32 ``[BD_in, BD_out]`` blocks and ``bias[g, h]`` as four ``[BD]``."""
    # R [H,D,4,D] contiguous: R[h, d_in, g, d_out] at ((h D + d_in) 4 + g) D + d_out
    p_r = R + i_h * D * 4 * D + o_d[:, None] * (4 * D) + o_d[None, :]
    m_r = m_d[:, None] & m_d[None, :]
    b_ri = tl.load(p_r, mask=m_r, other=0.0).to(tl.float32)
    b_rf = tl.load(p_r + D, mask=m_r, other=0.0).to(tl.float32)
    b_rz = tl.load(p_r + 2 * D, mask=m_r, other=0.0).to(tl.float32)
    b_ro = tl.load(p_r + 3 * D, mask=m_r, other=0.0).to(tl.float32)
    p_bias = bias + i_h * D + o_d
    b_bi = tl.load(p_bias, mask=m_d, other=0.0).to(tl.float32)
    b_bf = tl.load(p_bias + H * D, mask=m_d, other=0.0).to(tl.float32)
    b_bz = tl.load(p_bias + 2 * H * D, mask=m_d, other=0.0).to(tl.float32)
    b_bo = tl.load(p_bias + 3 * H * D, mask=m_d, other=0.0).to(tl.float32)
    return b_ri, b_rf, b_rz, b_ro, b_bi, b_bf, b_bz, b_bo


@triton.jit
def _preactivations(p_x, m_bd, b_h, b_ri, b_rf, b_rz, b_ro, b_bi, b_bf, b_bz, b_bo, HD, HALF: tl.constexpr):
    """``raw_g = gates_x[g] + bias[g] + h_{t-1} @ R[:, g]`` for the four gates; ``p_x`` points at gate i."""
    raw_i = tl.load(p_x, mask=m_bd, other=0.0).to(tl.float32) + b_bi[None, :] + _dot(b_h, b_ri, HALF)
    raw_f = tl.load(p_x + HD, mask=m_bd, other=0.0).to(tl.float32) + b_bf[None, :] + _dot(b_h, b_rf, HALF)
    raw_z = tl.load(p_x + 2 * HD, mask=m_bd, other=0.0).to(tl.float32) + b_bz[None, :] + _dot(b_h, b_rz, HALF)
    raw_o = tl.load(p_x + 3 * HD, mask=m_bd, other=0.0).to(tl.float32) + b_bo[None, :] + _dot(b_h, b_ro, HALF)
    return raw_i, raw_f, raw_z, raw_o


@triton.jit
def _stabilised_gates(raw_i, raw_f, n_prev, m_prev):
    """``(L, m_t, i, f)``: ``L = m + log sigmoid(raw_f)``; ``m_t = raw_i`` on an empty state, else ``max(raw_i, L)``."""
    b_L = m_prev + _logsigmoid(raw_f)
    b_m = tl.where(n_prev == 0.0, raw_i, tl.maximum(raw_i, b_L))
    return b_L, b_m, tl.exp(raw_i - b_m), tl.exp(b_L - b_m)


@triton.jit
def slstm_fwd_kernel(
    gx,  # [B,T,4,H,D] contiguous
    R,  # [H,D,4,D] contiguous
    bias,  # [4,H,D] contiguous
    h0,  # [B,H,D] contiguous, any float dtype (HAS_INIT only; c0, n0, m0 likewise)
    c0,
    n0,
    m0,
    y,  # [B,T,H,D] out, gx's dtype
    hT,  # [B,H,D] fp32 out (cT, nT, mT likewise)
    cT,
    nT,
    mT,
    states,  # [B,T+1,4,H,D] fp32 out (SAVE only): (h, c, n, m) after each step, slot 0 = initial
    B,
    T,
    H,
    D,
    BB: tl.constexpr,
    BD: tl.constexpr,
    HAS_INIT: tl.constexpr,
    SAVE: tl.constexpr,
    HALF: tl.constexpr,
):
    i_h, i_bb = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    o_b = i_bb * BB + tl.arange(0, BB).to(tl.int64)
    o_d = tl.arange(0, BD)
    m_b, m_d = o_b < B, o_d < D
    m_bd = m_b[:, None] & m_d[None, :]
    HD = H * D

    # on chip for all T steps: the point of this kernel
    b_ri, b_rf, b_rz, b_ro, b_bi, b_bf, b_bz, b_bo = _load_weights(R, bias, i_h, o_d, m_d, D, H)

    o_s = o_b[:, None] * HD + i_h * D + o_d[None, :]
    if HAS_INIT:
        b_h = tl.load(h0 + o_s, mask=m_bd, other=0.0).to(tl.float32)
        b_c = tl.load(c0 + o_s, mask=m_bd, other=0.0).to(tl.float32)
        b_n = tl.load(n0 + o_s, mask=m_bd, other=0.0).to(tl.float32)
        b_m = tl.load(m0 + o_s, mask=m_bd, other=0.0).to(tl.float32)
    else:
        b_h = tl.zeros([BB, BD], dtype=tl.float32)
        b_c = tl.zeros([BB, BD], dtype=tl.float32)
        b_n = tl.zeros([BB, BD], dtype=tl.float32)
        b_m = tl.zeros([BB, BD], dtype=tl.float32)

    p_x = gx + o_b[:, None] * T * 4 * HD + i_h * D + o_d[None, :]
    p_y = y + o_b[:, None] * T * HD + i_h * D + o_d[None, :]
    p_st = states + o_b[:, None] * (T + 1) * 4 * HD + i_h * D + o_d[None, :]
    if SAVE:
        tl.store(p_st, b_h, mask=m_bd)
        tl.store(p_st + HD, b_c, mask=m_bd)
        tl.store(p_st + 2 * HD, b_n, mask=m_bd)
        tl.store(p_st + 3 * HD, b_m, mask=m_bd)
    for _ in range(T):
        raw_i, raw_f, raw_z, raw_o = _preactivations(
            p_x, m_bd, b_h, b_ri, b_rf, b_rz, b_ro, b_bi, b_bf, b_bz, b_bo, HD, HALF
        )
        _, b_m_new, b_i, b_f = _stabilised_gates(raw_i, raw_f, b_n, b_m)
        b_c = b_f * b_c + b_i * _tanh(raw_z)
        b_n = b_f * b_n + b_i
        b_m = b_m_new
        b_h = tl.sigmoid(raw_o) * b_c / b_n
        tl.store(p_y, b_h.to(y.dtype.element_ty), mask=m_bd)
        p_x += 4 * HD
        p_y += HD
        if SAVE:
            p_st += 4 * HD
            tl.store(p_st, b_h, mask=m_bd)
            tl.store(p_st + HD, b_c, mask=m_bd)
            tl.store(p_st + 2 * HD, b_n, mask=m_bd)
            tl.store(p_st + 3 * HD, b_m, mask=m_bd)
    tl.store(hT + o_s, b_h, mask=m_bd)
    tl.store(cT + o_s, b_c, mask=m_bd)
    tl.store(nT + o_s, b_n, mask=m_bd)
    tl.store(mT + o_s, b_m, mask=m_bd)


@triton.jit
def slstm_bwd_kernel(
    gx,  # [B,T,4,H,D] contiguous
    R,  # [H,D,4,D] contiguous
    bias,  # [4,H,D] contiguous
    states,  # [B,T+1,4,H,D] fp32, from the forward (SAVE)
    dy,  # [B,T,H,D] contiguous, any float dtype
    dhT,  # [B,H,D] contiguous: gradients of the final state (dcT, dnT, dmT likewise)
    dcT,
    dnT,
    dmT,
    dgx,  # [B,T,4,H,D] out, gx's dtype
    dR,  # [NB,H,D,4,D] fp32 out: this batch block's share of dR
    dbias,  # [NB,4,H,D] fp32 out: this batch block's share of dbias
    dh0,  # [B,H,D] fp32 out (dc0, dn0, dm0 likewise)
    dc0,
    dn0,
    dm0,
    B,
    T,
    H,
    D,
    BB: tl.constexpr,
    BD: tl.constexpr,
    HALF: tl.constexpr,
):
    i_h, i_bb = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    o_b = i_bb * BB + tl.arange(0, BB).to(tl.int64)
    o_d = tl.arange(0, BD)
    m_b, m_d = o_b < B, o_d < D
    m_bd = m_b[:, None] & m_d[None, :]
    HD = H * D

    b_ri, b_rf, b_rz, b_ro, b_bi, b_bf, b_bz, b_bo = _load_weights(R, bias, i_h, o_d, m_d, D, H)

    o_s = o_b[:, None] * HD + i_h * D + o_d[None, :]
    # carried gradients: into h_t (from step t+1 through R), c_t, n_t, m_t
    b_dh = tl.load(dhT + o_s, mask=m_bd, other=0.0).to(tl.float32)
    b_dc = tl.load(dcT + o_s, mask=m_bd, other=0.0).to(tl.float32)
    b_dn = tl.load(dnT + o_s, mask=m_bd, other=0.0).to(tl.float32)
    b_dm = tl.load(dmT + o_s, mask=m_bd, other=0.0).to(tl.float32)
    # per-program fp32 sums over this block's rows and all steps
    b_dri = tl.zeros([BD, BD], dtype=tl.float32)
    b_drf = tl.zeros([BD, BD], dtype=tl.float32)
    b_drz = tl.zeros([BD, BD], dtype=tl.float32)
    b_dro = tl.zeros([BD, BD], dtype=tl.float32)
    b_dbi = tl.zeros([BD], dtype=tl.float32)
    b_dbf = tl.zeros([BD], dtype=tl.float32)
    b_dbz = tl.zeros([BD], dtype=tl.float32)
    b_dbo = tl.zeros([BD], dtype=tl.float32)

    # pointers at the last step (t = T - 1); states slot t holds the state before step t
    # (row T + T - 1) is int64 because o_b is: (T - 1) * 4 H D alone could overflow int32
    p_x = gx + (o_b[:, None] * T + T - 1) * 4 * HD + i_h * D + o_d[None, :]
    p_dx = dgx + (o_b[:, None] * T + T - 1) * 4 * HD + i_h * D + o_d[None, :]
    p_dy = dy + (o_b[:, None] * T + T - 1) * HD + i_h * D + o_d[None, :]
    p_st = states + (o_b[:, None] * (T + 1) + T - 1) * 4 * HD + i_h * D + o_d[None, :]
    for _ in range(T):
        b_h_prev = tl.load(p_st, mask=m_bd, other=0.0)
        b_c_prev = tl.load(p_st + HD, mask=m_bd, other=0.0)
        b_n_prev = tl.load(p_st + 2 * HD, mask=m_bd, other=0.0)
        b_m_prev = tl.load(p_st + 3 * HD, mask=m_bd, other=0.0)
        # of the state after the step only h_t and n_t are needed: d raw_o = dh h (1 - o), dn = -dh h / n
        b_h = tl.load(p_st + 4 * HD, mask=m_bd, other=0.0)
        # padded entries get n = 1, so the divisions below stay finite
        b_n = tl.load(p_st + 6 * HD, mask=m_bd, other=1.0)
        # recompute the pre-activations from the saved h_{t-1}: four on-chip dots instead of saving 4 BTHD
        raw_i, raw_f, raw_z, raw_o = _preactivations(
            p_x, m_bd, b_h_prev, b_ri, b_rf, b_rz, b_ro, b_bi, b_bf, b_bz, b_bo, HD, HALF
        )
        b_L, _, b_i, b_f = _stabilised_gates(raw_i, raw_f, b_n_prev, b_m_prev)
        b_tz = _tanh(raw_z)
        b_o = tl.sigmoid(raw_o)

        b_dh += tl.load(p_dy, mask=m_bd, other=0.0).to(tl.float32)
        # h = o c / n
        d_raw_o = b_dh * b_h * (1.0 - b_o)
        b_dc += b_dh * b_o / b_n
        b_dn -= b_dh * b_h / b_n
        d_raw_z = b_dc * b_i * (1.0 - b_tz * b_tz)
        # gradients of the exp arguments: c = f c' + i tz, n = f n' + i
        d_ai = (b_dc * b_tz + b_dn) * b_i
        d_af = (b_dc * b_c_prev + b_dn * b_n_prev) * b_f
        # m_t appears in both exp arguments (minus) and gets the carried dm; it flows back through the max:
        # all to raw_i on an empty state, else to the larger argument, half each on a tie (torch.maximum)
        d_mt = b_dm - d_ai - d_af
        b_wi = tl.where(raw_i > b_L, 1.0, tl.where(raw_i == b_L, 0.5, 0.0))
        b_wi = tl.where(b_n_prev == 0.0, 1.0, b_wi)
        d_raw_i = d_ai + b_wi * d_mt
        d_L = d_af + (1.0 - b_wi) * d_mt
        # L = m_{t-1} + log sigmoid(raw_f)
        d_raw_f = d_L * tl.sigmoid(-raw_f)
        b_dm = d_L
        b_dc = b_dc * b_f
        b_dn = b_dn * b_f
        # padded rows / channels must not feed dR, dbias or dh
        d_raw_i = tl.where(m_bd, d_raw_i, 0.0)
        d_raw_f = tl.where(m_bd, d_raw_f, 0.0)
        d_raw_z = tl.where(m_bd, d_raw_z, 0.0)
        d_raw_o = tl.where(m_bd, d_raw_o, 0.0)

        tl.store(p_dx, d_raw_i.to(dgx.dtype.element_ty), mask=m_bd)
        tl.store(p_dx + HD, d_raw_f.to(dgx.dtype.element_ty), mask=m_bd)
        tl.store(p_dx + 2 * HD, d_raw_z.to(dgx.dtype.element_ty), mask=m_bd)
        tl.store(p_dx + 3 * HD, d_raw_o.to(dgx.dtype.element_ty), mask=m_bd)
        b_dbi += tl.sum(d_raw_i, axis=0)
        b_dbf += tl.sum(d_raw_f, axis=0)
        b_dbz += tl.sum(d_raw_z, axis=0)
        b_dbo += tl.sum(d_raw_o, axis=0)
        # dR_g += h_{t-1}^T dRaw_g;  dh_{t-1} = sum_g dRaw_g R_g^T (R used transposed, still on chip)
        b_hT = tl.trans(b_h_prev)
        b_dri += _dot(b_hT, d_raw_i, HALF)
        b_drf += _dot(b_hT, d_raw_f, HALF)
        b_drz += _dot(b_hT, d_raw_z, HALF)
        b_dro += _dot(b_hT, d_raw_o, HALF)
        b_dh = _dot(d_raw_i, tl.trans(b_ri), HALF)
        b_dh += _dot(d_raw_f, tl.trans(b_rf), HALF)
        b_dh += _dot(d_raw_z, tl.trans(b_rz), HALF)
        b_dh += _dot(d_raw_o, tl.trans(b_ro), HALF)

        p_x -= 4 * HD
        p_dx -= 4 * HD
        p_dy -= HD
        p_st -= 4 * HD

    tl.store(dh0 + o_s, b_dh, mask=m_bd)
    tl.store(dc0 + o_s, b_dc, mask=m_bd)
    tl.store(dn0 + o_s, b_dn, mask=m_bd)
    tl.store(dm0 + o_s, b_dm, mask=m_bd)

    m_r = m_d[:, None] & m_d[None, :]
    p_dr = dR + (i_bb * H + i_h) * D * 4 * D + o_d[:, None] * (4 * D) + o_d[None, :]
    tl.store(p_dr, b_dri, mask=m_r)
    tl.store(p_dr + D, b_drf, mask=m_r)
    tl.store(p_dr + 2 * D, b_drz, mask=m_r)
    tl.store(p_dr + 3 * D, b_dro, mask=m_r)
    p_db = dbias + i_bb * 4 * HD + i_h * D + o_d
    tl.store(p_db, b_dbi, mask=m_d)
    tl.store(p_db + HD, b_dbf, mask=m_d)
    tl.store(p_db + 2 * HD, b_dbz, mask=m_d)
    tl.store(p_db + 3 * HD, b_dbo, mask=m_d)
