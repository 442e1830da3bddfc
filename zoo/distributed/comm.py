"""Autograd-aware communication for sequence parallelism over a ``torch.distributed`` process group.

Every rank of a group of ``W`` ranks holds one contiguous slice ``[B, T_l, C]`` (``T = W T_l``) of a
sequence, rank ``r`` the positions ``r T_l .. (r+1) T_l - 1``. Three kinds of traffic:

* state passing (:func:`recv_from_previous`, :func:`send_to_next`): a recurrent mixer's final state goes
  from rank ``r`` to ``r+1``; in backward its gradient comes back from ``r+1`` to ``r``.
* resharding (:func:`sequence_to_channels`, :func:`channels_to_sequence`): one ``all_to_all_single``
  turns ``[B, T_l, C]`` (a slice of time, all channels) into ``[B, T, C_r]`` (all of time, a block of
  channels) and back. Gloo implements ``all_to_all_single`` on CPU, uneven splits included.
* halos (:func:`previous_positions`): the last positions of the ranks before this one, for short
  causal convolutions; an ``all_gather`` of every rank's tail.

Each op's backward is the adjoint exchange, so parameter gradients summed over ranks equal the
single-rank gradients. Only plain ``torch.distributed`` calls are used (isend / recv, all_to_all_single,
all_gather, all_reduce); the tests run them on gloo (CPU).

Every rank must use the result of every op here in its output, even where it needs none of it (rank 0
and the halo of the positions before the sequence): the op's backward is collective, and a rank whose
graph lacks it would leave the others waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.autograd import Function


@dataclass
class SequenceGroup:
    """This rank's place in the sequence: ``rank`` of ``world`` ranks of ``group`` (None = the world)."""

    group: dist.ProcessGroup | None
    rank: int
    world: int
    #: forward sends still in flight, with their buffers: waited for at the end of the forward
    pending: list = field(default_factory=list)

    @classmethod
    def of(cls, group: dist.ProcessGroup | None = None) -> SequenceGroup:
        """The calling rank's view of ``group``; torch.distributed must be initialised."""
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "sequence parallelism needs an initialised process group: call "
                "torch.distributed.init_process_group (e.g. backend='gloo' on CPU) on every rank first"
            )
        return cls(group, dist.get_rank(group), dist.get_world_size(group))

    def global_rank(self, group_rank: int) -> int:
        """The world rank of ``group_rank`` (send / recv address ranks of the default group)."""
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)

    def wait_pending(self) -> None:
        """Block until this rank's forward sends have been received."""
        for work, _buffer in self.pending:
            work.wait()
        self.pending.clear()


