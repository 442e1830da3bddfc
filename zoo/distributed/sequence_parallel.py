"""Sequence (context) parallelism: one long sequence split over the ranks of a process group.

Rank ``r`` of ``W`` holds the contiguous slice ``x[:, r T_l : (r+1) T_l]`` (``T_l = T / W``) of the
residual stream ``[B, T, D]`` (or of the token ids). :func:`sequence_parallel_forward` returns exactly
this rank's slice of what ``Backbone.forward`` gives on the whole sequence, and its backward gives the
same gradients: input gradients per slice, parameter gradients once summed over the ranks
(:func:`all_reduce_gradients`). Norms, residuals, MLPs, embeddings and the LM head act per position and
run on the local slice; only the mixers talk to other ranks:

* **recurrent mixers** (mamba, mamba2, mlstm, slstm) pass their state along the ranks. Rank ``r``
  receives the final state of rank ``r-1`` (short-conv window and recurrent state: the whole
  ``forward(x, state)`` state), runs its slice from it and sends its own final state to ``r+1``. In
  backward the gradient of the received state goes back to ``r-1``, which needs it to finish its own
  backward of that layer.
* **hyena** is a depthwise long convolution, so its channels are independent: after the local input
  projection and short convolution (its ``W_s - 1`` inputs before the slice come from the previous ranks,
  a halo), one all-to-all turns ``[B, T_l, d]`` into ``[B, T, d / W]``, the long convolution runs over
  the whole sequence for this rank's channels, and a second all-to-all turns it back.
* **attention** is resharded by heads (the Ulysses scheme): ``q, k, v`` are projected and rotated
  locally at their global positions, one all-to-all gives each rank the whole sequence for ``H / W``
  heads, attention runs there, and a second all-to-all brings the output back to the time slice.

Cost. State passing is serial: rank ``r`` starts a recurrent layer when rank ``r-1`` has finished it.
Over a stack of ``L`` recurrent layers this is a pipeline (``r`` runs layer ``l`` while ``r+1`` runs
layer ``l-1``), so a forward or backward takes about ``L + W - 1`` slice-layer times instead of ``L W``;
a single recurrent layer gets no speed-up, only its memory split ``W`` ways. A hyena or attention layer
is a barrier for all ranks and drains the pipeline (``W - 1`` more slice-layer times for each). The
all-to-alls move ``2 (order-1) d`` (hyena) and ``(2H + 2Hkv) Dh`` (attention) values per position.

No deadlock. Every rank runs the layers in the same order, so collectives match. Forward messages go
only from ``r`` to ``r+1`` and are sent without blocking; rank 0 never waits on a receive, and rank
``r`` waits only for ranks before it. Backward messages go only from ``r+1`` to ``r``; rank ``W-1`` never
waits, and rank ``r`` only for ranks after it. Each layer's state is received (and its gradient sent back)
before the layer's input gradient is complete, so every rank handles the layers strictly in order
(ascending in forward, descending in backward) and nothing waits in a cycle. Sends are ``isend``: a
gloo ``send`` blocks until the peer posts its receive, which would turn the pipeline into lock-step.
Every rank must run backward through its own output (a loss on every rank): a rank that skips it leaves
its neighbours waiting for gradients that never come.

Not supported: bidirectional layers and reverse-complement-equivariant models (NotImplementedError),
more ranks than attention heads or hyena channels (ValueError), continuing from a state, and activation
checkpointing around these calls (a recomputed forward would send its states a second time).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from zoo.backbone import Backbone, Block
from zoo.distributed.comm import (
    SequenceGroup,
    all_gather,
    channels_to_sequence,
    even_splits,
    previous_positions,
    recv_from_previous,
    send_to_next,
    sequence_to_channels,
)
from zoo.kernels.long_conv import long_conv_chunk
from zoo.layers.attention import Attention
from zoo.layers.base import check_sequence_input
from zoo.layers.bidirectional import BidirectionalMixer
from zoo.layers.hyena import Hyena
from zoo.model import ModelOutput, SeqModel


def split_sequence(x: torch.Tensor, group: dist.ProcessGroup | None = None, dim: int = 1) -> torch.Tensor:
    """This rank's contiguous slice of a whole sequence ``x`` along ``dim`` (``T`` must divide by ``W``)."""
    seq = SequenceGroup.of(group)
    length = x.shape[dim]
    if length % seq.world:
        raise ValueError(
            f"a sequence of T={length} positions cannot be split evenly over {seq.world} ranks; "
            f"pad or crop it to a multiple of {seq.world}"
        )
    return x.narrow(dim, seq.rank * (length // seq.world), length // seq.world)


def gather_sequence(x: torch.Tensor, group: dist.ProcessGroup | None = None, dim: int = 1) -> torch.Tensor:
    """Inverse of :func:`split_sequence`: every rank's slice concatenated along ``dim``; differentiable."""
    seq = SequenceGroup.of(group)
    return torch.cat(all_gather(x, seq).unbind(0), dim=dim)


def sequence_parallel_forward(
    backbone: Backbone, x: torch.Tensor, group: dist.ProcessGroup | None = None
) -> torch.Tensor:
    """Run ``backbone`` on a sequence split over the ranks of ``group``: ``x [B, T_l, D]`` -> ``h [B, T_l, D]``.

    Every rank passes its own slice (rank ``r``: positions ``r T_l .. (r+1) T_l - 1``, the same ``B`` and
    ``T_l`` everywhere) and gets its slice of ``backbone(x_whole)[0]``. See the module docstring for how
    each mixer is split, the cost, and the rule that every rank must run the backward.
    """
    _check_layers(backbone)
    check_sequence_input(x, backbone.config.d_model, "sequence_parallel_forward")
    seq = SequenceGroup.of(group)
    _check_lengths(backbone, x, seq)
    # All ranks must agree on whether a backward will follow (the state gradients are messages), so this
    # depends only on what every rank shares: grad mode, the model and whether the input wants a gradient.
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in backbone.parameters()))
    for index, block in enumerate(backbone.layers):
        x = _LAYER_FORWARDS[block.kind](block, x, seq, index, needs_grad)
    seq.wait_pending()
    return backbone.norm_f(x.to(backbone.norm_f.weight.dtype))


