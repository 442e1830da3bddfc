"""MarkovBaseline: counts agree with a plain loop, N handling, and the two limits (periodic, uniform)."""

import numpy as np
import pytest

from zoo.domains.genomics.baselines import MarkovBaseline
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
