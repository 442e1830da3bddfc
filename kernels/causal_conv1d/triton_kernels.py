"""Triton kernels of the causal depthwise convolution (forward and backward).

Notation (see kernels/README.md): ``x [B,T,D]``, ``weight [D,W]``, ``bias [D]?``, state ``h0, hT [B,D,W-1]``.
``xp(s)`` is the input at time ``s`` extended to the ``W-1`` positions before the start by ``h0``
(zeros without one), so

    z[t] = bias + sum_w weight[:, w] * xp(t - (W-1) + w),    y[t] = act(z[t]),    hT[j] = xp(T - (W-1) + j).

Every program owns one ``(B, T-block, D-block)`` tile; the ``W-1`` halo before a T-block is read again
from ``x`` (or ``h0`` for the first block), which is cheaper than exchanging it between programs.
Offsets are built in int64 so tensors with more than 2^31 elements index correctly.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _load_xp(x, h0, i_b, o_s, o_d, m_d, T, D, s_xb, s_xt, s_xd, W: tl.constexpr, HAS_H0: tl.constexpr):
    """``xp(o_s)`` for the D-block ``o_d`` of batch ``i_b``: ``[len(o_s), BD]`` fp32, zero outside the sequence."""
    m_x = (o_s >= 0) & (o_s < T)
    # Masked-off lanes still form an address; clamp it so it never points before the tensor.
    o_x = i_b.to(tl.int64) * s_xb + tl.where(m_x, o_s, 0).to(tl.int64)[:, None] * s_xt
    o_x += o_d.to(tl.int64)[None, :] * s_xd
    b_x = tl.load(x + o_x, mask=m_x[:, None] & m_d[None, :], other=0.0).to(tl.float32)
    if HAS_H0:
        m_h = (o_s < 0) & (o_s >= -(W - 1))
        o_h = (i_b.to(tl.int64) * D + o_d.to(tl.int64)[None, :]) * (W - 1)
        o_h += tl.where(m_h, o_s + (W - 1), 0).to(tl.int64)[:, None]
        b_x += tl.load(h0 + o_h, mask=m_h[:, None] & m_d[None, :], other=0.0).to(tl.float32)
    return b_x


@triton.jit
def _pre_activation(x, h0, w, b, i_b, o_t, o_d, m_d, T, D, s_xb, s_xt, s_xd,
                    W: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr):
    """``z[o_t]`` before the activation: ``[len(o_t), BD]`` fp32."""
    b_z = tl.zeros((o_t.shape[0], o_d.shape[0]), dtype=tl.float32)
    if HAS_BIAS:
        b_z += tl.load(b + o_d, mask=m_d, other=0.0).to(tl.float32)[None, :]
    for i_w in tl.static_range(W):
        b_w = tl.load(w + o_d.to(tl.int64) * W + i_w, mask=m_d, other=0.0).to(tl.float32)
        b_z += b_w[None, :] * _load_xp(x, h0, i_b, o_t - (W - 1) + i_w, o_d, m_d, T, D, s_xb, s_xt, s_xd, W, HAS_H0)
    return b_z


@triton.jit
def causal_conv1d_fwd_kernel(
    x,  # [B, T, D] any strides
    w,  # [D, W] contiguous
    b,  # [D]
    h0,  # [B, D, W-1] contiguous
    y,  # [B, T, D] strides of x
    ht,  # [B, D, W-1] contiguous fp32
    T,
    D,
    s_xb,
    s_xt,
    s_xd,
    W: tl.constexpr,
    WP: tl.constexpr,  # next power of two >= W-1 (arange size for the state)
    BT: tl.constexpr,
    BD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr,
    SILU: tl.constexpr,
):
    i_t, i_d, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_t = i_t * BT + tl.arange(0, BT)
    o_d = i_d * BD + tl.arange(0, BD)
    m_t, m_d = o_t < T, o_d < D

    b_z = _pre_activation(x, h0, w, b, i_b, o_t, o_d, m_d, T, D, s_xb, s_xt, s_xd, W, HAS_BIAS, HAS_H0)
    if SILU:
        b_z = b_z * tl.sigmoid(b_z)
    o_y = i_b.to(tl.int64) * s_xb + o_t.to(tl.int64)[:, None] * s_xt + o_d.to(tl.int64)[None, :] * s_xd
    tl.store(y + o_y, b_z.to(y.dtype.element_ty), mask=m_t[:, None] & m_d[None, :])

    # The final state is the last W-1 positions of xp; one T-block per (batch, D-block) writes it.
    if i_t == 0:
        o_j = tl.arange(0, WP)
        m_j = o_j < W - 1
        b_h = _load_xp(x, h0, i_b, T - (W - 1) + o_j, o_d, m_d, T, D, s_xb, s_xt, s_xd, W, HAS_H0)
        o_h = (i_b.to(tl.int64) * D + o_d.to(tl.int64)[None, :]) * (W - 1) + o_j[:, None]
        tl.store(ht + o_h, b_h, mask=m_j[:, None] & m_d[None, :])


@triton.jit
def _grad_pre_activation(x, h0, w, b, dy, i_b, o_t, o_d, m_d, T, D, s_xb, s_xt, s_xd, s_yb, s_yt, s_yd,
                         W: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SILU: tl.constexpr):
    """``dz[o_t] = dy * act'(z)``: ``[len(o_t), BD]`` fp32, zero outside ``[0, T)``."""
    m_t = (o_t >= 0) & (o_t < T)
    o_dy = i_b.to(tl.int64) * s_yb + tl.where(m_t, o_t, 0).to(tl.int64)[:, None] * s_yt
    o_dy += o_d.to(tl.int64)[None, :] * s_yd
    b_dz = tl.load(dy + o_dy, mask=m_t[:, None] & m_d[None, :], other=0.0).to(tl.float32)
    if SILU:
        # z is recomputed rather than saved: W extra loads that hit cache beat a [B,T,D] fp32 round trip.
        b_z = _pre_activation(x, h0, w, b, i_b, o_t, o_d, m_d, T, D, s_xb, s_xt, s_xd, W, HAS_BIAS, HAS_H0)
        b_sig = tl.sigmoid(b_z)
        b_dz = b_dz * b_sig * (1.0 + b_z * (1.0 - b_sig))
    return b_dz