def sequence_parallel_model_forward(
    model: SeqModel,
    input_ids: torch.Tensor | None = None,
    *,
    inputs_embeds: torch.Tensor | None = None,
    group: dist.ProcessGroup | None = None,
) -> ModelOutput:
    """``SeqModel.forward`` on this rank's slice: ``input_ids [B, T_l]`` (or ``inputs_embeds [B, T_l, D]``).

    Returns a ``ModelOutput`` with the local ``hidden [B, T_l, D]`` and ``logits [B, T_l, V]`` and no state.
    """
    if model.config.rc_equivariant:
        raise NotImplementedError(
            "sequence parallelism of a reverse-complement-equivariant model is not implemented: its reverse "
            "strand reads the sequence right to left; run it on one rank"
        )
    _check_layers(model.backbone)
    # SeqModel's own input checks and embedding
    x = model._embed(input_ids, inputs_embeds)
    hidden = sequence_parallel_forward(model.backbone, x, group)
    logits = None if model.lm_head is None else model.lm_head(hidden)
    return ModelOutput(hidden=hidden, logits=logits, state=None)


def all_reduce_gradients(module: nn.Module, group: dist.ProcessGroup | None = None) -> None:
    """Sum the gradients of ``module``'s trainable parameters over ``group`` (in one all-reduce).

    Each rank's backward gives the gradient of its own slice; their sum is the gradient of the whole
    sequence. (DDP over the same ranks would average them instead, dividing by ``W``.) A missing
    gradient counts as zeros, so every rank sends the same buffer.
    """
    params = [p for p in {id(p): p for p in module.parameters()}.values() if p.requires_grad]
    if not params:
        return
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, group=group)
    for p, g in zip(params, flat.split([g.numel() for g in grads])):
        if p.grad is None:
            p.grad = g.view_as(p).clone()
        else:
            p.grad.copy_(g.view_as(p))


def _check_layers(backbone: Backbone) -> None:
    """Raise before any communication for layers that cannot be split (the same on every rank)."""
    for index, block in enumerate(backbone.layers):
        if isinstance(block.mixer, BidirectionalMixer):
            raise NotImplementedError(
                f"layer {index} ({block.kind}) is bidirectional: sequence parallelism of bidirectional "
                "backbones is not implemented; run it on one rank or use a causal backbone"
            )
        if block.kind not in _LAYER_FORWARDS:
            raise NotImplementedError(f"layer {index}: no sequence-parallel form for mixer kind {block.kind!r}")


