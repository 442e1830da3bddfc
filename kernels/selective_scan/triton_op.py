"""The Triton selective scan (Mamba-1): launches and the autograd function.

``selective_scan_triton`` takes the arguments of ``selective_scan_chunk_ref`` and returns the same
``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``. The forward keeps the state of every chunk boundary
(``[B, cdiv(T, L), D, N]`` fp32); the backward recomputes each chunk's states from its boundary, so training
memory is ``O(T/L D N)`` plus one chunk's ``O(L D N)``, never ``O(T D N)``.
"""

from __future__ import annotations

import torch
import triton

from zoo.kernels.selective_scan.reference import _check
from zoo.kernels.selective_scan.triton_kernels import selective_scan_bwd_kernel, selective_scan_fwd_kernel


def _blocks(D: int, N: int) -> tuple[int, int]:
    # One program per (batch row, 16 channels): the scan is latency-bound along T, so more, smaller programs
    # keep more of the GPU busy; the whole state size N sits in one block (N is 16 in Mamba-1).
    return min(triton.next_power_of_2(D), 16), triton.next_power_of_2(N)


def _contiguous(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


class SelectiveScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, chunk_size):
        u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state = map(
            _contiguous, (u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state)
        )
        B, T, D = u.shape
        N = A.shape[1]
        L = min(chunk_size, T)
        NC = triton.cdiv(T, L)
        BLOCK_D, BLOCK_N = _blocks(D, N)
        h0 = None if initial_state is None else initial_state.float()
        y = torch.empty_like(u)
        states = torch.empty(B, NC, D, N, device=u.device, dtype=torch.float32)
        ht = torch.empty(B, D, N, device=u.device, dtype=torch.float32)
        # absent optional tensors are never read (their HAS_ flag is off): any pointer will do
        selective_scan_fwd_kernel[(triton.cdiv(D, BLOCK_D), B)](
            u, delta, A, Bm, Cm,
            u if D_skip is None else D_skip,
            u if z is None else z,
            u if delta_bias is None else delta_bias,
            ht if h0 is None else h0,
            y, states, ht,
            T, D, N, L, NC,
            BLOCK_D=BLOCK_D,
            BLOCK_N=BLOCK_N,
            SOFTPLUS=bool(delta_softplus),
            HAS_D_SKIP=D_skip is not None,
            HAS_Z=z is not None,
            HAS_DELTA_BIAS=delta_bias is not None,
            HAS_H0=h0 is not None,
        )  # fmt: skip
        ctx.save_for_backward(u, delta, A, Bm, Cm, D_skip, z, delta_bias, states)
        # an unused output's gradient arrives as None (no [B,T,D] of zeros made and read): the kernel skips it
        ctx.set_materialize_grads(False)
        ctx.delta_softplus, ctx.L = bool(delta_softplus), L
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        return y, ht

    @staticmethod
    def backward(ctx, dy, dht):
        u, delta, A, Bm, Cm, D_skip, z, delta_bias, states = ctx.saved_tensors
        B, T, D = u.shape
        N, L, NC = A.shape[1], ctx.L, states.shape[1]
        BLOCK_D, BLOCK_N = _blocks(D, N)
        # y.sum() hands a stride-0 expanded dy: make it dense for the kernel's offsets
        dy = None if dy is None else dy.contiguous()
        dht = None if dht is None else dht.float().contiguous()
        hs = torch.empty(B, L + 1, D, N, device=u.device, dtype=torch.float32)
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = None if z is None else torch.empty_like(z)
        dA = torch.empty(B, D, N, device=u.device, dtype=torch.float32)
        dB = torch.zeros(B, T, N, device=u.device, dtype=torch.float32)
        dC = torch.zeros(B, T, N, device=u.device, dtype=torch.float32)
        dD = torch.empty(B, D, device=u.device, dtype=torch.float32)
        ddelta_bias = torch.empty(B, D, device=u.device, dtype=torch.float32)
        dh0 = torch.empty(B, D, N, device=u.device, dtype=torch.float32)
        selective_scan_bwd_kernel[(triton.cdiv(D, BLOCK_D), B)](
            u, delta, A, Bm, Cm,
            u if D_skip is None else D_skip,
            u if z is None else z,
            u if delta_bias is None else delta_bias,
            states,
            u if dy is None else dy,
            states if dht is None else dht,
            hs,
            du, ddelta,
            du if dz is None else dz,
            dA, dB, dC, dD, ddelta_bias, dh0,
            T, D, N, L, NC,
            BLOCK_D=BLOCK_D,
            BLOCK_N=BLOCK_N,
            SOFTPLUS=ctx.delta_softplus,
            HAS_D_SKIP=D_skip is not None,
            HAS_Z=z is not None,
            HAS_DELTA_BIAS=delta_bias is not None,
            HAS_DY=dy is not None,
            HAS_DHT=dht is not None,
        )  # fmt: skip
        return (
            du,
            ddelta,
            dA.sum(0).to(A.dtype),
            dB.to(Bm.dtype),
            dC.to(Cm.dtype),
            None if D_skip is None else dD.sum(0).to(D_skip.dtype),
            dz,
            None if delta_bias is None else ddelta_bias.sum(0).to(delta_bias.dtype),
            None,
            None if ctx.h0_dtype is None else dh0.to(ctx.h0_dtype),
            None,
        )


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D_skip: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton selective scan: ``u, delta, z? [B,T,D]``, ``A [D,N]``, ``Bm, Cm [B,T,N]``, ``D_skip, delta_bias [D]?``.

    Returns ``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``, as ``selective_scan_chunk_ref``.
    ``chunk_size`` (``L``) sets how often the forward saves the state for the backward: memory for training
    is ``O(B T/L D N)`` for those boundaries plus ``O(B L D N)`` of scratch in the backward.
    """
    _check(u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state, chunk_size)
    return SelectiveScanFunction.apply(
        u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, chunk_size
    )
