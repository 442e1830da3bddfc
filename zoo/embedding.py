"""Fixed-size embeddings of many sequences from a ``SeqModel`` (what ``SeqModel.embed`` runs).

Tensor contract: ``embed(model, N sequences) -> [N, W]`` float32 numpy (``W = d_model``, ``2 * d_model`` for
reverse-complement-equivariant models), or a list of ``[T_i, W]`` arrays with ``pooling=None``.

Pooling of the final hidden states ``h [T, W]`` of one sequence:

* ``"mean"``: the average over its ``T`` positions (padding excluded);
* ``"last"``: ``h[T - 1]``; for a causal model the only position that has read the whole sequence;
* ``"cls"``: ``h[0]``. No ``[CLS]`` token is prepended: pass sequences that start with one (token ids) if
  the model was trained that way. For a causal model ``h[0]`` has read one token only.

Batching: sequences are sorted by length and batched with their neighbours, so little padding is computed.
A causal model's output at position ``t`` depends on positions ``<= t`` only, so right padding cannot change
the real positions and the padded positions are dropped by the mask before pooling: a padded batch gives the
unpadded sequence's embedding. A bidirectional (or reverse-complement-equivariant) model reads every position
from both sides, and seqzoo's mixers take no attention mask, so padding would leak into every hidden state:
such models are only ever batched with sequences of exactly the same length.

Sequences longer than ``model.config.max_seq_len`` are an error unless ``allow_longer=True``; they then go
through ``zoo.domains.genomics.inference.embed_sequence`` one at a time, chunk by chunk with the recurrent
state carried (exact, memory bounded by the chunk), which needs a causal, streamable model. Hyena layers
see at most their filter length ``l_max`` of context there (a sliding window past it; see that module).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch

from zoo.domains.genomics.inference import check_streamable, embed_sequence
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.model import VOCABULARIES, SeqModel

Pooling = Literal["mean", "last", "cls"]
POOLINGS = ("mean", "last", "cls", None)
#: Vocabulary name -> tokenizer that strings are encoded with (default policies: see each tokenizer).
_TOKENIZERS = {"dna": DNATokenizer, "protein": ProteinTokenizer}


def embed(
    model: SeqModel,
    seqs: str | Sequence[str] | Sequence[np.ndarray] | np.ndarray | torch.Tensor,
    pooling: Pooling | None = "mean",
    batch_size: int = 32,
    device: torch.device | str | None = None,
    allow_longer: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Embeddings ``[N, W]`` float32 of ``N`` sequences (a list of ``[T_i, W]`` arrays when ``pooling=None``).

    ``seqs``: strings (tokenised with the model vocabulary's tokenizer; a single string is a list of one),
    or token ids: a list of 1-D integer arrays / tensors, or one ``[N, T]`` array / tensor. ``device``: the
    model is moved there (and stays, as ``model.to`` would); None runs where the model is. The model runs
    in eval mode under ``torch.inference_mode`` and gets its training flag back afterwards.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = token_ids(model, seqs)
    if not ids:
        return [] if pooling is None else np.zeros((0, _width(model)), dtype=np.float32)
    long = [i for i, x in enumerate(ids) if len(x) > model.config.max_seq_len]
    if long and not allow_longer:
        i = long[0]
        raise ValueError(
            f"sequence {i} has {len(ids[i])} tokens, more than the model's max_seq_len={model.config.max_seq_len} "
            f"({len(long)} sequences are longer); pass allow_longer=True to stream them chunk by chunk "
            "(causal streamable models only), or cut them first"
        )
    if long:
        _check_can_stream(model, long[0], len(ids[long[0]]))
    if device is not None:
        model.to(device)
    out: list[np.ndarray | None] = [None] * len(ids)
    short = [i for i in range(len(ids)) if len(ids[i]) <= model.config.max_seq_len]
    with evaluating(model):
        for batch in length_batches([len(ids[i]) for i in short], batch_size, pads_safely(model)):
            rows = [short[j] for j in batch]
            for i, pooled in zip(rows, _embed_batch(model, [ids[i] for i in rows], pooling)):
                out[i] = pooled
        for i in long:
            out[i] = _embed_long(model, ids[i], pooling)
    return out if pooling is None else np.stack(out).astype(np.float32, copy=False)


@contextmanager
def evaluating(model: SeqModel) -> Iterator[None]:
    """``model`` in eval mode under ``torch.inference_mode``; its training flag is restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def pads_safely(model: SeqModel) -> bool:
    """True when right padding leaves the real positions' outputs unchanged (causal, single-strand models)."""
    return model.backbone.causal and not model.config.rc_equivariant