@triton.jit
def _grad_input(x, h0, w, b, dy, dht, i_b, o_s, o_d, m_d, T, D, s_xb, s_xt, s_xd, s_yb, s_yt, s_yd,
                W: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SILU: tl.constexpr,
                HAS_DHT: tl.constexpr):
    """Gradient of ``xp(o_s)``: ``sum_w weight[:, w] * dz[o_s + W-1-w]`` plus the final state's gradient."""
    b_dx = tl.zeros((o_s.shape[0], o_d.shape[0]), dtype=tl.float32)
    for i_w in tl.static_range(W):
        b_w = tl.load(w + o_d.to(tl.int64) * W + i_w, mask=m_d, other=0.0).to(tl.float32)
        b_dz = _grad_pre_activation(x, h0, w, b, dy, i_b, o_s + (W - 1 - i_w), o_d, m_d, T, D,
                                    s_xb, s_xt, s_xd, s_yb, s_yt, s_yd, W, HAS_BIAS, HAS_H0, SILU)
        b_dx += b_w[None, :] * b_dz
    if HAS_DHT:
        # xp(s) is hT[s - T + W-1] when that index lies in [0, W-1).
        o_j = o_s - T + (W - 1)
        m_j = (o_j >= 0) & (o_j < W - 1)
        o_h = (i_b.to(tl.int64) * D + o_d.to(tl.int64)[None, :]) * (W - 1) + tl.where(m_j, o_j, 0)[:, None]
        b_dx += tl.load(dht + o_h, mask=m_j[:, None] & m_d[None, :], other=0.0).to(tl.float32)
    return b_dx


@triton.jit
def causal_conv1d_bwd_kernel(
    x,  # [B, T, D] any strides
    w,  # [D, W] contiguous
    b,  # [D]
    h0,  # [B, D, W-1] contiguous
    dy,  # [B, T, D] any strides
    dht,  # [B, D, W-1] contiguous
    dx,  # [B, T, D] strides of x
    dw,  # [B * NT, D, W] fp32 partial sums, reduced by the caller
    db,  # [B * NT, D] fp32 partial sums
    dh0,  # [B, D, W-1] fp32 contiguous
    T,
    D,
    NT,
    s_xb,
    s_xt,
    s_xd,
    s_yb,
    s_yt,
    s_yd,
    W: tl.constexpr,
    WP: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr,
    SILU: tl.constexpr,
    HAS_DHT: tl.constexpr,
):
    i_t, i_d, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_t = i_t * BT + tl.arange(0, BT)
    o_d = i_d * BD + tl.arange(0, BD)
    m_t, m_d = o_t < T, o_d < D

    b_dx = _grad_input(x, h0, w, b, dy, dht, i_b, o_t, o_d, m_d, T, D, s_xb, s_xt, s_xd, s_yb, s_yt, s_yd,
                       W, HAS_BIAS, HAS_H0, SILU, HAS_DHT)
    o_x = i_b.to(tl.int64) * s_xb + o_t.to(tl.int64)[:, None] * s_xt + o_d.to(tl.int64)[None, :] * s_xd
    tl.store(dx + o_x, b_dx.to(dx.dtype.element_ty), mask=m_t[:, None] & m_d[None, :])

    # Weight and bias gradients of this tile; partial sums per (batch, T-block) avoid atomics.
    b_dz = _grad_pre_activation(x, h0, w, b, dy, i_b, o_t, o_d, m_d, T, D, s_xb, s_xt, s_xd, s_yb, s_yt, s_yd,
                                W, HAS_BIAS, HAS_H0, SILU)
    i_p = i_b.to(tl.int64) * NT + i_t
    for i_w in tl.static_range(W):
        b_xw = _load_xp(x, h0, i_b, o_t - (W - 1) + i_w, o_d, m_d, T, D, s_xb, s_xt, s_xd, W, HAS_H0)
        tl.store(dw + (i_p * D + o_d) * W + i_w, tl.sum(b_dz * b_xw, axis=0), mask=m_d)
    if HAS_BIAS:
        tl.store(db + i_p * D + o_d, tl.sum(b_dz, axis=0), mask=m_d)

    if HAS_H0:
        if i_t == 0:
            o_j = tl.arange(0, WP)
            b_dh = _grad_input(x, h0, w, b, dy, dht, i_b, o_j - (W - 1), o_d, m_d, T, D,
                               s_xb, s_xt, s_xd, s_yb, s_yt, s_yd, W, HAS_BIAS, HAS_H0, SILU, HAS_DHT)
            o_h = (i_b.to(tl.int64) * D + o_d.to(tl.int64)[None, :]) * (W - 1) + o_j[:, None]
            tl.store(dh0 + o_h, b_dh, mask=(o_j < W - 1)[:, None] & m_d[None, :])
