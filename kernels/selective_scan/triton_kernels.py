"""Triton kernels of the selective scan (Mamba-1); launches and autograd live in ``triton_op.py``.

Notation (kernels/README.md): ``u, delta, z [B,T,D]``, ``A [D,N]``, ``Bm, Cm [B,T,N]``, ``D_skip, delta_bias [D]``,
state ``h [B,D,N]``; ``L`` is the chunk length and ``NC = cdiv(T, L)`` the number of chunks. All tensors are
contiguous. One program owns one batch row and ``BLOCK_D`` channels and walks time with its state
``h [BLOCK_D, BLOCK_N]`` kept in registers in fp32, as mamba_ssm's CUDA scan does per channel.
"""

import triton
import triton.language as tl


@triton.jit
def _softplus(x):
    # torch's threshold (x > 20 -> x); log1p through Goldberg's correction so tiny exp(x) keeps its precision
    e = tl.exp(x)
    w = 1.0 + e
    log1p = tl.where(w == 1.0, e, tl.log(w) * (e / (w - 1.0)))
    return tl.where(x > 20.0, x, log1p)


@triton.jit
def _time_step(delta, o_t, o_d, m_d, b_bias, SOFTPLUS: tl.constexpr):
    """Loads ``delta[b, t, block]``; returns ``(dt, x)``, ``x = delta + delta_bias``, ``dt = softplus(x)`` or ``x``."""
    b_x = tl.load(delta + o_t + o_d, mask=m_d, other=0.0).to(tl.float32) + b_bias
    if SOFTPLUS:
        b_dt = _softplus(b_x)
    else:
        b_dt = b_x
    return b_dt, b_x


@triton.jit
def selective_scan_fwd_kernel(
    u,  # [B,T,D]
    delta,  # [B,T,D]
    A,  # [D,N]
    Bm,  # [B,T,N]
    Cm,  # [B,T,N]
    D_skip,  # [D]
    z,  # [B,T,D]
    delta_bias,  # [D]
    h0,  # [B,D,N] fp32
    y,  # [B,T,D] out, u's dtype
    states,  # [B,NC,D,N] fp32 out: the state entering each chunk (the backward restarts from it)
    ht,  # [B,D,N] fp32 out
    T,
    D,
    N,
    L,
    NC,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    HAS_D_SKIP: tl.constexpr,
    HAS_Z: tl.constexpr,
    HAS_DELTA_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr,
):
    i_d, i_b = tl.program_id(0), tl.program_id(1)
    # 64-bit from the batch index on, so B*T*D and B*NC*D*N beyond 2**31 stay correct
    i_b = i_b.to(tl.int64)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_n = tl.arange(0, BLOCK_N)
    m_d, m_n = o_d < D, o_n < N
    m_dn = m_d[:, None] & m_n[None, :]
    o_dn = o_d[:, None] * N + o_n[None, :]

    # padded (d, n) get A = 0, B = C = 0, h0 = 0: their decay is 1 and their state stays 0
    b_A = tl.load(A + o_dn, mask=m_dn, other=0.0).to(tl.float32)
    b_bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_DELTA_BIAS:
        b_bias = tl.load(delta_bias + o_d, mask=m_d, other=0.0).to(tl.float32)
    b_D = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D_SKIP:
        b_D = tl.load(D_skip + o_d, mask=m_d, other=0.0).to(tl.float32)
    b_h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if HAS_H0:
        b_h = tl.load(h0 + i_b * D * N + o_dn, mask=m_dn, other=0.0).to(tl.float32)

    for i_c in range(NC):
        tl.store(states + (i_b * NC + i_c) * D * N + o_dn, b_h, mask=m_dn)
        t_lo = i_c * L
        for t in range(t_lo, tl.minimum(t_lo + L, T)):
            o_t = (i_b * T + t) * D
            o_tn = (i_b * T + t) * N
            b_dt, _ = _time_step(delta, o_t, o_d, m_d, b_bias, SOFTPLUS)
            b_u = tl.load(u + o_t + o_d, mask=m_d, other=0.0).to(tl.float32)
            b_B = tl.load(Bm + o_tn + o_n, mask=m_n, other=0.0).to(tl.float32)
            b_C = tl.load(Cm + o_tn + o_n, mask=m_n, other=0.0).to(tl.float32)
            b_h = tl.exp(b_dt[:, None] * b_A) * b_h + (b_dt * b_u)[:, None] * b_B[None, :]
            b_y = tl.sum(b_h * b_C[None, :], axis=1) + b_D * b_u
            if HAS_Z:
                b_z = tl.load(z + o_t + o_d, mask=m_d, other=0.0).to(tl.float32)
                b_y = b_y * b_z * tl.sigmoid(b_z)
            tl.store(y + o_t + o_d, b_y.to(y.dtype.element_ty), mask=m_d)
    tl.store(ht + i_b * D * N + o_dn, b_h, mask=m_dn)


