"""The Triton SSD scan (Mamba-2): kernel launches and the autograd wrapper, signature of ``ssd_chunk_ref``.

Forward: three Triton stages (chunk state with the chunk cumsum fused in, state passing, chunk scan). Backward:
the first two are recomputed (only the inputs are saved), then three Triton stages give every gradient;
partial sums (``dA``, ``dD``, the per-head ``dB``/``dC`` of a group, the decay gradient of the state passing's
blocks) are reduced afterwards in torch, so the backward is deterministic (no atomics).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
import triton

from zoo.kernels.ssd.reference import _check
from zoo.kernels.ssd.triton_kernels import (
    ssd_chunk_scan_bwd_kernel,
    ssd_chunk_scan_kernel,
    ssd_chunk_state_kernel,
    ssd_state_passing_bwd_kernel,
    ssd_state_passing_kernel,
)


def _block(n: int, cap: int) -> int:
    """A power-of-two block for a dimension of size ``n``: at least 16 (``tl.dot``'s minimum), at most ``cap``."""
    return max(16, min(cap, triton.next_power_of_2(n)))


@dataclass
class _Chunks:
    """How time is cut into chunks: ``NC`` global chunks, ``NS`` sequences (batch rows or packed sequences)."""

    L: int
    NT: int  # chunks per batch row (unused with cu_seqlens)
    NC: int
    NS: int
    varlen: bool
    chunk_start: torch.Tensor | None = None  # [NC] int64 first token of each chunk
    chunk_end: torch.Tensor | None = None  # [NC] int64 end of the chunk's sequence
    seq_chunks: torch.Tensor | None = None  # [NS+1] int64 first global chunk of each sequence

    def tables(self, dummy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three tables, or ``dummy`` pointers when not varlen (the kernels never read them then)."""
        if not self.varlen:
            return dummy, dummy, dummy
        return self.chunk_start, self.chunk_end, self.seq_chunks


#: Longest chunk the kernels take: every kernel holds a whole chunk in registers (``[L,L]`` scores, ``[L,K]`` B/C
#: blocks and their gradients in the backward), so longer ``chunk_size`` values run as chunks of this length.
#: The result does not depend on ``L`` (only rounding does). A tuning knob for the GPU.
MAX_CHUNK = 64


def _chunks(b: int, t: int, chunk_size: int, cu: list[int] | None, device: torch.device) -> _Chunks:
    """Cut time into chunks of ``L`` tokens; with packed sequences each sequence is cut on its own."""
    # a chunk longer than the input only wastes L^2 work
    L = max(1, min(chunk_size, MAX_CHUNK, t))
    if cu is None:
        nt = triton.cdiv(t, L)
        return _Chunks(L, nt, b * nt, b, False)
    starts, ends, seq_chunks = [], [], [0]
    for lo, hi in pairwise(cu):
        starts.extend(range(lo, hi, L))
        ends.extend([hi] * triton.cdiv(hi - lo, L))
        seq_chunks.append(len(starts))

    def table(values):
        return torch.tensor(values, dtype=torch.int64).to(device, non_blocking=True)

    return _Chunks(L, 0, len(starts), len(cu) - 1, True, table(starts), table(ends), table(seq_chunks))


def _strides(x, dt, Bm):
    return (*x.stride(), *dt.stride(), *Bm.stride())


def _chunk_states(x, dt, A, Bm, ch: _Chunks, to_end: bool, cum_end: torch.Tensor | None) -> torch.Tensor:
    """Stage 1 (``to_end``) or backward stage 4: ``[NC,H,K,V]`` fp32; writes ``cum_end [NC,H]`` when given."""
    t, h, v = x.shape[1:]
    g, k = Bm.shape[2:]
    BL, BK, BV = _block(ch.L, 1 << 30), _block(k, 64), _block(v, 64)
    states = torch.empty(ch.NC, h, k, v, device=x.device, dtype=torch.float32)
    if ch.NC == 0:  # an empty input: nothing to launch
        return states
    start, end, _ = ch.tables(states)
    grid = (ch.NC, h, triton.cdiv(k, BK) * triton.cdiv(v, BV))
    ssd_chunk_state_kernel[grid](
        x, dt, A, Bm, states, states if cum_end is None else cum_end, start, end,
        t, h, g, k, v, ch.NT, *_strides(x, dt, Bm),
        L=ch.L, BL=BL, BK=BK, BV=BV, TO_END=to_end, WRITE_CUM=cum_end is not None, IS_VARLEN=ch.varlen,
        HALF=x.dtype in (torch.float16, torch.bfloat16),
    )  # fmt: skip
    return states


def _fwd_states(x, dt, A, Bm, initial_state, ch: _Chunks):
    """Stages 1-2: ``(start states [NC,H,K,V], cum_end [NC,H], final [NS,H,K,V])``, all fp32."""
    h, v = x.shape[2:]
    k = Bm.shape[3]
    cum_end = torch.empty(ch.NC, h, device=x.device, dtype=torch.float32)
    states = _chunk_states(x, dt, A, Bm, ch, True, cum_end)
    final = torch.empty(ch.NS, h, k, v, device=x.device, dtype=torch.float32)
    _, _, seq_chunks = ch.tables(cum_end)
    BS = min(1024, triton.next_power_of_2(k * v))
    ssd_state_passing_kernel[(ch.NS * h, triton.cdiv(k * v, BS))](
        states, cum_end, final if initial_state is None else initial_state, final, seq_chunks,
        h, k * v, ch.NT, BS=BS, HAS_H0=initial_state is not None, IS_VARLEN=ch.varlen,
    )  # fmt: skip
    return states, cum_end, final


def ssd_triton_fwd(x, dt, A, Bm, Cm, D_skip, initial_state, ch: _Chunks) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward stages. Returns ``(y [B,T,H,V] in x's dtype, final_state [NS,H,K,V] fp32)``.

    ``x, dt, Bm, Cm`` may be non-contiguous (their strides are passed to the kernels); ``initial_state``
    must be contiguous.
    """
    t, h, v = x.shape[1:]
    g, k = Bm.shape[2:]
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    states, _, final = _fwd_states(x, dt, A, Bm, initial_state, ch)
    if ch.NC == 0:
        return y, final
    BL, BK, BV = _block(ch.L, 1 << 30), _block(k, 64), _block(v, 64)
    start, end, _ = ch.tables(states)
    ssd_chunk_scan_kernel[(ch.NC, h, triton.cdiv(v, BV))](
        x, dt, A, Bm, Cm, states, states if D_skip is None else D_skip, y, start, end,
        t, h, g, k, v, ch.NT, *_strides(x, dt, Bm), *Cm.stride(),
        L=ch.L, BL=BL, BK=BK, BV=BV, HAS_D=D_skip is not None, IS_VARLEN=ch.varlen,
        HALF=x.dtype in (torch.float16, torch.bfloat16),
    )  # fmt: skip
    return y, final


def ssd_triton_bwd(x, dt, A, Bm, Cm, D_skip, initial_state, ch: _Chunks, dy, dfinal):
    """Every input gradient: ``(dx, ddt, dA, dB, dC, dD | None, d initial_state | None)`` in the inputs' dtypes.

    Recomputes the start states (``[NC,H,K,V]``, one per chunk, never per token), then: the gradient each
    chunk's outputs send to its start state; the reverse state passing (``d`` end state of every chunk,
    ``d initial_state``, the decays' gradient); one kernel per (chunk, head) for all input gradients.
    """
    b, t, h, v = x.shape
    g, k = Bm.shape[2:]
    states, cum_end, _ = _fwd_states(x, dt, A, Bm, initial_state, ch)
    dstates = _chunk_states(dy, dt, A, Cm, ch, False, None)

    BS = min(1024, triton.next_power_of_2(k * v))
    nbs = triton.cdiv(k * v, BS)
    dh0 = torch.empty(ch.NS, h, k, v, device=x.device, dtype=torch.float32)
    ddecay = torch.empty(nbs, ch.NC, h, device=x.device, dtype=torch.float32)
    _, _, seq_chunks = ch.tables(states)
    ssd_state_passing_bwd_kernel[(ch.NS * h, nbs)](
        dstates, states, cum_end, dfinal, dh0, ddecay, seq_chunks,
        h, k * v, ch.NT, ch.NC, BS=BS, IS_VARLEN=ch.varlen,
    )  # fmt: skip

    dx = torch.empty_like(x, memory_format=torch.contiguous_format)
    ddt = torch.empty(b, t, h, device=x.device, dtype=torch.float32)
    db = torch.empty(b, t, h, k, device=x.device, dtype=torch.float32)
    dc = torch.empty(b, t, h, k, device=x.device, dtype=torch.float32)
    dA = torch.empty(ch.NC, h, device=x.device, dtype=torch.float32)
    dD = torch.empty(ch.NC, h, device=x.device, dtype=torch.float32)
    if ch.NC > 0:
        BL, BK, BV = _block(ch.L, 1 << 30), _block(k, 1 << 30), _block(v, 64)
        start, end, _ = ch.tables(states)
        ssd_chunk_scan_bwd_kernel[(ch.NC, h)](
            x, dt, A, Bm, Cm, states, dstates, ddecay.sum(0), states if D_skip is None else D_skip, dy,
            dx, ddt, db, dc, dA, dD, start, end,
            t, h, g, k, v, ch.NT, *_strides(x, dt, Bm), *Cm.stride(),
            L=ch.L, BL=BL, BK=BK, BV=BV, HAS_D=D_skip is not None, IS_VARLEN=ch.varlen,
            HALF=x.dtype in (torch.float16, torch.bfloat16),
        )  # fmt: skip
    # a group's B/C serve its H/G heads: their per-head gradients are summed here (deterministic)
    dB = db.view(b, t, g, h // g, k).sum(3).to(Bm.dtype)
    dC = dc.view(b, t, g, h // g, k).sum(3).to(Cm.dtype)
    dD_skip = None if D_skip is None else dD.sum(0).to(D_skip.dtype)
    dh0_out = None if initial_state is None else dh0.to(initial_state.dtype)
    return dx, ddt.to(dt.dtype), dA.sum(0).to(A.dtype), dB, dC, dD_skip, dh0_out


class SSDTritonFunction(torch.autograd.Function):
    """Triton forward and backward; saves only the inputs (the backward recomputes the chunk states)."""

    @staticmethod
    def forward(ctx, x, dt, A, Bm, Cm, D_skip, initial_state, ch):
        y, final = ssd_triton_fwd(x, dt, A, Bm, Cm, D_skip, initial_state, ch)
        ctx.save_for_backward(x, dt, A, Bm, Cm, D_skip, initial_state)
        ctx.ch = ch
        ctx.set_materialize_grads(False)  # an unused output gets no gradient tensor, not a zero one
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        x, dt, A, Bm, Cm, D_skip, initial_state = ctx.saved_tensors
        ch = ctx.ch
        dy = torch.zeros_like(x) if dy is None else dy.contiguous()
        h, v = x.shape[2:]
        k = Bm.shape[3]
        if dfinal is None:
            dfinal = torch.zeros(ch.NS, h, k, v, device=x.device, dtype=torch.float32)
        grads = ssd_triton_bwd(x, dt, A, Bm, Cm, D_skip, initial_state, ch, dy, dfinal.contiguous())
        return (*grads, None)


def ssd_triton(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D_skip: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Triton SSD scan: ``x [B,T,H,V]``, ``dt [B,T,H]``, ``A [H]``, ``Bm, Cm [B,T,G,K]``, ``D_skip [H]?``.

    Returns ``(y [B,T,H,V] in x's dtype, final_state [B,H,K,V] fp32)``, as ``ssd_chunk_ref``; with
    ``cu_seqlens [S+1]`` (``B == 1``) the packed sequences restart their state at every boundary and
    ``initial_state`` / ``final_state`` are ``[S,H,K,V]``. Runs on CUDA tensors, or on CPU tensors under
    ``TRITON_INTERPRET=1`` (tests).
    """
    cu = _check(x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size, cu_seqlens)
    ch = _chunks(x.shape[0], x.shape[1], chunk_size, cu, x.device)
    if initial_state is not None:
        initial_state = initial_state.contiguous()
    if D_skip is not None:
        D_skip = D_skip.contiguous()
    return SSDTritonFunction.apply(x, dt, A.contiguous(), Bm, Cm, D_skip, initial_state, ch)
