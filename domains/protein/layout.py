"""How protein sequences, homolog context and fill-in-the-middle spans are laid out as one token sequence.

One layout serves training (``zoo.domains.protein.data``) and scoring (``zoo.domains.protein.mutations``), so a
model is scored on exactly the format it was trained on::

    causal      [BOS] h_1 [SEP] h_2 [SEP] ... h_k [SEP] query [EOS]
    fim         [BOS] h_1 [SEP] ... h_k [SEP] prefix [MASK] suffix [FIM] middle [EOS]

``h_i`` are homologs given as context (none: the query follows ``[BOS]`` directly). Fill-in-the-middle
(ProtMamba, Prot-xLSTM) moves one span of the query behind a ``[FIM]`` marker so that a *causal* model learns
to predict it from both sides; the logits at the ``[FIM]`` position are then the masked marginal of the span's
first residue, which is how causal models get a masked-marginal mutation score.

All functions take and return 1-D int64 token-id arrays (``ProteinTokenizer.encode`` output).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.vocab import PROTEIN_TOKENS

_ID = {token: i for i, token in enumerate(PROTEIN_TOKENS)}
BOS_ID, SEP_ID, MASK_ID, PAD_ID = _ID["[BOS]"], _ID["[SEP]"], _ID["[MASK]"], _ID["[PAD]"]
EOS_ID, FIM_ID = _ID["[EOS]"], _ID["[FIM]"]


def context_prefix(context: Sequence[np.ndarray] = ()) -> np.ndarray:
    """``[BOS] h_1 [SEP] ... h_k [SEP]``: everything before the query."""
    parts: list[np.ndarray] = [np.array([BOS_ID], dtype=np.int64)]
    for homolog in context:
        parts += [np.asarray(homolog, dtype=np.int64), np.array([SEP_ID], dtype=np.int64)]
    return np.concatenate(parts)


def causal_layout(query: np.ndarray, context: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, int]:
    """``(ids, start)``: the causal layout of ``query`` after ``context``; ``ids[start:]`` is ``query [EOS]``."""
    prefix = context_prefix(context)
    ids = np.concatenate([prefix, np.asarray(query, dtype=np.int64), np.array([EOS_ID], dtype=np.int64)])
    return ids, len(prefix)


def fim_layout(
    query: np.ndarray, start: int, end: int, context: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, int]:
    """``(ids, middle_start)``: ``query[start:end]`` moved behind ``[FIM]``; ``ids[middle_start:]`` is
    ``middle [EOS]`` and ``ids[middle_start - 1]`` is the ``[FIM]`` token whose logits predict the span."""
    query = np.asarray(query, dtype=np.int64)
    if not 0 <= start < end <= len(query):
        raise ValueError(f"fill-in-the-middle span [{start}, {end}) is empty or outside {len(query)} residues")
    ids = np.concatenate([
        context_prefix(context), query[:start], [MASK_ID], query[end:], [FIM_ID], query[start:end], [EOS_ID]
    ]).astype(np.int64)  # fmt: skip
    return ids, len(ids) - (end - start) - 1
