"""Baselines. MarkovBaseline: counts agree with a plain loop, N handling, the two limits (periodic, uniform).
KmerBaseline: canonical counting against a hand count and a plain loop, learning synthetic tasks.
CNNBaseline: learning synthetic tasks, padding-independence, early stopping, determinism."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from zoo.domains.genomics.baselines import (
    CNNBaseline,
    KmerBaseline,
    MarkovBaseline,
    canonical_kmers,
    kmer_counts,
    one_hot,
)
from zoo.domains.genomics.tokenizer import DNATokenizer

TOK = DNATokenizer()


def _random_dna(length, seed):
    return np.random.default_rng(seed).choice(TOK.base_ids, size=length)


def _reference_bits(train: list[str], test: str, order: int, alpha: float) -> list[float]:
    """Plain-Python count-and-score, the spec the vectorised model must match."""
    counts = {}
    for seq in train:
        for i in range(order, len(seq)):
            context, base = seq[i - order : i], seq[i]
            if "N" not in context + base:
                counts.setdefault(context, dict.fromkeys("ACGT", 0))[base] += 1
    bits = []
    for i in range(len(test)):
        context, base = test[max(i - order, 0) : i], test[i]
        if i < order or "N" in context + base:
            bits.append(float("nan"))
            continue
        row = counts.get(context, dict.fromkeys("ACGT", 0))
        bits.append(-np.log2((row[base] + alpha) / (sum(row.values()) + 4 * alpha)))
    return bits


@pytest.mark.parametrize("order", [0, 1, 3])
def test_per_base_bits_matches_reference(order):
    rng = np.random.default_rng(order)
    train = ["".join(rng.choice(list("ACGTTTN"), size=600)), "".join(rng.choice(list("AAC"), size=80))]
    test = "".join(rng.choice(list("ACGGN"), size=200))
    model = MarkovBaseline(order, alpha=0.7).fit([TOK.encode(s) for s in train])
    bits = model.per_base_bits(TOK.encode(test))
    assert bits.shape == (len(test),) and bits.dtype == np.float64
    np.testing.assert_allclose(bits, _reference_bits(train, test, order, 0.7), rtol=1e-12, equal_nan=True)
    assert model.bits_per_base(TOK.encode(test)) == pytest.approx(np.nanmean(bits))


def test_fit_accepts_one_sequence():
    seq = _random_dna(1000, seed=3)
    np.testing.assert_array_equal(MarkovBaseline(2).fit(seq).counts, MarkovBaseline(2).fit([seq]).counts)


def test_counts_skip_contexts_with_n():
    model = MarkovBaseline(2).fit(TOK.encode("ACGNACG"))
    # (context, base) pairs: ACG, CGN x, GNA x, NAC x, ACG -> two counts of "AC -> G".
    assert model.counts.sum() == 2
    a, c, g = 0, 1, 2
    assert model.counts[a * 4 + c, g] == 2
    bits = model.per_base_bits(TOK.encode("ACGNACG"))
    assert np.isnan(bits).tolist() == [True, True, False, True, True, True, False]


def test_periodic_sequence_costs_no_bits_once_order_covers_the_period():
    period = "ACGGTCATTG"
    seq = TOK.encode(period * 3000)
    for order in (len(period), len(period) + 2):
        assert MarkovBaseline(order).fit(seq).bits_per_base(seq) < 0.01
    # Order 0 only knows the composition: A .2, C .2, G .3, T .3 -> entropy 1.971 bits.
    composition = -sum(p * np.log2(p) for p in (0.2, 0.2, 0.3, 0.3))
    assert MarkovBaseline(0).fit(seq).bits_per_base(seq) == pytest.approx(composition, abs=1e-3)


@pytest.mark.parametrize("order", [0, 2, 4])
def test_uniform_random_sequence_costs_two_bits(order):
    model = MarkovBaseline(order).fit([_random_dna(300_000, seed=1)])
    assert model.bits_per_base(_random_dna(100_000, seed=2)) == pytest.approx(2.0, abs=0.01)


def test_short_sequences_and_argument_checks():
    model = MarkovBaseline(3).fit([_random_dna(100, 0)])
    assert np.isnan(model.per_base_bits(TOK.encode("AC"))).all()
    assert np.isnan(model.bits_per_base(TOK.encode("AC")))
    with pytest.raises(ValueError, match="order must lie"):
        MarkovBaseline(13)
    with pytest.raises(ValueError, match="alpha must be positive"):
        MarkovBaseline(2, alpha=0)
    with pytest.raises(RuntimeError, match="fit"):
        MarkovBaseline(2).per_base_bits(TOK.encode("ACGT"))
    with pytest.raises(ValueError, match="no \\(context, base\\) pair"):
        MarkovBaseline(2).fit([TOK.encode("NNNN")])
    assert MarkovBaseline(1).fit(TOK.encode("ACGT")).counts.sum(axis=1).tolist() == [1, 1, 1, 0]


# KmerBaseline ----------------------------------------------------------------------------------------------

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _rc(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def _reference_canonical_counts(seq: str, k: int) -> dict[str, int]:
    """Plain-Python spec: each k-mer without N counted once under min(kmer, reverse complement)."""
    counts = {}
    for i in range(len(seq) - k + 1):
        kmer = seq[i : i + k]
        if "N" not in kmer:
            key = min(kmer, _rc(kmer))
            counts[key] = counts.get(key, 0) + 1
    return counts


def _as_dict(row, k: int) -> dict[str, int]:
    names = canonical_kmers(k)
    return {names[j]: int(v) for j, v in zip(row.indices, row.data)}


def test_kmer_counts_merge_each_kmer_with_its_reverse_complement_by_hand():
    # ACGT: AC, CG, GT. GT is the reverse complement of AC; CG is its own. CN and NG are skipped.
    counts = kmer_counts(["ACGT", "ACNGT", "AAAC"], k=2)
    assert _as_dict(counts[0], 2) == {"AC": 2, "CG": 1}
    assert _as_dict(counts[1], 2) == {"AC": 2}
    # AAAC: AA, AA, AC (TT would join AA, GT would join AC).
    assert _as_dict(counts[2], 2) == {"AA": 2, "AC": 1}
    assert canonical_kmers(2) == ["AA", "AC", "AG", "AT", "CA", "CC", "CG", "GA", "GC", "TA"]
    # (4^k + 4^(k/2)) / 2 canonical k-mers for even k: pairs plus the palindromes.
    assert len(canonical_kmers(6)) == (4**6 + 4**3) // 2


@pytest.mark.parametrize("k", [1, 3, 6])
def test_kmer_counts_match_a_plain_loop_and_ignore_the_strand(k):
    rng = np.random.default_rng(k)
    seqs = ["".join(rng.choice(list("ACGTACGTN"), size=n)) for n in (0, 5, 57, 300)]
    counts = kmer_counts(seqs, k)
    assert counts.shape == (4, len(canonical_kmers(k)))
    for i, seq in enumerate(seqs):
        assert _as_dict(counts[i], k) == _reference_canonical_counts(seq, k)
    both = kmer_counts([_rc(s) for s in seqs], k)
    np.testing.assert_array_equal(both.toarray(), counts.toarray())


def test_kmer_counts_name_the_bad_sequence():
    with pytest.raises(ValueError, match="sequence 1: invalid DNA character 'X' at position 2"):
        kmer_counts(["ACGT", "ACXT"], 3)
    with pytest.raises(ValueError, match="k must lie"):
        KmerBaseline(k=0)
    with pytest.raises(ValueError, match="task must be one of"):
        KmerBaseline(task="ranking")


def _composition_task(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Three classes told apart by composition only: AT-rich, GC-rich, balanced (100 bp, class labels as str)."""
    rng = np.random.default_rng(seed)
    mixes = {"at": [0.35, 0.15, 0.15, 0.35], "gc": [0.15, 0.35, 0.35, 0.15], "even": [0.25] * 4}
    names = list(mixes)
    labels = np.array([names[i % 3] for i in range(n)])
    seqs = ["".join(rng.choice(list("ACGT"), size=100, p=mixes[label])) for label in labels]
    return seqs, labels