@triton.jit
def selective_scan_bwd_kernel(
    u,  # [B,T,D]
    delta,  # [B,T,D]
    A,  # [D,N]
    Bm,  # [B,T,N]
    Cm,  # [B,T,N]
    D_skip,  # [D]
    z,  # [B,T,D]
    delta_bias,  # [D]
    states,  # [B,NC,D,N] fp32: the state entering each chunk, from the forward
    dy,  # [B,T,D]: gradient of y (not read without HAS_DY: y was unused)
    dht,  # [B,D,N] fp32: gradient of the final state (not read without HAS_DHT)
    hs,  # [B,L+1,D,N] fp32 scratch: one chunk's states, recomputed
    du,  # [B,T,D] out
    ddelta,  # [B,T,D] out
    dz,  # [B,T,D] out
    dA,  # [B,D,N] fp32 out: per batch row, summed by the caller
    dB,  # [B,T,N] fp32, zero-initialised: accumulated over the D blocks
    dC,  # [B,T,N] fp32, zero-initialised: accumulated over the D blocks
    dD,  # [B,D] fp32 out: per batch row
    ddelta_bias,  # [B,D] fp32 out: per batch row
    dh0,  # [B,D,N] fp32 out
    T,
    D,
    N,
    L,
    NC,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    HAS_D_SKIP: tl.constexpr,
    HAS_Z: tl.constexpr,
    HAS_DELTA_BIAS: tl.constexpr,
    HAS_DY: tl.constexpr,
    HAS_DHT: tl.constexpr,
):
    i_d, i_b = tl.program_id(0), tl.program_id(1)
    i_b = i_b.to(tl.int64)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_n = tl.arange(0, BLOCK_N)
    m_d, m_n = o_d < D, o_n < N
    m_dn = m_d[:, None] & m_n[None, :]
    o_dn = o_d[:, None] * N + o_n[None, :]
    o_hs = i_b * (L + 1) * D * N + o_dn

    b_A = tl.load(A + o_dn, mask=m_dn, other=0.0).to(tl.float32)
    b_bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_DELTA_BIAS:
        b_bias = tl.load(delta_bias + o_d, mask=m_d, other=0.0).to(tl.float32)
    b_D = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D_SKIP:
        b_D = tl.load(D_skip + o_d, mask=m_d, other=0.0).to(tl.float32)
    # the gradient flowing into h_t from everything after t; padded rows/columns stay 0
    b_dh = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if HAS_DHT:
        b_dh = tl.load(dht + i_b * D * N + o_dn, mask=m_dn, other=0.0).to(tl.float32)
    b_dA = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    b_dD = tl.zeros([BLOCK_D], dtype=tl.float32)
    b_dbias = tl.zeros([BLOCK_D], dtype=tl.float32)

    for i in range(NC):
        i_c = NC - 1 - i
        t_lo = i_c * L
        n_t = tl.minimum(L, T - t_lo)
        # Recompute the chunk's states from its boundary state: hs[0] = h_{t_lo - 1}, hs[j + 1] = h_{t_lo + j}.
        # Memory stays O(NC D N) for the boundaries plus O(L D N) for this scratch, not O(T D N).
        b_h = tl.load(states + (i_b * NC + i_c) * D * N + o_dn, mask=m_dn, other=0.0)
        tl.store(hs + o_hs, b_h, mask=m_dn)
        for j in range(n_t):
            o_t = (i_b * T + t_lo + j) * D
            o_tn = (i_b * T + t_lo + j) * N
            b_dt, _ = _time_step(delta, o_t, o_d, m_d, b_bias, SOFTPLUS)
            b_u = tl.load(u + o_t + o_d, mask=m_d, other=0.0).to(tl.float32)
            b_B = tl.load(Bm + o_tn + o_n, mask=m_n, other=0.0).to(tl.float32)
            b_h = tl.exp(b_dt[:, None] * b_A) * b_h + (b_dt * b_u)[:, None] * b_B[None, :]
            tl.store(hs + o_hs + (j + 1) * D * N, b_h, mask=m_dn)
        # each thread reads back what it wrote (same layout), but make the ordering explicit
        tl.debug_barrier()

        for j in range(n_t):
            i_t = n_t - 1 - j
            o_t = (i_b * T + t_lo + i_t) * D
            o_tn = (i_b * T + t_lo + i_t) * N
            b_dt, b_x = _time_step(delta, o_t, o_d, m_d, b_bias, SOFTPLUS)
            b_u = tl.load(u + o_t + o_d, mask=m_d, other=0.0).to(tl.float32)
            b_B = tl.load(Bm + o_tn + o_n, mask=m_n, other=0.0).to(tl.float32)
            b_C = tl.load(Cm + o_tn + o_n, mask=m_n, other=0.0).to(tl.float32)
            b_dy = tl.zeros([BLOCK_D], dtype=tl.float32)
            if HAS_DY:
                b_dy = tl.load(dy + o_t + o_d, mask=m_d, other=0.0).to(tl.float32)
            b_h = tl.load(hs + o_hs + (i_t + 1) * D * N, mask=m_dn, other=0.0)
            b_hp = tl.load(hs + o_hs + i_t * D * N, mask=m_dn, other=0.0)

            # through the gate: y = o * silu(z) with o = h C + D_skip u
            if HAS_Z:
                b_z = tl.load(z + o_t + o_d, mask=m_d, other=0.0).to(tl.float32)
                b_sig = tl.sigmoid(b_z)
                b_o = tl.sum(b_h * b_C[None, :], axis=1) + b_D * b_u
                b_dz = b_dy * b_o * b_sig * (1.0 + b_z * (1.0 - b_sig))
                tl.store(dz + o_t + o_d, b_dz.to(dz.dtype.element_ty), mask=m_d)
                b_do = b_dy * b_z * b_sig
            else:
                b_do = b_dy
            b_dD += b_do * b_u
            # B and C are shared by every channel: sum the D blocks' parts in fp32. Relaxed order is enough
            # (only the sum after the kernel is read) and avoids a fence per token.
            tl.atomic_add(dC + o_tn + o_n, tl.sum(b_h * b_do[:, None], axis=0), mask=m_n, sem="relaxed")
            b_dh += b_do[:, None] * b_C[None, :]

            # h_t = exp(dt A) h_{t-1} + dt u B
            b_decay = tl.exp(b_dt[:, None] * b_A)
            b_ddecay = b_dh * b_hp * b_decay  # gradient of the exponent dt A
            b_dA += b_ddecay * b_dt[:, None]
            b_dhB = tl.sum(b_dh * b_B[None, :], axis=1)
            b_ddt = tl.sum(b_ddecay * b_A, axis=1) + b_u * b_dhB
            tl.atomic_add(dB + o_tn + o_n, tl.sum(b_dh * (b_dt * b_u)[:, None], axis=0), mask=m_n, sem="relaxed")
            b_du = b_do * b_D + b_dt * b_dhB
            b_dh = b_dh * b_decay

            if SOFTPLUS:
                b_ddt = b_ddt * tl.where(b_x > 20.0, 1.0, tl.sigmoid(b_x))
            b_dbias += b_ddt
            tl.store(du + o_t + o_d, b_du.to(du.dtype.element_ty), mask=m_d)
            tl.store(ddelta + o_t + o_d, b_ddt.to(ddelta.dtype.element_ty), mask=m_d)
        # the next (earlier) chunk overwrites the scratch this one read
        tl.debug_barrier()

    tl.store(dh0 + i_b * D * N + o_dn, b_dh, mask=m_dn)
    tl.store(dA + i_b * D * N + o_dn, b_dA, mask=m_dn)
    tl.store(dD + i_b * D + o_d, b_dD, mask=m_d)
    tl.store(ddelta_bias + i_b * D + o_d, b_dbias, mask=m_d)