def _check_lengths(backbone: Backbone, x: torch.Tensor, seq: SequenceGroup) -> None:
    """Every rank must hold ``T / W`` positions of the same batch; checked collectively, so all ranks raise."""
    sizes = torch.tensor([x.shape[0], x.shape[1]], device=x.device)
    everyone = [torch.empty_like(sizes) for _ in range(seq.world)]
    dist.all_gather(everyone, sizes, group=seq.group)
    everyone = [tuple(s.tolist()) for s in everyone]
    if len(set(everyone)) > 1:
        raise ValueError(
            f"every rank must hold T / W positions of the same batch, got (B, T_local) per rank = {everyone}; "
            "split the sequence with split_sequence (T must be divisible by the world size)"
        )
    T = x.shape[1] * seq.world
    for index, block in enumerate(backbone.layers):
        mixer = block.mixer
        if isinstance(mixer, Hyena):
            if T > mixer.l_max:
                raise ValueError(
                    f"layer {index}: the whole sequence has T={T} positions but Hyena's filter has "
                    f"l_max={mixer.l_max} taps; build the layer with l_max >= {T}"
                )
            if mixer.d_model < seq.world:
                raise ValueError(
                    f"layer {index}: Hyena's {mixer.d_model} channels cannot be shared by {seq.world} ranks"
                )
        if isinstance(mixer, Attention) and mixer.num_heads < seq.world:
            raise ValueError(
                f"layer {index}: attention with {mixer.num_heads} heads cannot be split over {seq.world} ranks "
                f"(one head at least per rank); use at most {mixer.num_heads} ranks"
            )


def _recurrent_block(block: Block, x: torch.Tensor, seq: SequenceGroup, index: int, needs_grad: bool) -> torch.Tensor:
    """A block whose mixer carries a state: receive it from rank r-1, run, send the final state to r+1."""
    if needs_grad and not x.requires_grad:
        # the state's gradient is a message rank r-1 waits for: it must be computed even when nothing
        # before this block is trainable
        x = x.detach().requires_grad_()
    template = block.mixer.init_state(x.shape[0], device=x.device)
    state = None
    if seq.rank > 0:
        numel, dtype = _packed_size(template)
        state = _unpack(recv_from_previous(x, numel, dtype, seq, index), template)
    x, final = block(x, state)
    if seq.rank < seq.world - 1:
        x = send_to_next(x, _pack(final, template, index), seq, index)
    return x


def _packed_size(template: Any) -> tuple[int, torch.dtype]:
    """Elements and dtype of a state sent as one flat tensor (one message per layer, not per tensor)."""
    return sum(t.numel() for t in template), functools.reduce(torch.promote_types, (t.dtype for t in template))


def _pack(state: Any, template: Any, index: int) -> torch.Tensor:
    shapes = [tuple(t.shape) for t in state]
    if shapes != [tuple(t.shape) for t in template]:
        raise RuntimeError(f"layer {index}: the final state has shapes {shapes}, init_state gives others")
    _, dtype = _packed_size(template)
    return torch.cat([t.reshape(-1).to(dtype) for t in state])


def _unpack(flat: torch.Tensor, template: Any) -> Any:
    pieces = flat.split([t.numel() for t in template])
    return type(template)._make(p.view(t.shape).to(t.dtype) for p, t in zip(pieces, template))


def _resharded_block(mixer_forward: Callable[[Any, torch.Tensor, SequenceGroup], torch.Tensor]):
    """A block whose mixer reshards: the norm, residual and MLP are the block's own, run on the slice."""

    def run(block: Block, x: torch.Tensor, seq: SequenceGroup, index: int, needs_grad: bool) -> torch.Tensor:
        y = mixer_forward(block.mixer, block.norm(x.to(block.norm.weight.dtype)), seq)
        # Block's own residual and MLP, so that both paths share one definition
        return block._add_mixer_output(x, y)

    return run