def test_kmer_baseline_learns_a_three_class_task():
    train, test = _composition_task(300, seed=0), _composition_task(150, seed=1)
    model = KmerBaseline(k=3).fit(*train)
    assert model.classes_.tolist() == ["at", "even", "gc"]
    proba = model.predict_proba(test[0])
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (model.predict(test[0]) == test[1]).mean() > 0.9
    assert (model.classes_[proba.argmax(axis=1)] == model.predict(test[0])).all()


def test_kmer_baseline_regression_follows_gc_content():
    rng = np.random.default_rng(0)
    gc = rng.uniform(0.2, 0.8, size=400)
    seqs = ["".join(rng.choice(list("ACGT"), size=150, p=[(1 - g) / 2, g / 2, g / 2, (1 - g) / 2])) for g in gc]
    model = KmerBaseline(k=2, task="regression", alpha=1.0).fit(seqs[:300], gc[:300])
    predictions = model.predict(seqs[300:])
    assert predictions.shape == (100,)
    assert spearmanr(predictions, gc[300:]).statistic > 0.9
    with pytest.raises(ValueError, match="predict_proba needs task='classification'"):
        model.predict_proba(seqs[:2])


# CNNBaseline -----------------------------------------------------------------------------------------------

MOTIF = "GGATCC"


