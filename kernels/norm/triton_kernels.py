"""Triton kernels of RMSNorm with a fused residual add (forward and backward).

Notation: rows ``M`` (all leading dims flattened), channels ``D``. Per row

    r = x + residual,    rstd = 1 / sqrt(mean(r^2) + eps),    y = r * rstd * weight.

The backward, with ``dy`` into ``y`` and ``dr_out`` into the returned ``r``:

    g = dy * weight,    dr = rstd * (g - r * rstd^2 * mean(g * r)) + dr_out,    dweight = sum_rows dy * r * rstd,

and ``dx = dresidual = dr``. A row lives in one block (``BD >= D``), as in mamba_ssm and fla.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def rms_norm_fwd_kernel(
    x,  # [M, D] row stride s_x
    residual,  # [M, D] row stride s_r
    w,  # [D]
    y,  # [M, D] contiguous
    r_out,  # [M, D] contiguous
    rstd,  # [M] fp32
    s_x,
    s_r,
    D,
    eps,
    BD: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
):
    i_m = tl.program_id(0).to(tl.int64)
    o_d = tl.arange(0, BD)
    m_d = o_d < D
    b_r = tl.load(x + i_m * s_x + o_d, mask=m_d, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        b_r += tl.load(residual + i_m * s_r + o_d, mask=m_d, other=0.0).to(tl.float32)
    tl.store(r_out + i_m * D + o_d, b_r.to(r_out.dtype.element_ty), mask=m_d)

    b_rstd = 1.0 / tl.sqrt(tl.sum(b_r * b_r, axis=0) / D + eps)
    tl.store(rstd + i_m, b_rstd)
    b_w = tl.load(w + o_d, mask=m_d, other=0.0).to(tl.float32)
    tl.store(y + i_m * D + o_d, (b_r * b_rstd * b_w).to(y.dtype.element_ty), mask=m_d)


@triton.jit
def rms_norm_bwd_kernel(
    x,  # [M, D] row stride s_x
    residual,  # [M, D] row stride s_r
    w,  # [D]
    rstd,  # [M] fp32
    dy,  # [M, D] row stride s_dy
    dr_out,  # [M, D] row stride s_dro
    dx,  # [M, D] contiguous
    dresidual,  # [M, D] contiguous
    dw,  # [P, D] fp32 partial sums over each program's rows, reduced by the caller
    s_x,
    s_r,
    s_dy,
    s_dro,
    M,
    D,
    ROWS: tl.constexpr,  # rows per program
    BD: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    HAS_DR_OUT: tl.constexpr,
):
    i_p = tl.program_id(0).to(tl.int64)
    o_d = tl.arange(0, BD)
    m_d = o_d < D
    b_w = tl.load(w + o_d, mask=m_d, other=0.0).to(tl.float32)
    # Each program walks a run of rows and keeps its weight gradient in registers: one store, no atomics.
    b_dw = tl.zeros((BD,), dtype=tl.float32)
    for i_r in range(ROWS):
        i_m = i_p * ROWS + i_r
        if i_m < M:
            # r is recomputed from x and residual: the saved new_residual may have been rounded to x's dtype.
            b_r = tl.load(x + i_m * s_x + o_d, mask=m_d, other=0.0).to(tl.float32)
            if HAS_RESIDUAL:
                b_r += tl.load(residual + i_m * s_r + o_d, mask=m_d, other=0.0).to(tl.float32)
            b_rstd = tl.load(rstd + i_m)
            b_xhat = b_r * b_rstd
            b_dy = tl.load(dy + i_m * s_dy + o_d, mask=m_d, other=0.0).to(tl.float32)
            b_dw += b_dy * b_xhat
            b_g = b_dy * b_w
            b_dr = b_rstd * (b_g - b_xhat * (tl.sum(b_g * b_xhat, axis=0) / D))
            if HAS_DR_OUT:
                b_dr += tl.load(dr_out + i_m * s_dro + o_d, mask=m_d, other=0.0).to(tl.float32)
            tl.store(dx + i_m * D + o_d, b_dr.to(dx.dtype.element_ty), mask=m_d)
            if HAS_RESIDUAL:
                tl.store(dresidual + i_m * D + o_d, b_dr.to(dresidual.dtype.element_ty), mask=m_d)
    tl.store(dw + i_p * D + o_d, b_dw, mask=m_d)
