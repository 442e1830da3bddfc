"""Baselines to put beside any protein language model: linear models on hand-made features, no pretraining.

* ``KmerBaseline``: composition of the amino-acid 1..k-mers of a sequence + logistic regression (sequence-level
  tasks: localisation, antimicrobial peptides, SCOPe fold). ``select_k`` picks ``k`` on a validation split.
* ``WindowBaseline``: one-hot residues in a window of ``±window`` around each residue + logistic regression
  (per-residue tasks: secondary structure), the input of the classic PSIPRED-era predictors (Jones 1999 used a
  15-residue window of profile columns; here one-hot residues, no profile).

Both are seeded, fit on the rows given (the same train rows the models see) and score with scikit-learn.
Sequences are read with ``ProteinTokenizer`` (a bad character is an error naming the sequence and position);
the 20 standard residues have their own features, the other residue letters (X B Z U O) share one.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from zoo.domains.protein.tokenizer import STANDARD, ProteinTokenizer
from zoo.vocab import PROTEIN_TOKENS

#: Largest k of ``KmerBaseline``: 20 + 400 + 8,000 features at k = 3; k = 4 adds 160,000 mostly empty ones.
MAX_K = 4
#: Residue codes of ``encode_residues``: 0..19 the standard residues (``STANDARD`` order), 20 any other residue.
OTHER = len(STANDARD)
#: Code of a window position beyond the chain's ends (``WindowBaseline``).
BEYOND = OTHER + 1
#: Symbols per window position: 20 standard residues, other residue, beyond the chain.
SYMBOLS = BEYOND + 1

_CODE_OF_ID = np.full(len(PROTEIN_TOKENS), OTHER, dtype=np.int64)
for _i, _aa in enumerate(STANDARD):
    _CODE_OF_ID[PROTEIN_TOKENS.index(_aa)] = _i


def encode_residues(sequences: Sequence[str]) -> list[np.ndarray]:
    """Residue codes ``[L]`` int64 (0..19 standard, ``OTHER`` for X B Z U O) of each sequence.

    A character that is not a residue raises, naming the sequence's index and the position.
    """
    if isinstance(sequences, str):
        raise TypeError("expected a list of sequences, got one string: wrap it in a list")
    tokenizer = ProteinTokenizer()
    out = []
    for i, seq in enumerate(sequences):
        try:
            out.append(_CODE_OF_ID[tokenizer.encode(seq)])
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from None
    return out


def kmer_vocabulary(k: int) -> list[str]:
    """Feature names of ``KmerComposition(k)``: every standard 1-mer, 2-mer, ..., k-mer (``20 + 20**2 + ...``)."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must lie in [1, {MAX_K}], got {k}")
    return ["".join(p) for n in range(1, k + 1) for p in product(STANDARD, repeat=n)]


