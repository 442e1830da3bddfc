"""Chromosome-scale inference: per-base log-likelihoods and embeddings, chunk by chunk with the state carried.

DNA is the main user (whole chromosomes); protein models use the same functions for sequences longer than
one pass should hold (a 5,000-residue protein, or homologs concatenated as context): the tokenizer follows
the model's vocabulary, and "base" below reads "residue" for them.

A causal seqzoo model carries one recurrent state per layer, so ``forward(chunk, state)`` over consecutive
chunks gives the same outputs as one pass over the whole sequence, while activations only ever span one
chunk: peak memory depends on ``chunk_size``, not on the sequence length (the token ids and the returned
per-base array are the only ``O(L)`` buffers, a few bytes per base).

Which models stream exactly, with bounded memory:

* Mamba (``M``), Mamba-2 (``S``), mLSTM (``m``), sLSTM (``s``): fixed-size states, exact.
* Hyena (``H``): the state keeps the last ``l_max - 1`` inputs of each long convolution (bounded by
  ``l_max``, not by the sequence), and one ``forward`` takes at most ``l_max`` tokens, so chunks are
  capped at the smallest ``l_max`` of the model. Up to ``l_max`` tokens chunked == one pass exactly;
  beyond it the filter sees the last ``l_max`` inputs (a sliding window), identically for every chunking.
* Attention (``A``): its KV cache grows with every token (``O(L)`` memory), and bidirectional or
  reverse-complement-equivariant models read the future, so they have no streaming form at all. These
  raise a ``ValueError`` unless ``independent_chunks=True``: each chunk is then run on its own with
  ``overlap`` bases of context around it — an approximation that is exact only when the model looks no
  further than ``overlap`` bases.

Scores are natural-log probabilities (nats) unless ``unit="bits"``. The first base is scored against a
``[BOS]`` token placed before the sequence; seqzoo's DNA recipes train on windows without one (their
first base is never a target), so that one score reflects an untrained context — pass ``bos_token=None``
to leave it NaN instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch

from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.vocab import DNA_TOKENS, PROTEIN_TOKENS

#: Mixer kinds whose state does not grow with the sequence (Hyena's is capped at ``l_max``).
STREAMABLE_KINDS = frozenset({"hyena", "mamba", "mamba2", "mlstm", "slstm"})

_VOCAB_TOKENS = {"dna": DNA_TOKENS, "protein": PROTEIN_TOKENS}
_TOKENIZERS = {"dna": DNATokenizer, "protein": ProteinTokenizer}


def score_sequence(
    model,
    sequence: Any,
    chunk_size: int = 65536,
    *,
    unit: Literal["nats", "bits"] = "nats",
    bos_token: str | None = "[BOS]",
    independent_chunks: bool = False,
    overlap: int = 0,
    tokenizer: DNATokenizer | ProteinTokenizer | None = None,
) -> np.ndarray:
    """Log-probability of each base given the bases before it: float32 ``[L]`` (<= 0, nats or bits).

    ``sequence`` is a str, bytes, ``Bio.Seq.Seq`` or ``Bio.SeqRecord.SeqRecord`` of ACGTN (either case) for
    a DNA model, of amino acids for a protein model; other characters are an error from the tokenizer. DNA
    positions whose base is N score NaN (N is no target, as in training). See the module docstring for which
    models stream and for ``independent_chunks``.
    """
    if unit not in ("nats", "bits"):
        raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")
    _check_causal_lm(model)
    ids = _encode(sequence, tokenizer, model)
    tokens = _VOCAB_TOKENS[model.config.vocab]
    index = {token: i for i, token in enumerate(tokens)}
    # inputs[t] predicts ids[t]: the sequence shifted right by one, behind the BOS token.
    if bos_token is not None and bos_token not in index:
        raise ValueError(f"bos_token {bos_token!r} is not a vocabulary token; use one of {tokens[:7]}")
    # Without a BOS the first input is a placeholder whose prediction is discarded (NaN) below.
    bos = index[bos_token] if bos_token is not None else index["[PAD]"]
    inputs = np.concatenate([[bos], ids[:-1]])
    scores = np.empty(len(ids), dtype=np.float32)
    for start, stop, logits in _run(model, inputs, chunk_size, independent_chunks, overlap, right_context=False):
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # [C, V]
        target = torch.from_numpy(ids[start:stop]).to(log_probs.device)
        scores[start:stop] = log_probs.gather(1, target[:, None])[:, 0].cpu().numpy()
    if model.config.vocab == "dna":
        scores[ids == index["N"]] = np.nan
    if bos_token is None:
        scores[0] = np.nan
    return scores / np.float32(math.log(2)) if unit == "bits" else scores


def embed_sequence(
    model,
    sequence: Any,
    chunk_size: int = 65536,
    *,
    pooling: Literal["mean", "none"] = "mean",
    independent_chunks: bool = False,
    overlap: int = 0,
    tokenizer: DNATokenizer | ProteinTokenizer | None = None,
) -> np.ndarray:
    """Final hidden states of the bases: float32 ``[L, D]`` (``pooling="none"``) or their mean ``[D]``.

    Hidden state ``t`` has read bases ``0..t`` (causal models; no BOS is added). With ``pooling="mean"``
    the sum is accumulated chunk by chunk (float64), so nothing of size ``L x D`` is ever held. With
    ``independent_chunks=True`` bidirectional / RC-equivariant models get ``overlap`` bases on both sides.
    """
    if pooling not in ("mean", "none"):
        raise ValueError(f"pooling must be 'mean' or 'none', got {pooling!r}")
    ids = _encode(sequence, tokenizer, model)
    width = model.d_model * (2 if model.config.rc_equivariant else 1)
    total = np.zeros(width, dtype=np.float64)
    hidden = np.empty((len(ids), width), dtype=np.float32) if pooling == "none" else None
    both_sides = not model.backbone.causal or model.config.rc_equivariant
    for start, stop, chunk in _run(model, ids, chunk_size, independent_chunks, overlap, right_context=both_sides,
                                   want="hidden"):  # fmt: skip
        chunk = chunk.float().cpu().numpy()
        if hidden is None:
            total += chunk.sum(0, dtype=np.float64)
        else:
            hidden[start:stop] = chunk
    return hidden if hidden is not None else (total / len(ids)).astype(np.float32)


def streaming_chunk_limit(model) -> int | None:
    """The most tokens one streamed ``forward`` may take (the smallest Hyena ``l_max``), or None: no limit."""
    # Read the config, not the mixer: a bidirectional wrapper keeps the Hyena's config but not its attributes.
    limits = [layer.mixer.config.l_max for layer in model.backbone.layers if layer.kind == "hyena"]
    return min(limits) if limits else None


def check_streamable(model) -> None:
    """Raise a ``ValueError`` saying why, unless ``model`` streams exactly with memory bounded by the chunk."""
    alternative = (
        "use a model without attention (Mamba, Mamba-2, mLSTM, sLSTM, Hyena layers), or score chunks "
        "independently with independent_chunks=True, overlap=N bases of context (approximate)"
    )
    if model.config.rc_equivariant:
        raise ValueError(f"this model is reverse-complement equivariant: it reads both strands, so it cannot "
                         f"carry a state from chunk to chunk; {alternative}")  # fmt: skip
    if not model.backbone.causal:
        raise ValueError(f"this model is bidirectional: each position sees the future, so it cannot carry a "
                         f"state from chunk to chunk; {alternative}")  # fmt: skip
    kinds = sorted(set(model.config.backbone.kinds) - STREAMABLE_KINDS)
    if kinds:
        raise ValueError(f"this model has {', '.join(kinds)} layers (pattern {model.config.backbone.pattern!r}), "
                         f"whose KV cache grows with every token, so memory is not bounded by the chunk size; "
                         f"{alternative}")  # fmt: skip


def sequence_text(sequence: Any) -> str | bytes:
    """The characters of a str, bytes, ``Bio.Seq.Seq`` or ``Bio.SeqRecord.SeqRecord``."""
    if isinstance(sequence, (str, bytes)):
        return sequence
    # A SeqRecord wraps its Seq in ``.seq``; a Seq (and MutableSeq) converts to its bytes without a copy to str.
    inner = getattr(sequence, "seq", sequence)
    try:
        return bytes(inner)
    except TypeError:
        raise TypeError(f"sequence must be a str, bytes, Bio.Seq or SeqRecord, got {type(sequence).__name__}") from None


def _encode(sequence: Any, tokenizer: DNATokenizer | ProteinTokenizer | None, model) -> np.ndarray:
    vocab = model.config.vocab
    if vocab not in _TOKENIZERS:
        raise ValueError(f"this model has vocab={vocab!r}: only DNA and protein models read sequences here")
    if isinstance(sequence, np.ndarray):  # token ids already (zoo.embedding passes them)
        ids = sequence.astype(np.int64, copy=False)
    else:
        ids = (tokenizer or _TOKENIZERS[vocab]()).encode(sequence_text(sequence))
    if len(ids) == 0:
        raise ValueError("the sequence is empty: there is nothing to score or embed")
    return ids


def _check_causal_lm(model) -> None:
    if not model.backbone.causal or model.config.rc_equivariant:
        raise ValueError(
            "score_sequence gives next-base log-probabilities, which needs a causal language model; this one "
            "reads both directions (bidirectional / RC-equivariant): use embed_sequence, or a causal model"
        )


def _run(
    model,
    ids: np.ndarray,
    chunk_size: int,
    independent_chunks: bool,
    overlap: int,
    right_context: bool,
    want: Literal["logits", "hidden"] = "logits",
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, stop, out [stop - start, V or D])`` for consecutive chunks of ``ids``, under inference mode."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if overlap and not independent_chunks:
        raise ValueError("overlap= only applies with independent_chunks=True (a streamed state already sees "
                         "every earlier base)")  # fmt: skip
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if independent_chunks:
                yield from _independent(model, ids, chunk_size, overlap, right_context, want, device)
            else:
                yield from _streamed(model, ids, chunk_size, want, device)
    finally:
        model.train(was_training)


def _streamed(model, ids, chunk_size, want, device):
    check_streamable(model)
    limit = streaming_chunk_limit(model)
    size = chunk_size if limit is None else min(chunk_size, limit)
    state = None
    for start in range(0, len(ids), size):
        stop = min(start + size, len(ids))
        chunk = torch.from_numpy(ids[start:stop]).to(device)[None]
        out = model(chunk, state=state)
        state = out.state
        yield start, stop, getattr(out, want)[0]


def _independent(model, ids, chunk_size, overlap, right_context, want, device):
    limit = streaming_chunk_limit(model)
    window = chunk_size + overlap * (2 if right_context else 1)
    if limit is not None and window > limit:
        raise ValueError(f"chunk_size + overlap context = {window} tokens exceeds the Hyena filter length "
                         f"l_max={limit}; lower chunk_size or overlap")  # fmt: skip
    for start in range(0, len(ids), chunk_size):
        stop = min(start + chunk_size, len(ids))
        left = max(0, start - overlap)
        right = min(len(ids), stop + overlap) if right_context else stop
        out = model(torch.from_numpy(ids[left:right]).to(device)[None])
        yield start, stop, getattr(out, want)[0, start - left : stop - left]