def hyena_forward(hyena: Hyena, x: torch.Tensor, seq: SequenceGroup) -> torch.Tensor:
    """``Hyena.forward`` from the start of a sequence split over ranks: ``x [B, T_l, d] -> y [B, T_l, d]``.

    The long convolutions run on ``[B, T, d_r]``, all of time for this rank's block of ``d_r ~ d / W``
    channels (two all-to-alls each); everything else is per position except the short convolution, which
    gets the ``W_s - 1`` inputs before the slice from the previous ranks.
    """
    _, T_l, d = x.shape
    u = hyena.in_projection(x)  # [B, T_l, (order+1) d]
    width = hyena.config.short_filter_order - 1
    halo = previous_positions(u, width, seq).transpose(1, 2) if width else None  # [B, (order+1) d, W_s-1]
    (*xs, v), _ = hyena.short_convolution(u, halo)
    splits = even_splits(d, seq.world)
    lo = sum(splits[: seq.rank])
    hi = lo + splits[seq.rank]
    # as Hyena.forward from an empty state: T+1 taps, of which the convolution reads the first T
    k = hyena.long_filters(min(T_l * seq.world + 1, hyena.l_max))[:, lo:hi]  # [order-1, d_r, taps]
    for o, (x_i, bias) in enumerate(zip(reversed(xs[1:]), hyena.long_conv_biases())):
        v = hyena.dropout(v * x_i)
        vc = sequence_to_channels(v, splits, seq)  # [B, T, d_r]
        vc, _ = long_conv_chunk(vc, k[o], None if bias is None else bias[lo:hi])
        v = channels_to_sequence(vc, splits, seq)  # [B, T_l, d]
    return hyena.out_proj(v * xs[0])


def _heads(t: torch.Tensor, splits: list[int]) -> list[torch.Tensor]:
    """``t [B, h, T_l, Dh]`` cut into head blocks, each laid out ``[B, T_l, h_r Dh]``."""
    return [block.transpose(1, 2).flatten(2) for block in t.split(splits, dim=1)]


def attention_forward(attn: Attention, x: torch.Tensor, seq: SequenceGroup) -> torch.Tensor:
    """``Attention.forward`` from an empty cache, sequence split over ranks: ``x [B, T_l, D] -> y [B, T_l, D]``.

    Heads are resharded (Ulysses): each rank attends over the whole sequence with its block of query
    heads and the key/value heads they read. With grouped-query attention whose kv heads do not split
    evenly, every query head gets its own copy of its kv head before the exchange.
    """
    T_l = x.shape[1]
    H, Hkv, Dh = attn.num_heads, attn.num_kv_heads, attn.head_dim
    q, k, v = attn.project_qkv(x, seq.rank * T_l)  # [B, H, T_l, Dh], [B, Hkv, T_l, Dh] x 2
    if H % seq.world or Hkv % seq.world:
        # query head h reads kv head h // (H / Hkv): with even blocks of both, the kv heads a rank needs
        # are its own block; otherwise repeat them so that they travel with their query heads
        k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
    q_splits, kv_splits = even_splits(H, seq.world), even_splits(k.shape[1], seq.world)
    # [q | k | v] of the heads bound for each rank side by side: one all-to-all moves all three
    packed = torch.cat(
        [torch.cat(parts, dim=-1) for parts in zip(_heads(q, q_splits), _heads(k, kv_splits), _heads(v, kv_splits))],
        dim=-1,
    )
    sizes = [(hq + 2 * hkv) * Dh for hq, hkv in zip(q_splits, kv_splits)]
    mine = sequence_to_channels(packed, sizes, seq)  # [B, T, (hq + 2 hkv) Dh]
    hq, hkv = q_splits[seq.rank], kv_splits[seq.rank]
    q, k, v = (t.unflatten(-1, (-1, Dh)).transpose(1, 2) for t in mine.split([hq * Dh, hkv * Dh, hkv * Dh], dim=-1))
    if hkv != hq:
        k, v = k.repeat_interleave(hq // hkv, dim=1), v.repeat_interleave(hq // hkv, dim=1)
    T = T_l * seq.world
    o = F.scaled_dot_product_attention(q, k, v, is_causal=attn.causal and T > 1, scale=attn.config.softmax_scale)
    o = channels_to_sequence(o.transpose(1, 2).flatten(2), [h * Dh for h in q_splits], seq)  # [B, T_l, H Dh]
    return attn.out_proj(o)


#: Block kind -> how its layer runs on a split sequence.
_LAYER_FORWARDS: dict[str, Callable[[Block, torch.Tensor, SequenceGroup, int, bool], torch.Tensor]] = {
    "mamba": _recurrent_block,
    "mamba2": _recurrent_block,
    "mlstm": _recurrent_block,
    "slstm": _recurrent_block,
    "hyena": _resharded_block(hyena_forward),
    "attention": _resharded_block(attention_forward),
}