def even_splits(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal sizes, the larger ones first: ``even_splits(5, 2) == [3, 2]``."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


# Point-to-point tags: one per layer and direction, so that messages of different layers never match.
def _tag(layer: int, backward: bool) -> int:
    return 2 * layer + int(backward)


class _RecvFromPrevious(Function):
    """Forward: receive a flat tensor from rank ``r-1``. Backward: send its gradient back to ``r-1``."""

    @staticmethod
    def forward(ctx, anchor, numel, dtype, seq, layer):
        out = torch.empty(numel, dtype=dtype, device=anchor.device)
        dist.recv(out, src=seq.global_rank(seq.rank - 1), group=seq.group, tag=_tag(layer, False))
        ctx.seq, ctx.layer = seq, layer
        return out

    @staticmethod
    def backward(ctx, grad):
        seq = ctx.seq
        grad = grad.contiguous()
        work = dist.isend(grad, dst=seq.global_rank(seq.rank - 1), group=seq.group, tag=_tag(ctx.layer, True))

        # Not waited for here: rank r-1 posts the matching recv only when its own backward reaches this
        # layer, and blocking until then would keep this rank's backward from running ahead. The engine
        # calls this when the backward pass ends; the default argument keeps the buffer alive until then.
        def wait(buffer=grad):
            work.wait()

        torch.autograd.Variable._execution_engine.queue_callback(wait)
        return None, None, None, None, None


class _SendToNext(Function):
    """Forward: identity on ``carrier``, ships ``payload`` to rank ``r+1``. Backward: receives the payload's
    gradient from ``r+1``; ``carrier`` ties this node into the graph of the rank's own output."""

    @staticmethod
    def forward(ctx, carrier, payload, seq, layer):
        buffer = payload.contiguous()
        work = dist.isend(buffer, dst=seq.global_rank(seq.rank + 1), group=seq.group, tag=_tag(layer, False))
        seq.pending.append((work, buffer))
        ctx.seq, ctx.layer = seq, layer
        ctx.payload_shape, ctx.payload_dtype = payload.shape, payload.dtype
        return carrier.view_as(carrier)

    @staticmethod
    def backward(ctx, grad_carrier):
        seq = ctx.seq
        grad = torch.empty(ctx.payload_shape, dtype=ctx.payload_dtype, device=grad_carrier.device)
        dist.recv(grad, src=seq.global_rank(seq.rank + 1), group=seq.group, tag=_tag(ctx.layer, True))
        return grad_carrier, grad, None, None


def recv_from_previous(
    anchor: torch.Tensor, numel: int, dtype: torch.dtype, seq: SequenceGroup, layer: int
) -> torch.Tensor:
    """``[numel]`` received from rank ``r-1`` for ``layer``; its gradient is sent back in backward.

    The backward runs before the gradient of ``anchor`` is complete (``anchor`` gets none from it), which
    pins the order of the backward messages: pass the layer's input.
    """
    return _RecvFromPrevious.apply(anchor, numel, dtype, seq, layer)


def send_to_next(carrier: torch.Tensor, payload: torch.Tensor, seq: SequenceGroup, layer: int) -> torch.Tensor:
    """Send ``payload`` to rank ``r+1`` for ``layer``; returns ``carrier`` unchanged, wired so that backward
    receives the payload's gradient from ``r+1`` when the gradient of ``carrier`` arrives."""
    return _SendToNext.apply(carrier, payload, seq, layer)


class _AllToAll(Function):
    """``all_to_all_single`` of a flat tensor; the adjoint is the same exchange with the sizes swapped."""

    @staticmethod
    def forward(ctx, flat, send_sizes, recv_sizes, seq):
        out = flat.new_empty(sum(recv_sizes))
        dist.all_to_all_single(out, flat.contiguous(), recv_sizes, send_sizes, group=seq.group)
        ctx.sizes, ctx.seq = (send_sizes, recv_sizes), seq
        return out

    @staticmethod
    def backward(ctx, grad):
        send_sizes, recv_sizes = ctx.sizes
        out = grad.new_empty(sum(send_sizes))
        dist.all_to_all_single(out, grad.contiguous(), send_sizes, recv_sizes, group=ctx.seq.group)
        return out, None, None, None


def sequence_to_channels(x: torch.Tensor, splits: list[int], seq: SequenceGroup) -> torch.Tensor:
    """``x [B, T_l, C]`` (this rank's time slice) -> ``[B, T, splits[rank]]`` (all of time, this rank's channels).

    ``splits`` (one size per rank, summing to ``C``) cut the channels into contiguous blocks, block ``r``
    going to rank ``r``.
    """
    B, T_l, _ = x.shape
    n = B * T_l
    send = torch.cat([block.reshape(-1) for block in x.split(splits, dim=-1)])
    mine = splits[seq.rank]
    out = _AllToAll.apply(send, [n * c for c in splits], [n * mine] * seq.world, seq)
    # the blocks arrive in rank order, which is time order
    return out.view(seq.world, B, T_l, mine).transpose(0, 1).reshape(B, seq.world * T_l, mine)


def channels_to_sequence(x: torch.Tensor, splits: list[int], seq: SequenceGroup) -> torch.Tensor:
    """Inverse of :func:`sequence_to_channels`: ``[B, T, splits[rank]]`` -> ``[B, T_l, C]``."""
    B, T, c = x.shape
    T_l = T // seq.world
    n = B * T_l
    send = x.reshape(B, seq.world, T_l, c).transpose(0, 1).reshape(-1)
    out = _AllToAll.apply(send, [n * c] * seq.world, [n * s for s in splits], seq)
    blocks = out.split([n * s for s in splits])
    return torch.cat([block.view(B, T_l, s) for block, s in zip(blocks, splits)], dim=-1)


class _AllGather(Function):
    """``all_gather`` into ``[W, ...]``; the adjoint sums every rank's gradient of this rank's entry."""

    @staticmethod
    def forward(ctx, x, seq):
        out = x.new_empty(seq.world, *x.shape)
        dist.all_gather(list(out.unbind(0)), x.contiguous(), group=seq.group)
        ctx.seq = seq
        return out

    @staticmethod
    def backward(ctx, grad):
        # an all_reduce of the whole [W, ...] gradient: reduce_scatter is missing from gloo, and the
        # tensors gathered here (halos, sizes) are small
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.seq.group)
        return grad[ctx.seq.rank], None


def all_gather(x: torch.Tensor, seq: SequenceGroup) -> torch.Tensor:
    """Every rank's ``x`` (same shape on all ranks), stacked in rank order: ``[W, *x.shape]``; differentiable."""
    return _AllGather.apply(x, seq)


def previous_positions(x: torch.Tensor, width: int, seq: SequenceGroup) -> torch.Tensor:
    """The ``width`` positions just before this rank's slice ``x [B, T_l, C]``: ``[B, width, C]``.

    Positions before the start of the sequence are zeros. Works for any ``T_l``, also ``T_l < width``
    (the halo then spans several ranks).
    """
    B, _, C = x.shape
    tails = all_gather(x[:, -width:], seq)  # [W, B, n, C], n = min(width, T_l)
    # zeros, then every tail in time order; this rank's halo ends where its slice starts. All the tails
    # stay in the graph, also on rank 0, so that every rank runs the collective backward of the gather.
    padded = torch.cat([x.new_zeros(B, width, C), *tails.unbind(0)], dim=1)
    end = width + seq.rank * tails.shape[2]
    return padded[:, end - width : end]
