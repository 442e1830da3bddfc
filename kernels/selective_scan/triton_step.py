"""Fused Triton decode step of the selective scan (Mamba-1): one token, inference only.

``selective_scan_step_triton`` takes the arguments of ``selective_scan_step`` (``u_t, delta_t, z_t [B,D]``,
``A [D,N]``, ``B_t, C_t [B,N]``, ``D_skip, delta_bias [D]?``, ``state [B,D,N]``) and returns
``(y_t [B,D] in u_t's dtype, new_state [B,D,N] fp32)``; the old state is never written. One program owns
one batch row and ``BLOCK_D`` channels: it reads their ``[BLOCK_D, N]`` state once, writes the new one once,
and does the time step, discretisation, read-out, skip and gate in registers, where the torch step launches
about a dozen kernels and round-trips ``[B,D,N]`` temporaries through memory.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from zoo.kernels.selective_scan.triton_kernels import _softplus


@triton.jit
def selective_scan_step_kernel(
    u,  # [B,D] strides s_ub, s_ud
    delta,  # [B,D] strides s_db, s_dd
    A,  # [D,N] contiguous
    Bt,  # [B,N] strides s_bb, s_bn
    Ct,  # [B,N] strides s_cb, s_cn
    D_skip,  # [D] contiguous
    z,  # [B,D] strides s_zb, s_zd
    delta_bias,  # [D] contiguous
    h,  # [B,D,N] contiguous, any float dtype
    y,  # [B,D] contiguous out, u's dtype
    h_new,  # [B,D,N] contiguous fp32 out
    D,
    N,
    s_ub,
    s_ud,
    s_db,
    s_dd,
    s_bb,
    s_bn,
    s_cb,
    s_cn,
    s_zb,
    s_zd,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    HAS_D_SKIP: tl.constexpr,
    HAS_Z: tl.constexpr,
    HAS_DELTA_BIAS: tl.constexpr,
):
    i_d, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_n = tl.arange(0, BLOCK_N)
    m_d, m_n = o_d < D, o_n < N
    m_dn = m_d[:, None] & m_n[None, :]
    o_dn = o_d[:, None] * N + o_n[None, :]

    b_x = tl.load(delta + i_b * s_db + o_d * s_dd, mask=m_d, other=0.0).to(tl.float32)
    if HAS_DELTA_BIAS:
        b_x += tl.load(delta_bias + o_d, mask=m_d, other=0.0).to(tl.float32)
    if SOFTPLUS:
        b_dt = _softplus(b_x)
    else:
        b_dt = b_x
    b_u = tl.load(u + i_b * s_ub + o_d * s_ud, mask=m_d, other=0.0).to(tl.float32)
    b_B = tl.load(Bt + i_b * s_bb + o_n * s_bn, mask=m_n, other=0.0).to(tl.float32)
    b_C = tl.load(Ct + i_b * s_cb + o_n * s_cn, mask=m_n, other=0.0).to(tl.float32)
    b_A = tl.load(A + o_dn, mask=m_dn, other=0.0).to(tl.float32)
    # the state is 64-bit indexed: B D N passes 2**31 at large batch
    b_h = tl.load(h + i_b * D * N + o_dn, mask=m_dn, other=0.0).to(tl.float32)

    b_h = tl.exp(b_dt[:, None] * b_A) * b_h + (b_dt * b_u)[:, None] * b_B[None, :]
    b_y = tl.sum(b_h * b_C[None, :], axis=1)
    if HAS_D_SKIP:
        b_y += tl.load(D_skip + o_d, mask=m_d, other=0.0).to(tl.float32) * b_u
    if HAS_Z:
        b_z = tl.load(z + i_b * s_zb + o_d * s_zd, mask=m_d, other=0.0).to(tl.float32)
        b_y = b_y * b_z * tl.sigmoid(b_z)
    tl.store(h_new + i_b * D * N + o_dn, b_h, mask=m_dn)
    tl.store(y + i_b * D + o_d, b_y.to(y.dtype.element_ty), mask=m_d)


def _block_d(D: int, BLOCK_N: int) -> int:
    # ~1K state elements per program (64 channels at N=16): the step is memory-bound on the state, and
    # small tiles give a single sequence (B=1) enough programs to spread over the GPU's SMs
    return min(triton.next_power_of_2(D), max(1, 1024 // BLOCK_N))


def selective_scan_step_triton(
    u_t: torch.Tensor,
    delta_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D_skip: torch.Tensor | None,
    z_t: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One fused token of the selective scan; arguments and results as ``selective_scan_step`` (shapes checked there).

    Inference only: raises a ValueError when autograd would need a graph (grad mode on and an input that
    requires grad); ``impl="auto"`` routes those calls to the torch step instead.
    """
    tensors = (u_t, delta_t, A, B_t, C_t, D_skip, z_t, delta_bias, state)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise ValueError(
            "the Triton selective_scan_step has no backward: call it under torch.no_grad() / inference_mode, "
            "or use impl='torch' (impl='auto' does) to differentiate through the step"
        )
    b, d = u_t.shape
    n = A.shape[1]
    # parameters and the state are contiguous in practice (no copy then); the per-token activations come
    # as slices of a projection's output, so they are read through their strides instead
    A, state = A.contiguous(), state.contiguous()
    D_skip = None if D_skip is None else D_skip.contiguous()
    delta_bias = None if delta_bias is None else delta_bias.contiguous()
    y = torch.empty(b, d, device=u_t.device, dtype=u_t.dtype)
    new_state = torch.empty(b, d, n, device=u_t.device, dtype=torch.float32)
    BLOCK_N = triton.next_power_of_2(n)
    BLOCK_D = _block_d(d, BLOCK_N)
    zz = u_t if z_t is None else z_t
    # absent optional tensors are never read (their HAS_ flag is off): any pointer will do
    selective_scan_step_kernel[(triton.cdiv(d, BLOCK_D), b)](
        u_t, delta_t, A, B_t, C_t,
        u_t if D_skip is None else D_skip,
        zz,
        u_t if delta_bias is None else delta_bias,
        state, y, new_state,
        d, n,
        u_t.stride(0), u_t.stride(1),
        delta_t.stride(0), delta_t.stride(1),
        B_t.stride(0), B_t.stride(1),
        C_t.stride(0), C_t.stride(1),
        zz.stride(0), zz.stride(1),
        BLOCK_D=BLOCK_D,
        BLOCK_N=BLOCK_N,
        SOFTPLUS=bool(delta_softplus),
        HAS_D_SKIP=D_skip is not None,
        HAS_Z=z_t is not None,
        HAS_DELTA_BIAS=delta_bias is not None,
    )  # fmt: skip
    return y, new_state
