"""Protein baselines on tiny synthetic data: features, planted rules learnt (and not learnt without the needed
context), subsampling, errors."""

import numpy as np
import pytest

from zoo.domains.protein.baselines import (
    BEYOND,
    OTHER,
    SYMBOLS,
    KmerBaseline,
    KmerComposition,
    WindowBaseline,
    encode_residues,
    kmer_vocabulary,
    select_k,
    window_features,
)
from zoo.domains.protein.tokenizer import STANDARD

HYDROPHOBIC = set("AILMFVW")


def _random_protein(rng, n: int) -> str:
    return "".join(rng.choice(list(STANDARD), size=n))


def test_window_features_one_hot_with_chain_ends():
    x = window_features(["ACD", "XY"], window=1)
    assert x.shape == (5, 3 * SYMBOLS) and (np.diff(x.indptr) == 3).all()
    symbols = x.toarray().reshape(5, 3, SYMBOLS).argmax(-1)  # per residue: left, self, right
    a, c, d, y = (STANDARD.index(r) for r in "ACDY")
    expected = [[BEYOND, a, c], [a, c, d], [c, d, BEYOND], [BEYOND, OTHER, y], [OTHER, y, BEYOND]]
    assert symbols.tolist() == expected  # windows never cross from one chain into the next


def test_kmer_composition_counts_per_residue():
    features = KmerComposition(2).transform(["AAC", "ACXD"])
    vocabulary = kmer_vocabulary(2)
    assert features.shape == (2, 20 + 400) and len(vocabulary) == 420
    first = dict(zip(vocabulary, features[0].toarray()[0]))
    assert first["A"] == pytest.approx(2 / 3) and first["AA"] == pytest.approx(1 / 3)
    second = dict(zip(vocabulary, features[1].toarray()[0]))
    assert second["AC"] == pytest.approx(1 / 4) and second["D"] == pytest.approx(1 / 4)
    assert features[1].nnz == 4  # A C D and AC: the k-mers holding X are not counted


def _neighbour_rule(rng, n_chains: int) -> tuple[list[str], list[np.ndarray]]:
    """Label of a residue = whether the NEXT residue is hydrophobic (the last residue is unlabelled)."""
    seqs, labels = [], []
    for _ in range(n_chains):
        seq = _random_protein(rng, 30)
        y = np.array([int(seq[i + 1] in HYDROPHOBIC) for i in range(len(seq) - 1)] + [-100])
        seqs.append(seq)
        labels.append(y)
    return seqs, labels


def test_window_baseline_learns_a_rule_that_needs_the_window():
    rng = np.random.default_rng(0)
    train, test = _neighbour_rule(rng, 200), _neighbour_rule(rng, 50)
    model = WindowBaseline(window=2, seed=0).fit(*train)
    truth, predicted = model.labelled_predictions(*test)
    assert len(truth) == 50 * 29  # unlabelled residues are not scored
    assert (truth == predicted).mean() > 0.95
    # Without neighbours the same rule cannot be read from the residue itself: chance level.
    blind = WindowBaseline(window=0, seed=0).fit(*train)
    truth, predicted = blind.labelled_predictions(*test)
    assert (truth == predicted).mean() < 0.75
    per_chain = model.predict(test[0][:3])
    assert [len(p) for p in per_chain] == [30, 30, 30]


def test_window_baseline_subsamples_seeded():
    rng = np.random.default_rng(1)
    train = _neighbour_rule(rng, 40)
    a = WindowBaseline(window=1, max_residues=300, seed=3).fit(*train)
    b = WindowBaseline(window=1, max_residues=300, seed=3).fit(*train)
    assert a.n_fit == 300 and np.array_equal(a.model.coef_, b.model.coef_)
    assert WindowBaseline(window=1, max_residues=None).fit(*train).n_fit == 40 * 29


def _dimer_rule(rng, n: int) -> tuple[list[str], np.ndarray]:
    """Both classes hold three K and three E; class 1 has them as 'KE' pairs, class 0 as 'EK' pairs: the same
    residue composition, so 1-mers cannot tell them apart, 2-mers can."""
    seqs, labels = [], np.arange(n) % 2
    for label in labels:
        pair = "KE" if label else "EK"
        background = [aa for aa in STANDARD if aa not in "KE"]
        parts = ["".join(rng.choice(background, size=5)) for _ in range(4)]
        seqs.append(pair.join(parts))
    return seqs, labels


def test_select_k_picks_the_k_the_rule_needs():
    rng = np.random.default_rng(2)
    train, val, test = _dimer_rule(rng, 120), _dimer_rule(rng, 40), _dimer_rule(rng, 40)
    model, scores = select_k(train, val, ks=(1, 2, 3), seed=0)
    assert set(scores) == {1, 2, 3}
    assert scores[1] < 0.75 and model.k >= 2 and scores[model.k] == max(scores.values())
    assert (model.predict(test[0]) == test[1]).mean() > 0.9
    proba = model.predict_proba(test[0])
    assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1) and list(model.classes_) == [0, 1]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"sequence 1: .*'1'.*position 2"):
        encode_residues(["ACD", "AC1D"])
    with pytest.raises(TypeError, match="one string"):
        encode_residues("ACD")
    with pytest.raises(ValueError, match=r"k must lie in \[1, 4\]"):
        KmerBaseline(k=5)
    with pytest.raises(ValueError, match="3 sequences but 2 labels"):
        KmerBaseline().fit(["AC", "DE", "FG"], [0, 1])
    with pytest.raises(ValueError, match="at least two classes"):
        KmerBaseline().fit(["AC", "DE"], [1, 1])
    with pytest.raises(ValueError, match="sequence 0: 3 residues but 2 labels"):
        WindowBaseline().fit(["ACD"], [np.array([0, 1])])
    with pytest.raises(RuntimeError, match="call fit"):
        WindowBaseline().predict(["ACD"])
    with pytest.raises(ValueError, match="window must be >= 0"):
        window_features(["ACD"], window=-1)
    with pytest.raises(ValueError, match="validation split is empty"):
        select_k((["AC", "DE"], [0, 1]), ([], []))