class KmerComposition(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: protein strings -> counts of each standard 1..k-mer divided by the sequence's
    length ``[N, len(kmer_vocabulary(k))]`` (sparse), so proteins and peptides of any length are comparable.

    k-mers holding a non-standard residue are not counted (their letters are not in the vocabulary).
    """

    def __init__(self, k: int = 2):
        self.k = k

    def fit(self, sequences, labels=None) -> KmerComposition:
        """Stateless (the vocabulary is fixed by ``k``); returns ``self``."""
        kmer_vocabulary(self.k)  # checks k
        return self

    def transform(self, sequences) -> sp.csr_matrix:
        """Length-normalised 1..k-mer counts ``[N, F]`` (CSR float64)."""
        from sklearn.feature_extraction.text import CountVectorizer

        sequences = list(sequences)
        encode_residues(sequences)  # validation only: the error names the sequence and position
        upper = [s.upper().removesuffix("*") for s in sequences]
        counter = CountVectorizer(analyzer="char", ngram_range=(1, self.k), lowercase=False,
                                  vocabulary=kmer_vocabulary(self.k), dtype=np.float64)  # fmt: skip
        counts = counter.transform(upper).tocsr()
        lengths = np.array([max(len(s), 1) for s in upper], dtype=np.float64)
        return sp.diags(1.0 / lengths) @ counts


def _logistic(C: float, max_iter: int, seed: int, class_weight: str | None):
    from sklearn.linear_model import LogisticRegression

    # lbfgs fits one multinomial model over all classes (339 folds included) on sparse input.
    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed, class_weight=class_weight)


def _check_labels(n_sequences: int, labels: np.ndarray) -> None:
    if len(labels) != n_sequences:
        raise ValueError(f"{n_sequences} sequences but {len(labels)} labels")
    if len(np.unique(labels)) < 2:
        raise ValueError(f"classification needs at least two classes, got only {np.unique(labels).tolist()}")


class KmerBaseline:
    """1..k-mer composition -> standardised (``StandardScaler(with_mean=False)`` keeps it sparse) -> logistic
    regression.

    Args:
        k: longest k-mer (1..``MAX_K``); ``select_k`` chooses it on a validation split.
        C: inverse L2 strength.
        max_iter: lbfgs iterations.
        seed: random state of the solver.
        class_weight: ``None`` or ``"balanced"`` (scikit-learn's reweighting of rare classes).
    """

    def __init__(self, k: int = 2, C: float = 1.0, max_iter: int = 1000, seed: int = 0,
                 class_weight: str | None = None):  # fmt: skip
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        kmer_vocabulary(k)  # checks k
        self.k = k
        self.pipeline = Pipeline([
            ("kmers", KmerComposition(k)),
            ("scale", StandardScaler(with_mean=False)),
            ("head", _logistic(C, max_iter, seed, class_weight)),
        ])  # fmt: skip
        """The scikit-learn ``Pipeline`` (``kmers``, ``scale``, ``head``)."""

    def fit(self, sequences: Sequence[str], labels) -> KmerBaseline:
        """Fit on protein strings and their class labels; returns ``self``."""
        labels = np.asarray(labels)
        _check_labels(len(sequences), labels)
        self.pipeline.fit(list(sequences), labels)
        return self

    @property
    def classes_(self) -> np.ndarray:
        """Class labels in the column order of ``predict_proba``."""
        return self.pipeline.named_steps["head"].classes_

    def predict(self, sequences: Sequence[str]) -> np.ndarray:
        """Predicted class labels ``[N]``."""
        return self.pipeline.predict(list(sequences))

    def predict_proba(self, sequences: Sequence[str]) -> np.ndarray:
        """Class probabilities ``[N, n_classes]``."""
        return self.pipeline.predict_proba(list(sequences))


def select_k(
    train: tuple[Sequence[str], np.ndarray],
    val: tuple[Sequence[str], np.ndarray],
    ks: Sequence[int] = (1, 2, 3),
    **options,
) -> tuple[KmerBaseline, dict[int, float]]:
    """Fit ``KmerBaseline(k, **options)`` on ``train`` for every ``k`` of ``ks`` and keep the one with the best
    accuracy on ``val`` (ties: the smaller k). Returns ``(model fitted on train, {k: val accuracy})``."""
    if not ks:
        raise ValueError("ks is empty: give at least one k")
    if len(val[0]) == 0:
        raise ValueError("the validation split is empty: k cannot be chosen on it")
    scores, best = {}, None
    for k in sorted(ks):
        model = KmerBaseline(k, **options).fit(*train)
        scores[k] = float(np.mean(model.predict(val[0]) == np.asarray(val[1])))
        if best is None or scores[k] > scores[best.k]:
            best = model
    return best, scores


def window_features(sequences: Sequence[str], window: int = 7) -> sp.csr_matrix:
    """One-hot window of every residue: ``[sum L, (2 window + 1) * SYMBOLS]`` CSR, rows in chain order.

    Row ``i`` has one 1 per window offset ``o`` in ``-window..window``: the code of residue ``i + o``
    (``encode_residues``), or ``BEYOND`` where ``i + o`` falls outside the chain.

    Vectorised over all chains at once (numpy index arithmetic, then one CSR matrix with exactly
    ``2 window + 1`` entries per row); scikit-learn's ``OneHotEncoder`` would need the dense
    ``[sum L, 2 window + 1]`` window table built this same way first, so it would add nothing.
    """
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    codes = encode_residues(sequences)
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    width = 2 * window + 1
    n = int(lengths.sum())
    if n == 0:
        return sp.csr_matrix((0, width * SYMBOLS))
    flat = np.concatenate(codes)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # [n] first position of each residue's chain
    ends = starts + np.repeat(lengths, lengths)
    position = np.arange(n)
    columns = np.empty((n, width), dtype=np.int64)
    for j, offset in enumerate(range(-window, window + 1)):
        other = position + offset
        inside = (other >= starts) & (other < ends)
        symbol = np.where(inside, flat[np.clip(other, 0, n - 1)], BEYOND)
        columns[:, j] = j * SYMBOLS + symbol
    data = np.ones(n * width, dtype=np.float32)
    indptr = np.arange(0, n * width + 1, width, dtype=np.int64)
    return sp.csr_matrix((data, columns.ravel(), indptr), shape=(n, width * SYMBOLS))


class WindowBaseline:
    """Per-residue classes from a one-hot window of ``±window`` residues and logistic regression (lbfgs).

    Labels are one int array ``[L]`` per chain, ``ignore_index`` (-100) where a residue has no label.
    ``max_residues``: fit on a seeded random subset of at most this many labelled residues. Secondary
    structure has 16M training residues: their window matrix (15 entries a row) would take ~3 GB and lbfgs
    minutes per pass, while a linear model of 330 one-hot features stops improving long before that, so the
    benchmark fits on a subsample (its size is in the report).

    Args:
        window: residues on each side (7: the 15-residue window of PSIPRED-era predictors).
        C: inverse L2 strength.
        max_iter: lbfgs iterations.
        max_residues: labelled residues used for fitting at most (None: all).
        seed: seed of the subsample and of the solver.
        ignore_index: label of unlabelled residues.
    """

    def __init__(self, window: int = 7, C: float = 1.0, max_iter: int = 300, max_residues: int | None = 1_000_000,
                 seed: int = 0, ignore_index: int = -100):  # fmt: skip
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        if max_residues is not None and max_residues < 2:
            raise ValueError(f"max_residues must be >= 2 (or None for all), got {max_residues}")
        self.window, self.C, self.max_iter, self.max_residues = window, C, max_iter, max_residues
        self.seed, self.ignore_index = seed, ignore_index
        self.model = None
        """The fitted ``LogisticRegression``."""
        self.n_fit: int | None = None
        """Labelled residues the model was fitted on."""

    def _labelled(
        self, sequences: Sequence[str], labels: Sequence[np.ndarray]
    ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        if len(sequences) != len(labels):
            raise ValueError(f"{len(sequences)} sequences but {len(labels)} label arrays")
        for i, (seq, y) in enumerate(zip(sequences, labels)):
            if len(seq.removesuffix("*")) != len(y):
                raise ValueError(f"sequence {i}: {len(seq)} residues but {len(y)} labels (one per residue expected)")
        x = window_features(sequences, self.window)
        y = np.concatenate([np.asarray(v, dtype=np.int64) for v in labels]) if labels else np.zeros(0, np.int64)
        keep = np.flatnonzero(y != self.ignore_index)
        return x, y, keep

    def fit(self, sequences: Sequence[str], labels: Sequence[np.ndarray]) -> WindowBaseline:
        """Fit on chains and their per-residue labels; returns ``self``."""
        x, y, keep = self._labelled(sequences, labels)
        if self.max_residues is not None and len(keep) > self.max_residues:
            keep = np.sort(np.random.default_rng(self.seed).choice(keep, self.max_residues, replace=False))
        _check_labels(len(keep), y[keep])
        self.model = _logistic(self.C, self.max_iter, self.seed, None).fit(x[keep], y[keep])
        self.n_fit = len(keep)
        return self

    def predict(self, sequences: Sequence[str]) -> list[np.ndarray]:
        """Predicted class per residue, one ``[L]`` array per chain."""
        if self.model is None:
            raise RuntimeError("call fit(sequences, labels) before predict")
        x = window_features(sequences, self.window)
        flat = self.model.predict(x) if x.shape[0] else np.zeros(0, dtype=np.int64)
        lengths = [len(s.removesuffix("*")) for s in sequences]
        return np.split(flat, np.cumsum(lengths)[:-1]) if lengths else []

    def labelled_predictions(
        self, sequences: Sequence[str], labels: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(true, predicted)`` class of every labelled residue of ``sequences``, flattened (for metrics)."""
        if self.model is None:
            raise RuntimeError("call fit(sequences, labels) before predict")
        x, y, keep = self._labelled(sequences, labels)
        return y[keep], self.model.predict(x[keep])
