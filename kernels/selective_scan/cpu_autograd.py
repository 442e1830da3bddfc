"""The chunk recurrence of the selective scan's torch form as one autograd node (the CPU training path).

Within a chunk of ``L`` tokens the chunked form (``reference.selective_scan_chunk_ref``) has vectorised
everything but the recurrence ``h_t = decay_t * h_{t-1} + inp_t`` over ``[B,N,D]``. Left to autograd, that
loop records one ``addcmul`` node per token, and the backward replays about three small ops per token
through the autograd engine: on one CPU thread that bookkeeping, not the arithmetic, dominated a Mamba
training step. ``chunk_recurrence`` makes the whole chunk one node whose forward and backward are plain
in-place loops of one fused op per token.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class _ChunkRecurrence(torch.autograd.Function):
    """``states_t = decay_t * states_{t-1} + inp_t`` over dim 1, ``states_{-1} = h0``; see ``chunk_recurrence``."""

    @staticmethod
    def forward(ctx, decay: torch.Tensor, inp: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Turn inp into the states in place, as the no-grad branch does: one allocation per chunk saved,
        # and inp itself is saved by nobody (the product that made it saves its factors, not its result).
        h = h0
        for decay_t, inp_t in zip(decay.unbind(1), inp.unbind(1)):
            h = inp_t.addcmul_(decay_t, h)
        ctx.mark_dirty(inp)
        # decay and the states cost no extra memory: exp's and the read-out's backward hold them already.
        ctx.save_for_backward(decay, inp, h0)
        # A gradient that autograd knows to be zero (the final state when it is unused) arrives as None
        # rather than as a tensor of zeros to read.
        ctx.set_materialize_grads(False)
        # The last state goes out as a separate small copy rather than as a view of the states: the
        # gradient of a view would be scattered into a zero-filled [B,L,N,D] tensor and added, two extra
        # passes over the chunk, as many bytes as the whole backward recurrence.
        return inp, h.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dstates: torch.Tensor | None, dh_last: torch.Tensor | None):
        decay, states, h0 = ctx.saved_tensors
        if dstates is None and dh_last is None:
            return None, None, None
        # g_t = dL/dh_t, all paths: g_t = dstates_t + decay_{t+1} g_{t+1}, last to first. It is written
        # into a fresh buffer (one fused addcmul per token, out=) rather than into dstates, which autograd
        # may share with another consumer of the same gradient.
        g = torch.empty_like(states)
        gs, ds = g.unbind(1), decay.unbind(1)
        if dstates is None:
            gs[-1].copy_(dh_last)
            for t in range(len(gs) - 2, -1, -1):
                torch.mul(ds[t + 1], gs[t + 1], out=gs[t])
        else:
            dss = dstates.unbind(1)
            if dh_last is None:
                gs[-1].copy_(dss[-1])
            else:
                torch.add(dss[-1], dh_last, out=gs[-1])
            for t in range(len(gs) - 2, -1, -1):
                torch.addcmul(dss[t], ds[t + 1], gs[t + 1], out=gs[t])
        d_decay = d_h0 = None
        if ctx.needs_input_grad[0]:
            # d decay_t = g_t * h_{t-1}: two vectorised products over the chunk, h_{-1} being h0
            d_decay = torch.empty_like(g)
            torch.mul(g[:, 1:], states[:, :-1], out=d_decay[:, 1:])
            torch.mul(gs[0], h0, out=d_decay[:, 0])
        if ctx.needs_input_grad[2]:
            d_h0 = ds[0] * gs[0]
        return d_decay, g if ctx.needs_input_grad[1] else None, d_h0


def chunk_recurrence(decay: torch.Tensor, inp: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The states of one chunk: ``h_t = decay_t * h_{t-1} + inp_t`` for ``t < L``, ``h_{-1} = h0``.

    ``decay, inp [B,L,N,D]`` fp32 contiguous, ``h0 [B,N,D]`` fp32. Returns ``(states [B,L,N,D], h_last
    [B,N,D])``; ``states`` *is* ``inp``, overwritten in place (``inp`` must be a non-leaf temporary that
    nothing else needs), and ``h_last`` a copy of its last token, to carry into the next chunk.

    One autograd node however long the chunk: the backward runs the reverse recurrence
    ``g_t = dstates_t + decay_{t+1} g_{t+1}`` with one fused op per token and no autograd, then
    ``d inp = g``, ``d decay_t = g_t h_{t-1}`` (vectorised over the chunk) and ``d h0 = decay_0 g_0``.
    It saves ``decay`` and the states, which the surrounding graph holds anyway (exp's result, the
    read-out's operand): training memory stays what it was with the per-token graph, ``O(B T N D)`` over
    the whole input. Recomputing the states in backward from each chunk's entry state would cut that to
    ``O(B T/L N D)`` plus the discretised inputs, but only if those were recomputed too, which would mean
    re-running the whole vectorised discretisation in backward; not worth it at the lengths a CPU trains.
    Not twice differentiable.
    """
    return _ChunkRecurrence.apply(decay, inp, h0)
