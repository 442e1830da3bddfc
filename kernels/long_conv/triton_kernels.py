"""Triton kernels of the causal long convolution: an FFT convolution whose transforms are matrix products.

Notation (see kernels/README.md and README.md here): ``u [B,T,D]``, ``k [D,Lk]``, history ``h0 [B,D,H]``.
The transform length ``N = N1 * N2`` (powers of two, ``N1, N2 >= 16`` so every factor feeds ``tl.dot``) is
the four-step ("Monarch") split of the DFT: writing ``n = n1 * N2 + n2`` and ``f = f1 + N1 * f2``,

    X[f1, f2] = sum_n2 F2[f2, n2] * tw[f1, n2] * sum_n1 F1[f1, n1] * x[n1, n2],     tw[f1, n2] = w_N^(f1 n2)

with ``F1``, ``F2`` the DFT matrices of sizes ``N1``, ``N2``. Spectra stay in this ``[f1, f2]`` order
(the filter's is computed by the same kernels, so the pointwise product pairs the right frequencies);
the inverse runs the same steps backwards with conjugate matrices. Complex numbers are pairs of fp32 blocks.

Every transform is batched over the channels: with the buffer laid out ``[P, N1, N2, D]`` (= ``[P, N, D]``,
``P`` batch pairs), each step is a GEMM ``[N1 x N1] @ [N1 x (BJ x BD)]`` (or ``N2``) whose columns are ``BJ``
values of the other index times ``BD`` contiguous channels,
so ``u [B,T,D]`` is read in place, coalesced, without a transpose. Three passes over global memory:

1. ``long_conv_dft_rows_kernel``: load the signal (history, input, zero padding; optionally reversed in time;
   batch elements ``2p`` and ``2p+1`` as the real and imaginary parts of one complex signal, as they share
   the filter), ``F1 @ x``, twiddle, store the complex buffer. Zero-padded rows are skipped.
2. ``long_conv_dft_mid_kernel``: per tile of ``BJ`` frequency rows ``f1`` x ``BD`` channels (all ``N2`` values):
   ``F2 @``, then either store the spectrum, or multiply by one or two spectra and run the inverse ``F2``
   step + conjugate twiddle, all in registers, and store in place.
3. ``long_conv_idft_rows_kernel``: the inverse ``F1`` step (real part -> element ``2p``, imaginary part ->
   element ``2p+1``), then the epilogue: the skip term ``u * bias``, the gate, and up to two outputs at affine
   time positions. Tiles that hold no output position (padding, history) skip their GEMM.

From ``N1 = 256`` passes 1 and 3 use ``*_split_kernel`` variants that factor ``N1 = NA * NB`` once more inside
one program (three factors in all, GEMM depths ``NA + NB`` instead of ``N1``).

Offsets that multiply a batch or row index by a stride are int64 (tensors past 2^31 elements).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, HALF: tl.constexpr):
    """``a @ b`` of fp32 blocks with fp32 accumulation.

    fp32 inputs use three tf32 products (``tf32x3``, about fp32 accuracy on tensor cores); half inputs use one
    tf32 product, whose 10-bit mantissa is already finer than the bf16/fp16 data. Operands stay fp32 because
    the DFT matrices and twiddles would lose too much as bf16 (and Triton 3.9's interpreter multiplies bf16
    dots wrongly).
    """
    if HALF:
        return tl.dot(a, b, input_precision="tf32")
    return tl.dot(a, b, input_precision="tf32x3")


@triton.jit
def _columns(i_c, D, BJ: tl.constexpr, BD: tl.constexpr):
    """The columns of a program's tiles: ``BJ`` values of the outer index ``j`` times ``BD`` channels.

    Column ``c`` holds ``(j, d) = (i_j * BJ + c // BD, i_d * BD + c % BD)``, so a run of ``BD`` columns is
    ``BD`` contiguous channels (coalesced) and a tile's dot has ``BJ * BD`` columns to feed the tensor cores.
    """
    n_d = tl.cdiv(D, BD)
    i_j, i_d = i_c // n_d, i_c % n_d
    o_c = tl.arange(0, BJ * BD)
    o_j = i_j * BJ + o_c // BD
    o_d = i_d * BD + o_c % BD
    return o_j, o_d, o_d < D


@triton.jit
def _load_signal(x, h0, i_b, o_s, o_d, m_d, T, D, H, s_xb, s_xt, s_xd, HAS_H0: tl.constexpr, REV: tl.constexpr):
    """The real signal at positions ``o_s [R, C]`` (channel ``o_d [C]`` per column): fp32, zero outside it.

    Forward order: ``h0[:, :, s]`` for ``s < H``, then ``x[:, s - H]``. Reversed (``REV``): ``x[:, T-1-s]``.
    """
    if REV:
        o_t = T - 1 - o_s
    else:
        o_t = o_s - H
    m_x = (o_t >= 0) & (o_t < T) & m_d[None, :]
    # masked lanes still form an address: clamp it inside the tensor
    o_x = i_b.to(tl.int64) * s_xb + tl.where(m_x, o_t, 0).to(tl.int64) * s_xt + o_d.to(tl.int64)[None, :] * s_xd
    b_x = tl.load(x + o_x, mask=m_x, other=0.0).to(tl.float32)
    if HAS_H0:
        m_h = (o_s >= 0) & (o_s < H) & m_d[None, :]
        o_h = (i_b.to(tl.int64) * D + o_d.to(tl.int64)[None, :]) * H + tl.where(m_h, o_s, 0).to(tl.int64)
        b_x += tl.load(h0 + o_h, mask=m_h, other=0.0).to(tl.float32)
    return b_x


@triton.jit
def long_conv_dft_rows_kernel(
    x,  # [B, T, D] real signal, strides s_x* (the filter is read as [1, Lk, D] through strides)
    h0,  # [B, D, H] contiguous history (HAS_H0)
    f1r,  # [N1, N1] DFT matrix, real part
    f1i,  # [N1, N1] imaginary part
    twr,  # [N1, N2] twiddles w_N^(f1 n2), real part
    twi,  # [N1, N2] imaginary part
    outr,  # [P, N, D] fp32 out, real part (P = ceil(B/2) with PAIR, else B)
    outi,  # [P, N, D] fp32 out, imaginary part
    B,
    T,
    D,
    H,
    NK,  # number of BK-blocks of n1 holding signal (the rest is zero padding)
    s_xb,
    s_xt,
    s_xd,
    N1: tl.constexpr,
    N2: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
    BJ: tl.constexpr,
    BD: tl.constexpr,
    HAS_H0: tl.constexpr,
    REV: tl.constexpr,
    PAIR: tl.constexpr,
    IM_SIGN: tl.constexpr,
    HALF: tl.constexpr,
):
    """Pass 1: ``out[f1, n2] = tw[f1, n2] * sum_n1 F1[f1, n1] x[n1 N2 + n2]``, ``BM`` rows x ``(BJ n2, BD d)``."""
    i_m, i_c, i_p = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_n2, o_d, m_d = _columns(i_c, D, BJ, BD)
    o_f1 = i_m * BM + tl.arange(0, BM)
    if PAIR:
        # two batch elements per complex signal: x = x[2p] + IM_SIGN * i * x[2p+1] (the second may not exist)
        i_b = 2 * i_p
        m_d1 = m_d & (tl.zeros_like(o_d) + i_b + 1 < B)
    else:
        i_b = i_p

    b_ar = tl.zeros((BM, BJ * BD), dtype=tl.float32)
    b_ai = tl.zeros((BM, BJ * BD), dtype=tl.float32)
    for i_k in range(0, NK):
        o_n1 = i_k * BK + tl.arange(0, BK)
        o_s = o_n1[:, None] * N2 + o_n2[None, :]
        o_f = o_f1[:, None] * N1 + o_n1[None, :]
        b_fr = tl.load(f1r + o_f)
        b_fi = tl.load(f1i + o_f)
        b_x = _load_signal(x, h0, i_b, o_s, o_d, m_d, T, D, H, s_xb, s_xt, s_xd, HAS_H0, REV)
        b_ar += _dot(b_fr, b_x, HALF)
        b_ai += _dot(b_fi, b_x, HALF)
        if PAIR:
            b_x = _load_signal(x, h0, i_b + 1, o_s, o_d, m_d1, T, D, H, s_xb, s_xt, s_xd, HAS_H0, REV) * IM_SIGN
            # F1 (i x1) = -F1i x1 + i F1r x1
            b_ar -= _dot(b_fi, b_x, HALF)
            b_ai += _dot(b_fr, b_x, HALF)

    o_tw = o_f1[:, None] * N2 + o_n2[None, :]
    b_twr = tl.load(twr + o_tw)
    b_twi = tl.load(twi + o_tw)
    o_out = i_p.to(tl.int64) * (N1 * N2) * D + o_tw.to(tl.int64) * D + o_d[None, :]
    tl.store(outr + o_out, b_ar * b_twr - b_ai * b_twi, mask=m_d[None, :])
    tl.store(outi + o_out, b_ar * b_twi + b_ai * b_twr, mask=m_d[None, :])


@triton.jit
def _cmul(ar, ai, br, bi):
    return ar * br - ai * bi, ar * bi + ai * br


@triton.jit
def _conv_rows(b_xr, b_xi, sr, si, o_s, m_d, b_fr, b_fi, b_twr, b_twi, HALF: tl.constexpr):
    """``X * S``, then the inverse ``F2`` step and the conjugate twiddle (transposed tiles, see the caller)."""
    b_sr = tl.load(sr + o_s, mask=m_d[:, None], other=0.0)
    b_si = tl.load(si + o_s, mask=m_d[:, None], other=0.0)
    b_yr, b_yi = _cmul(b_xr, b_xi, b_sr, b_si)
    # Y^T @ conj(F2) (F2 is symmetric)
    b_zr = _dot(b_yr, b_fr, HALF) + _dot(b_yi, b_fi, HALF)
    b_zi = _dot(b_yi, b_fr, HALF) - _dot(b_yr, b_fi, HALF)
    # times conj(tw)
    return b_zr * b_twr + b_zi * b_twi, b_zi * b_twr - b_zr * b_twi


@triton.jit
def long_conv_dft_mid_kernel(
    ar,  # [B, N, D] fp32 pass-1 output, real part; overwritten in place with the result
    ai,  # imaginary part
    sr,  # [*, N, D] spectrum to multiply by (CONV), batch stride s_sb (0 when shared by the batch)
    si,
    qr,  # [B, N, D] second spectrum (TWO): read, and overwritten in place with its own result
    qi,
    f2r,  # [N2, N2] DFT matrix
    f2i,
    twr,  # [N1, N2] twiddles
    twi,
    D,
    s_sb,
    scale,  # multiplies a stored spectrum (not CONV)
    N1: tl.constexpr,
    N2: tl.constexpr,
    BJ: tl.constexpr,
    BD: tl.constexpr,
    CONV: tl.constexpr,
    TWO: tl.constexpr,
    HALF: tl.constexpr,
):
    """Pass 2 on ``(BJ f1, BD d)`` x all ``N2``: the forward ``F2`` step, then the spectrum or product(s).

    The tiles are transposed (``[columns, N2]``, ``X^T = A^T F2``) so the shared DFT matrix is the right operand
    of every dot and the data stays the left one: this keeps far fewer values in registers than ``F2 @ A``.
    """
    i_c, i_b = tl.program_id(0), tl.program_id(1)
    o_f1, o_d, m_d = _columns(i_c, D, BJ, BD)
    o_n2 = tl.arange(0, N2)

    o_tw = o_f1[:, None] * N2 + o_n2[None, :]  # [BJ*BD, N2]: tw[f1, n2], and the row f1 N2 + n2 of the buffer
    o_row = o_tw.to(tl.int64) * D + o_d[:, None]
    o_a = i_b.to(tl.int64) * (N1 * N2) * D + o_row
    b_ar = tl.load(ar + o_a, mask=m_d[:, None], other=0.0)
    b_ai = tl.load(ai + o_a, mask=m_d[:, None], other=0.0)
    o_f = o_n2[:, None] * N2 + o_n2[None, :]
    b_fr = tl.load(f2r + o_f)
    b_fi = tl.load(f2i + o_f)
    b_xr = _dot(b_ar, b_fr, HALF) - _dot(b_ai, b_fi, HALF)
    b_xi = _dot(b_ai, b_fr, HALF) + _dot(b_ar, b_fi, HALF)

    if CONV:
        b_twr = tl.load(twr + o_tw)
        b_twi = tl.load(twi + o_tw)
        o_s = i_b.to(tl.int64) * s_sb + o_row
        b_zr, b_zi = _conv_rows(b_xr, b_xi, sr, si, o_s, m_d, b_fr, b_fi, b_twr, b_twi, HALF)
        if TWO:
            # the second product reuses the forward step; its spectrum is per batch element and replaced
            b_qr, b_qi = _conv_rows(b_xr, b_xi, qr, qi, o_a, m_d, b_fr, b_fi, b_twr, b_twi, HALF)
            tl.store(qr + o_a, b_qr, mask=m_d[:, None])
            tl.store(qi + o_a, b_qi, mask=m_d[:, None])
        tl.store(ar + o_a, b_zr, mask=m_d[:, None])
        tl.store(ai + o_a, b_zi, mask=m_d[:, None])
    else:
        tl.store(ar + o_a, b_xr * scale, mask=m_d[:, None])
        tl.store(ai + o_a, b_xi * scale, mask=m_d[:, None])


@triton.jit
def _epilogue(b_c, i_b, o_y, m_y, o_y2, m_y2, o_d, m_d, y, u, bias, g, z, y2, s_yb, s_yt, s_yd, s_y2b, s_y2t, s_y2d,
              HAS_BIAS: tl.constexpr, GATE: tl.constexpr, STORE_Z: tl.constexpr, HAS_Y2: tl.constexpr):  # fmt: skip
    """Store ``gate * (c + u * bias)`` (and ``z``, ``y2``) of batch element ``i_b``."""
    o_out = i_b.to(tl.int64) * s_yb + tl.where(m_y, o_y, 0).to(tl.int64) * s_yt
    o_out += o_d.to(tl.int64)[None, :] * s_yd
    b_y = b_c
    if HAS_BIAS:
        b_u = tl.load(u + o_out, mask=m_y, other=0.0).to(tl.float32)
        b_y += b_u * tl.load(bias + o_d, mask=m_d, other=0.0).to(tl.float32)[None, :]
    if GATE:
        if STORE_Z:
            tl.store(z + o_out, b_y.to(z.dtype.element_ty), mask=m_y)
        b_y = b_y * tl.load(g + o_out, mask=m_y, other=0.0).to(tl.float32)
    tl.store(y + o_out, b_y.to(y.dtype.element_ty), mask=m_y)
    if HAS_Y2:
        o_out2 = i_b.to(tl.int64) * s_y2b + tl.where(m_y2, o_y2, 0).to(tl.int64) * s_y2t
        o_out2 += o_d.to(tl.int64)[None, :] * s_y2d
        tl.store(y2 + o_out2, b_c.to(y2.dtype.element_ty), mask=m_y2)


@triton.jit
def long_conv_idft_rows_kernel(
    ar,  # [B, N, D] fp32 pass-2 output, real part
    ai,  # imaginary part
    f1r,  # [N1, N1] DFT matrix
    f1i,
    y,  # out 1, [B, *, D] with strides s_y*: position o = Y_OFF - s (REV) or s - Y_OFF, kept for 0 <= o < Y_LEN
    u,  # skip-term source (HAS_BIAS), strides of y
    bias,  # [D]
    g,  # gate (GATE), strides of y
    z,  # the ungated output (STORE_Z), strides of y
    y2,  # out 2 (HAS_Y2): position o = Y2_OFF - s, kept for 0 <= o < Y2_LEN, strides s_y2*
    B,
    D,
    Y_OFF,
    Y_LEN,
    Y2_OFF,
    Y2_LEN,
    s_yb,
    s_yt,
    s_yd,
    s_y2b,
    s_y2t,
    s_y2d,
    N1: tl.constexpr,
    N2: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
    BJ: tl.constexpr,
    BD: tl.constexpr,
    REV: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    GATE: tl.constexpr,
    STORE_Z: tl.constexpr,
    HAS_Y2: tl.constexpr,
    PAIR: tl.constexpr,
    HALF: tl.constexpr,
):
    """Pass 3: ``c[n1 N2 + n2] = Re(sum_f1 conj(F1)[n1, f1] A[f1, n2])``, then the fused epilogue.

    ``y = gate * (c + u * bias)`` (``z`` = the ungated value, kept for the gate's gradient when asked).
    """
    i_m, i_c, i_p = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_n2, o_d, m_d = _columns(i_c, D, BJ, BD)
    o_n1 = i_m * BM + tl.arange(0, BM)
    o_s = o_n1[:, None] * N2 + o_n2[None, :]
    if REV:
        o_y = Y_OFF - o_s
    else:
        o_y = o_s - Y_OFF
    m_y = (o_y >= 0) & (o_y < Y_LEN) & m_d[None, :]
    m_any = tl.max(tl.max(m_y.to(tl.int32), 1), 0) > 0
    o_y2 = Y2_OFF - o_s
    m_y2 = (o_y2 >= 0) & (o_y2 < Y2_LEN) & m_d[None, :]
    if HAS_Y2:
        m_any = m_any | (tl.max(tl.max(m_y2.to(tl.int32), 1), 0) > 0)
    # tiles of the zero padding / the history produce no output: skip their GEMM
    if m_any:
        b_cr = tl.zeros((BM, BJ * BD), dtype=tl.float32)
        b_ci = tl.zeros((BM, BJ * BD), dtype=tl.float32)
        o_base = i_p.to(tl.int64) * (N1 * N2) * D
        for i_k in range(0, N1 // BK):
            o_f1 = i_k * BK + tl.arange(0, BK)
            o_a = o_base + (o_f1[:, None] * N2 + o_n2[None, :]).to(tl.int64) * D + o_d[None, :]
            b_ar = tl.load(ar + o_a, mask=m_d[None, :], other=0.0)
            b_ai = tl.load(ai + o_a, mask=m_d[None, :], other=0.0)
            o_f = o_n1[:, None] * N1 + o_f1[None, :]
            b_fr = tl.load(f1r + o_f)
            b_fi = tl.load(f1i + o_f)
            # conj(F1) A: the real part always, the imaginary part only when it holds a second batch element
            b_cr += _dot(b_fr, b_ar, HALF) + _dot(b_fi, b_ai, HALF)
            if PAIR:
                b_ci += _dot(b_fr, b_ai, HALF) - _dot(b_fi, b_ar, HALF)

        i_b = 2 * i_p if PAIR else i_p
        _epilogue(b_cr, i_b, o_y, m_y, o_y2, m_y2, o_d, m_d, y, u, bias, g, z, y2,
                  s_yb, s_yt, s_yd, s_y2b, s_y2t, s_y2d, HAS_BIAS, GATE, STORE_Z, HAS_Y2)  # fmt: skip
        if PAIR:
            if i_b + 1 < B:
                _epilogue(b_ci, i_b + 1, o_y, m_y, o_y2, m_y2, o_d, m_d, y, u, bias, g, z, y2,
                          s_yb, s_yt, s_yd, s_y2b, s_y2t, s_y2d, HAS_BIAS, GATE, STORE_Z, HAS_Y2)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Three-factor variants of passes 1 and 3 (long sequences): the length-N1 transform along n1 is itself split,
# N1 = NA * NB with n1 = na NB + nb and f1 = fa + NA fb, inside one program that holds all N1 rows of its
# columns: F1 x = P (F_NB x I) tw1 (I x F_NA) x, two GEMMs of depth NA and NB instead of one of depth N1.


@triton.jit
def _wide_columns(i_c, D, NW: tl.constexpr, BJ: tl.constexpr, BD: tl.constexpr):
    """Columns ``(w, j, d)`` of a tile ``NW`` values of an inner row index wide: ``w = q // (BJ BD)``, and
    ``(j, d)`` as in :func:`_columns` for ``q % (BJ BD)``."""
    n_d = tl.cdiv(D, BD)
    i_j, i_d = i_c // n_d, i_c % n_d
    o_q = tl.arange(0, NW * BJ * BD)
    o_w = o_q // (BJ * BD)
    o_c = o_q % (BJ * BD)
    o_j = i_j * BJ + o_c // BD
    o_d = i_d * BD + o_c % BD
    return o_w, o_j, o_d, o_d < D


@triton.jit
def _swap_rows(b_x, R: tl.constexpr, W: tl.constexpr, C: tl.constexpr):
    """``[R, W*C]`` (columns ``(w, c)``) -> ``[W, R*C]`` (columns ``(r, c)``): the transpose between the steps."""
    return tl.reshape(tl.permute(tl.reshape(b_x, (R, W, C)), (1, 0, 2)), (W, R * C))


@triton.jit
def long_conv_dft_rows_split_kernel(
    x,  # [B, T, D] real signal, strides s_x*
    h0,  # [B, D, H] contiguous history (HAS_H0)
    far,  # [NA, NA] DFT matrix, real part
    fai,
    fbr,  # [NB, NB] DFT matrix
    fbi,
    t1r,  # [NA, NB] inner twiddles w_N1^(fa nb)
    t1i,
    twr,  # [N1, N2] outer twiddles w_N^(f1 n2)
    twi,
    outr,  # [P, N, D] fp32 out
    outi,
    B,
    T,
    D,
    H,
    s_xb,
    s_xt,
    s_xd,
    NA: tl.constexpr,
    NB: tl.constexpr,
    FC: tl.constexpr,  # chunk of the fa index (>= 16, divides NA)
    N2: tl.constexpr,
    BJ: tl.constexpr,
    BD: tl.constexpr,
    HAS_H0: tl.constexpr,
    REV: tl.constexpr,
    PAIR: tl.constexpr,
    IM_SIGN: tl.constexpr,
    HALF: tl.constexpr,
):
    """Pass 1 with ``N1 = NA * NB``: all ``N1`` rows of ``BJ`` values of ``n2`` times ``BD`` channels.

    The ``fa`` rows are produced ``FC`` at a time (the signal tile is reloaded from cache for each chunk), so
    only ``[FC, NB x columns]`` tiles stay live: a whole ``N1``-row tile per intermediate would spill.
    """
    i_c, i_p = tl.program_id(0), tl.program_id(1)
    BC: tl.constexpr = BJ * BD
    o_nb, o_n2, o_d, m_d = _wide_columns(i_c, D, NB, BJ, BD)
    o_na = tl.arange(0, NA)
    # signal rows n1 = na NB + nb: tile [NA, (nb, n2, d)]
    o_s = (o_na[:, None] * NB + o_nb[None, :]) * N2 + o_n2[None, :]
    if PAIR:
        i_b = 2 * i_p
        m_d1 = m_d & (tl.zeros_like(o_d) + i_b + 1 < B)
    else:
        i_b = i_p
    o_nbr = tl.arange(0, NB)
    o_b = o_nbr[:, None] * NB + o_nbr[None, :]
    o_fc, o_n2c, o_dc, m_dc = _wide_columns(i_c, D, FC, BJ, BD)
    o_base = i_p.to(tl.int64) * (NA * NB * N2) * D
    for i_f in range(0, NA // FC):
        o_fa = i_f * FC + tl.arange(0, FC)
        o_a = o_fa[:, None] * NA + o_na[None, :]
        b_far = tl.load(far + o_a)
        b_fai = tl.load(fai + o_a)
        b_x = _load_signal(x, h0, i_b, o_s, o_d, m_d, T, D, H, s_xb, s_xt, s_xd, HAS_H0, REV)
        b_ar = _dot(b_far, b_x, HALF)
        b_ai = _dot(b_fai, b_x, HALF)
        if PAIR:
            b_x = _load_signal(x, h0, i_b + 1, o_s, o_d, m_d1, T, D, H, s_xb, s_xt, s_xd, HAS_H0, REV) * IM_SIGN
            b_ar -= _dot(b_fai, b_x, HALF)
            b_ai += _dot(b_far, b_x, HALF)
        # inner twiddle w_N1^(fa nb)
        o_t1 = o_fa[:, None] * NB + o_nb[None, :]
        b_ar, b_ai = _cmul(b_ar, b_ai, tl.load(t1r + o_t1), tl.load(t1i + o_t1))
        # [fa, (nb, c)] -> [nb, (fa, c)], then the F_NB step
        b_ar = _swap_rows(b_ar, FC, NB, BC)
        b_ai = _swap_rows(b_ai, FC, NB, BC)
        b_fbr = tl.load(fbr + o_b)
        b_fbi = tl.load(fbi + o_b)
        b_xr = _dot(b_fbr, b_ar, HALF) - _dot(b_fbi, b_ai, HALF)
        b_xi = _dot(b_fbr, b_ai, HALF) + _dot(b_fbi, b_ar, HALF)
        # rows fb, columns (fa, n2, d): f1 = fa + NA fb; outer twiddle and store
        o_f1 = (i_f * FC + o_fc)[None, :] + NA * o_nbr[:, None]
        o_tw = o_f1 * N2 + o_n2c[None, :]
        b_xr, b_xi = _cmul(b_xr, b_xi, tl.load(twr + o_tw), tl.load(twi + o_tw))
        o_out = o_base + o_tw.to(tl.int64) * D + o_dc[None, :]
        tl.store(outr + o_out, b_xr, mask=m_dc[None, :])
        tl.store(outi + o_out, b_xi, mask=m_dc[None, :])


@triton.jit
def long_conv_idft_rows_split_kernel(
    ar,  # [P, N, D] fp32 pass-2 output
    ai,
    far,  # [NA, NA] DFT matrix
    fai,
    fbr,  # [NB, NB] DFT matrix
    fbi,
    t1r,  # [NA, NB] inner twiddles w_N1^(fa nb)
    t1i,
    y,  # out 1 (see long_conv_idft_rows_kernel)
    u,
    bias,
    g,
    z,
    y2,
    B,
    D,
    Y_OFF,
    Y_LEN,
    Y2_OFF,
    Y2_LEN,
    s_yb,
    s_yt,
    s_yd,
    s_y2b,
    s_y2t,
    s_y2d,
    NA: tl.constexpr,
    NB: tl.constexpr,
    FC: tl.constexpr,  # chunk of the fa index (>= 16, divides NA)
    N2: tl.constexpr,
    BJ: tl.constexpr,
    BD: tl.constexpr,
    REV: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    GATE: tl.constexpr,
    STORE_Z: tl.constexpr,
    HAS_Y2: tl.constexpr,
    PAIR: tl.constexpr,
    HALF: tl.constexpr,
):
    """Pass 3 with ``N1 = NA * NB``: the inverse of the split pass 1, then the epilogue of the plain pass 3.

    The ``fa`` index is consumed ``FC`` at a time: each chunk's ``F_NB`` step feeds the ``F_NA`` step's
    accumulators directly (K-steps of ``FC``), so only the accumulators span all ``N1`` rows.
    """
    i_c, i_p = tl.program_id(0), tl.program_id(1)
    BC: tl.constexpr = BJ * BD
    o_fc, o_n2a, o_da, m_da = _wide_columns(i_c, D, FC, BJ, BD)
    o_nb, o_n2, o_d, m_d = _wide_columns(i_c, D, NB, BJ, BD)
    o_nbr = tl.arange(0, NB)
    o_na = tl.arange(0, NA)
    o_b = o_nbr[:, None] * NB + o_nbr[None, :]
    o_base = i_p.to(tl.int64) * (NA * NB * N2) * D
    b_cr = tl.zeros((NA, NB * BC), dtype=tl.float32)
    b_ci = tl.zeros((NA, NB * BC), dtype=tl.float32)
    for i_f in range(0, NA // FC):
        # input rows f1 = fa + NA fb for this chunk of fa: tile [fb, (fa, n2, d)]
        o_fa = i_f * FC + o_fc
        o_a = o_base + ((o_fa[None, :] + NA * o_nbr[:, None]) * N2 + o_n2a[None, :]).to(tl.int64) * D
        o_a += o_da[None, :]
        b_ar = tl.load(ar + o_a, mask=m_da[None, :], other=0.0)
        b_ai = tl.load(ai + o_a, mask=m_da[None, :], other=0.0)
        b_fbr = tl.load(fbr + o_b)
        b_fbi = tl.load(fbi + o_b)
        # conj(F_NB) @ -> rows nb
        b_gr = _dot(b_fbr, b_ar, HALF) + _dot(b_fbi, b_ai, HALF)
        b_gi = _dot(b_fbr, b_ai, HALF) - _dot(b_fbi, b_ar, HALF)
        # conj inner twiddle w_N1^(-fa nb)
        o_t1 = o_fa[None, :] * NB + o_nbr[:, None]
        b_tr = tl.load(t1r + o_t1)
        b_ti = tl.load(t1i + o_t1)
        b_gr, b_gi = b_gr * b_tr + b_gi * b_ti, b_gi * b_tr - b_gr * b_ti
        # [nb, (fa, c)] -> [fa, (nb, c)], then accumulate conj(F_NA)[:, fa chunk] @ -> rows na
        b_gr = _swap_rows(b_gr, NB, FC, BC)
        b_gi = _swap_rows(b_gi, NB, FC, BC)
        o_f = o_na[:, None] * NA + (i_f * FC + tl.arange(0, FC))[None, :]
        b_far = tl.load(far + o_f)
        b_fai = tl.load(fai + o_f)
        b_cr += _dot(b_far, b_gr, HALF) + _dot(b_fai, b_gi, HALF)
        if PAIR:
            b_ci += _dot(b_far, b_gi, HALF) - _dot(b_fai, b_gr, HALF)

    # output rows n1 = na NB + nb, columns (nb, n2, d)
    o_s = (o_na[:, None] * NB + o_nb[None, :]) * N2 + o_n2[None, :]
    if REV:
        o_y = Y_OFF - o_s
    else:
        o_y = o_s - Y_OFF
    m_y = (o_y >= 0) & (o_y < Y_LEN) & m_d[None, :]
    o_y2 = Y2_OFF - o_s
    m_y2 = (o_y2 >= 0) & (o_y2 < Y2_LEN) & m_d[None, :]
    i_b = 2 * i_p if PAIR else i_p
    _epilogue(b_cr, i_b, o_y, m_y, o_y2, m_y2, o_d, m_d, y, u, bias, g, z, y2,
              s_yb, s_yt, s_yd, s_y2b, s_y2t, s_y2d, HAS_BIAS, GATE, STORE_Z, HAS_Y2)  # fmt: skip
    if PAIR:
        if i_b + 1 < B:
            _epilogue(b_ci, i_b + 1, o_y, m_y, o_y2, m_y2, o_d, m_d, y, u, bias, g, z, y2,
                      s_yb, s_yt, s_yd, s_y2b, s_y2t, s_y2d, HAS_BIAS, GATE, STORE_Z, HAS_Y2)  # fmt: skip