def _motif_task(n: int, seed: int, length: int = 60) -> tuple[list[str], np.ndarray]:
    """Class 1 holds MOTIF at a random place, class 0 is random DNA without it."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], np.arange(n) % 2
    for label in labels:
        while True:
            seq = "".join(rng.choice(list("ACGT"), size=length))
            if MOTIF not in seq:
                break
        if label:
            at = rng.integers(0, length - len(MOTIF))
            seq = seq[:at] + MOTIF + seq[at + len(MOTIF) :]
        seqs.append(seq)
    return seqs, labels


def _small_cnn(task="classification", **kwargs) -> CNNBaseline:
    options = dict(channels=8, kernel=7, layers=2, pool=2, epochs=12, lr=1e-2, batch_size=32, patience=4)
    return CNNBaseline(task, 2 if task == "classification" else None, **{**options, **kwargs})


def test_cnn_baseline_learns_a_motif_and_restores_the_best_epoch():
    train, val, test = _motif_task(256, 0), _motif_task(64, 1), _motif_task(128, 2)
    model = _small_cnn().fit(*train, *val)
    assert (model.predict(test[0]) == test[1]).mean() > 0.9
    proba = model.predict_proba(test[0])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # Early stopping kept the weights of the epoch with the lowest validation loss.
    assert model.val_losses[model.best_epoch] == min(model.val_losses)
    x, m = one_hot(val[0])
    assert model._evaluate_loss(x, m, model._targets(val[1])) == pytest.approx(min(model.val_losses), rel=1e-5)


def test_cnn_predictions_do_not_depend_on_padding_or_batch_neighbours():
    train, val = _motif_task(64, 0), _motif_task(32, 1)
    model = _small_cnn(epochs=1).fit(*train, *val)
    short, long = "ACGGATCCTTAG" + "A" * 9, "C" * 200
    alone = model.predict_proba([short])
    np.testing.assert_allclose(model.predict_proba([long, short])[1], alone[0], rtol=1e-5, atol=1e-6)


def test_cnn_baseline_is_deterministic_for_a_seed():
    train, val, test = _motif_task(64, 0), _motif_task(32, 1), _motif_task(16, 2)
    first = _small_cnn(epochs=2, seed=3).fit(*train, *val).predict_proba(test[0])
    again = _small_cnn(epochs=2, seed=3).fit(*train, *val).predict_proba(test[0])
    other = _small_cnn(epochs=2, seed=4).fit(*train, *val).predict_proba(test[0])
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_cnn_baseline_regression_counts_motifs():
    rng = np.random.default_rng(0)
    seqs, counts = [], rng.integers(0, 4, size=200)
    for count in counts:
        seq = list(rng.choice(list("AT"), size=48))  # no G or C outside the motifs
        for slot in rng.choice(8, size=count, replace=False):
            seq[slot * 6 : slot * 6 + 6] = MOTIF
        seqs.append("".join(seq))
    values = counts * 2.5 + 10.0  # not standardised: the model must undo its own scaling
    model = _small_cnn("regression", epochs=12).fit(seqs[:140], values[:140], seqs[140:170], values[140:170])
    predictions = model.predict(seqs[170:])
    assert spearmanr(predictions, values[170:]).statistic > 0.8
    assert abs(predictions.mean() - values[170:].mean()) < 2.5
    with pytest.raises(ValueError, match="predict_proba needs task='classification'"):
        model.predict_proba(seqs[:1])


def test_cnn_baseline_checks_its_inputs():
    with pytest.raises(RuntimeError, match="call fit"):
        _small_cnn().predict(["ACGT"])
    with pytest.raises(ValueError, match="num_classes=2 but the labels hold 3 classes"):
        _small_cnn().fit(["ACGT"] * 3, [0, 1, 2], ["ACGT"], [0])
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the training classes"):
        _small_cnn().fit(["ACGT"] * 2, [0, 1], ["ACGT"], [7])