def length_batches(lengths: Sequence[int], batch_size: int, mixed_lengths: bool) -> list[list[int]]:
    """Indices into ``lengths`` grouped in batches of at most ``batch_size``, longest first.

    Neighbours in length order share a batch, so padding is small; with ``mixed_lengths=False`` a batch only
    holds sequences of one length (for models that padding would change).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    if mixed_lengths:
        groups = [order]
    else:
        for i in order:
            if groups and lengths[groups[-1][0]] == lengths[i]:
                groups[-1].append(i)
            else:
                groups.append([i])
    return [group[s : s + batch_size] for group in groups for s in range(0, len(group), batch_size)]


def pad_id(model: SeqModel) -> int:
    """Token id used for right padding: ``[PAD]`` of seqzoo vocabularies, 0 for a foreign one.

    Its value never matters for a causal model (later positions are not read by earlier ones); it only has
    to be a valid id.
    """
    vocab = model.config.vocab
    return VOCABULARIES[vocab].index("[PAD]") if vocab in VOCABULARIES else 0


def pad_batch(model: SeqModel, ids: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``[B, T]`` long ids and ``[B, T]`` bool mask (True on real tokens), on the model's device."""
    device = next(model.parameters()).device
    width = max(len(x) for x in ids)
    batch = np.full((len(ids), width), pad_id(model), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=bool)
    for row, x in enumerate(ids):
        batch[row, : len(x)] = x
        mask[row, : len(x)] = True
    return torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device)


def token_ids(model: SeqModel, seqs: Any) -> list[np.ndarray]:
    """The inputs as a list of 1-D int64 id arrays, each checked non-empty and inside the vocabulary."""
    vocab = model.config.vocab
    if vocab is None:
        raise ValueError("this model has no vocabulary (vocab=None): it embeds inputs_embeds, not sequences")
    if isinstance(seqs, (str, bytes)):
        seqs = [seqs]
    elif isinstance(seqs, (np.ndarray, torch.Tensor)):
        if seqs.ndim not in (1, 2):
            raise ValueError(f"token ids must be [T] or [N, T], got shape {tuple(seqs.shape)}")
        seqs = [seqs] if seqs.ndim == 1 else list(seqs)
    seqs = list(seqs)
    tokenizer = _TOKENIZERS[vocab]() if vocab in _TOKENIZERS else None
    n_tokens = model.config.n_tokens
    out = []
    for i, seq in enumerate(seqs):
        if isinstance(seq, (str, bytes)):
            if tokenizer is None:
                raise NotImplementedError(
                    f"seqzoo has no tokenizer for the {vocab!r} vocabulary yet: pass token ids (a list of 1-D "
                    "integer arrays or tensors) instead of strings"
                )
            try:
                ids = tokenizer.encode(seq)
            except ValueError as error:
                raise ValueError(f"sequence {i}: {error}") from None
        else:
            ids = _as_ids(seq, i)
        if len(ids) == 0:
            raise ValueError(f"sequence {i} is empty: there is nothing to embed or score")
        if ids.min() < 0 or ids.max() >= n_tokens:
            bad = int(ids[(ids < 0) | (ids >= n_tokens)][0])
            raise ValueError(f"sequence {i} has token id {bad}, outside the {vocab} vocabulary [0, {n_tokens})")
        out.append(ids)
    return out


def _width(model: SeqModel) -> int:
    return model.d_model * (2 if model.config.rc_equivariant else 1)


def _as_ids(seq: Any, index: int) -> np.ndarray:
    if isinstance(seq, torch.Tensor):
        seq = seq.detach().cpu().numpy()
    ids = np.asarray(seq)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise TypeError(
            f"sequence {index} must be a string or a 1-D array of integer token ids, got "
            f"{type(seq).__name__} with shape {ids.shape} and dtype {ids.dtype}"
        )
    return ids.astype(np.int64)


def _embed_batch(model: SeqModel, ids: list[np.ndarray], pooling: Pooling | None) -> list[np.ndarray]:
    batch, mask = pad_batch(model, ids)
    hidden = model(batch).hidden.float()  # [B, T, W]
    lengths = mask.sum(1)  # [B]
    if pooling is None:
        return [h[:n].cpu().numpy() for h, n in zip(hidden, lengths.tolist())]
    if pooling == "mean":
        pooled = (hidden * mask[..., None]).sum(1) / lengths[:, None]
    elif pooling == "last":
        pooled = hidden[torch.arange(len(ids), device=hidden.device), lengths - 1]
    else:
        pooled = hidden[:, 0]
    return list(pooled.cpu().numpy())


def _check_can_stream(model: SeqModel, index: int, length: int) -> None:
    prefix = (
        f"sequence {index} has {length} tokens, more than max_seq_len={model.config.max_seq_len}, and "
        "allow_longer=True streams it chunk by chunk, which"
    )
    try:
        check_streamable(model)
    except ValueError as error:
        raise ValueError(f"{prefix} needs a causal streamable model: {error}") from None


def _embed_long(model: SeqModel, ids: np.ndarray, pooling: Pooling | None) -> np.ndarray:
    chunk = model.config.max_seq_len
    if pooling == "mean":
        return embed_sequence(model, ids, chunk_size=chunk, pooling="mean")
    hidden = embed_sequence(model, ids, chunk_size=chunk, pooling="none")
    return {None: hidden, "last": hidden[-1], "cls": hidden[0]}[pooling]
