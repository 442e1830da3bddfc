"""k-mer Markov baseline for next-nucleotide prediction: the number to put beside any DNA language model.

An order-``k`` model predicts base ``i`` from bases ``i-k .. i-1`` with add-``alpha`` smoothed counts
(``alpha = 0.5`` is the Krichevsky-Trofimov estimator used in DNA compression). Inputs are
``zoo.vocab.DNA_TOKENS`` id arrays ``[L]``. A position whose context or target holds anything but
A/C/G/T (N, specials) is neither counted nor scored: it gets NaN in ``per_base_bits``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.vocab import DNA_TOKENS

_CODE = np.full(len(DNA_TOKENS), -1, dtype=np.int8)
for _i, _base in enumerate("ACGT"):
    _CODE[DNA_TOKENS.index(_base)] = _i
#: Largest order: the count table has 4**(order+1) entries (order 12 = 67M counts, 0.5 GB).
MAX_ORDER = 12


def _kmer_index(ids: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Index ``[L - order]`` of each (context, target) (k+1)-mer, base 4, and whether it is all ACGT."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"expected one sequence of token ids [L], got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= len(DNA_TOKENS)):
        raise ValueError(f"token ids must lie in [0, {len(DNA_TOKENS)}) (zoo.vocab.DNA_TOKENS)")
    codes = _CODE[ids]
    n = len(codes) - order
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    invalid = np.concatenate([[0], np.cumsum(codes < 0)])
    # A (k+1)-mer ending at position i is valid when no invalid base falls in positions i-k .. i.
    valid = invalid[order + 1 :] - invalid[:n] == 0
    clipped = np.maximum(codes, 0)
    index = np.zeros(n, dtype=np.int64)
    for j in range(order + 1):
        index = index * 4 + clipped[j : j + n]
    return index, valid


class MarkovBaseline:
    """Order-``order`` Markov model of the next nucleotide, fitted by counting.

    Args:
        order: context length ``k`` (0 = base composition only), at most ``MAX_ORDER``.
        alpha: add-alpha smoothing of the counts.
    """

    def __init__(self, order: int, alpha: float = 0.5):
        if not 0 <= order <= MAX_ORDER:
            raise ValueError(f"order must lie in [0, {MAX_ORDER}], got {order}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive (zero counts would give infinite bits), got {alpha}")
        self.order, self.alpha = order, alpha
        self.counts: np.ndarray | None = None
        """``[4**order, 4]`` counts of next base (A C G T) per context, after ``fit``."""
        self.log2_probs: np.ndarray | None = None
        """``[4**order, 4]`` smoothed log2 probabilities, after ``fit``."""

    def fit(self, sequences: Sequence[np.ndarray]) -> MarkovBaseline:
        """Count (context, next base) in each id array ``[L]`` of ``sequences``; returns ``self``."""
        if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
            sequences = [sequences]  # one chromosome passed on its own
        size = 4 ** (self.order + 1)
        counts = np.zeros(size, dtype=np.int64)
        for seq in sequences:
            index, valid = _kmer_index(seq, self.order)
            counts += np.bincount(index[valid], minlength=size)
        if counts.sum() == 0:
            raise ValueError(f"no (context, base) pair of order {self.order} without N in the training sequences")
        self.counts = counts.reshape(4**self.order, 4)
        smoothed = self.counts + self.alpha
        self.log2_probs = np.log2(smoothed / smoothed.sum(axis=1, keepdims=True))
        return self

    def per_base_bits(self, ids: np.ndarray) -> np.ndarray:
        """``-log2 p(base_i | context)`` float64 ``[L]``; NaN for the first ``order`` bases and non-ACGT spans."""
        if self.log2_probs is None:
            raise RuntimeError("call fit(training_sequences) before scoring")
        index, valid = _kmer_index(ids, self.order)
        bits = np.full(len(ids), np.nan)
        scored = -self.log2_probs.reshape(-1)[index[valid]]
        bits[self.order :][valid] = scored
        return bits

    def bits_per_base(self, ids: np.ndarray) -> float:
        """Mean of ``per_base_bits`` over the scored positions (NaN if none can be scored)."""
        bits = self.per_base_bits(ids)
        scored = bits[~np.isnan(bits)]
        return float(scored.mean()) if scored.size else float("nan")
