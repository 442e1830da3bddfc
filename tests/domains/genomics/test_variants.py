"""Zero-shot variant scores: log-likelihoods, LLR, masked marginals, windows and bad input, on tiny random models."""

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.backbone import BackboneConfig
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.domains.genomics.variants import (
    score_sequences_against,
    score_variants,
    sequence_log_likelihood,
    variant_window,
)
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig, SeqModel
from zoo.vocab import DNA_TOKENS

MASK, N = DNA_TOKENS.index("[MASK]"), DNA_TOKENS.index("N")
TOK = DNATokenizer()


def causal(**config) -> SeqModel:
    torch.manual_seed(0)
    return SeqModel(ModelConfig(backbone=BackboneConfig(d_model=32, pattern="MS", mlp=MLPConfig(expand=2)), **config))


def bidirectional(**config) -> SeqModel:
    torch.manual_seed(1)
    return SeqModel(ModelConfig(vocab="dna", backbone=BackboneConfig(d_model=32, pattern="MM", bidirectional=True),
                                **config))  # fmt: skip


def dna(length: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), length))


def manual_ll(model: SeqModel, seq: str) -> float:
    """One unbatched forward; sum of log p(x_t | x_<t) for t >= 1, N bases skipped."""
    ids = torch.from_numpy(TOK.encode(seq))
    with torch.no_grad():
        log_probs = torch.log_softmax(model.eval()(ids[None]).logits[0].double(), -1)
    return sum(float(log_probs[t - 1, ids[t]]) for t in range(1, len(ids)) if ids[t] != N)


def manual_masked(model: SeqModel, reference: str, changes: dict[int, str]) -> float:
    """Mask the 0-based positions of ``changes`` together; sum log p(alt) - log p(ref) there."""
    ids = torch.from_numpy(TOK.encode(reference))
    masked = ids.clone()
    masked[list(changes)] = MASK
    with torch.no_grad():
        log_probs = torch.log_softmax(model.eval()(masked[None]).logits[0].double(), -1)
    return sum(float(log_probs[p, TOK.encode(a)[0]] - log_probs[p, ids[p]]) for p, a in changes.items())


def mutate(seq: str, changes: dict[int, str]) -> str:
    chars = list(seq)
    for p, a in changes.items():
        chars[p] = a
    return "".join(chars)


def rc(seq: str) -> str:
    return seq.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]


def test_sequence_log_likelihood_equals_manual_sums_with_mixed_lengths():
    model = causal()
    seqs = [dna(30, 0), dna(7, 1), "A", dna(12, 2)[:5] + "N" + dna(12, 2)[6:], dna(30, 3).lower()]
    ll = sequence_log_likelihood(model, seqs, batch_size=2)
    assert ll.shape == (5,) and ll.dtype == np.float64 and ll[2] == 0.0  # one base: nothing is predicted
    np.testing.assert_allclose(ll, [manual_ll(model, s) for s in seqs], atol=1e-4)
    assert (ll[[0, 1, 3, 4]] < 0).all()


def test_rc_average_is_strand_symmetric_and_the_mean_of_both_strands():
    model = causal()
    seqs = [dna(25, 4), dna(18, 5)]
    both = sequence_log_likelihood(model, seqs, rc_average=True)
    flipped = sequence_log_likelihood(model, [rc(s) for s in seqs], rc_average=True)
    np.testing.assert_allclose(both, flipped, atol=1e-5)
    expected = [(manual_ll(model, s) + manual_ll(model, rc(s))) / 2 for s in seqs]
    np.testing.assert_allclose(both, expected, atol=1e-4)
    assert not np.allclose(both, sequence_log_likelihood(model, seqs), atol=1e-3)  # the strands do differ


def test_llr_equals_difference_of_manual_log_likelihoods():
    model, reference = causal(), dna(40, 6)
    ref_ll = manual_ll(model, reference)
    variants = []
    changes = [{4: "A"}, {0: "C"}, {39: "G"}, {11: "T", 14: "A"}, {20: "C"}]
    for change in changes:
        change = {p: a if a != reference[p] else "ACGT"[("ACGT".index(a) + 1) % 4] for p, a in change.items()}
        variants.append(change)
    names = [":".join(f"{reference[p]}{p + 1}{a}" for p, a in sorted(c.items())) for c in variants]
    table = score_variants(model, reference, names, batch_size=2)
    assert list(table.columns) == ["variant", "score", "pos", "ref", "alt"] and table["variant"].tolist() == names
    expected = [manual_ll(model, mutate(reference, c)) - ref_ll for c in variants]
    np.testing.assert_allclose(table["score"], expected, atol=1e-4)
    assert table["pos"].tolist() == [min(c) + 1 for c in variants]
    assert table.loc[3, "ref"] == reference[11] + reference[14]
    assert table.loc[3, "alt"] == variants[3][11] + variants[3][14]
    np.testing.assert_allclose(score_variants(model, reference, names, method="llr")["score"], table["score"])


def test_dataframe_input_matches_strings_and_keeps_the_index():
    model, reference = causal(), dna(30, 7)
    alt = {"A": "C", "C": "G", "G": "T", "T": "A"}
    frame = pd.DataFrame(
        {
            "chrom": ["chrI", "chrI", "chrI"],
            "pos": [3, 10, 20],
            "ref": [reference[2], reference[9:11].lower(), reference[19]],
            "alt": [alt[reference[2]], alt[reference[9]] + alt[reference[10]], alt[reference[19]]],
        },
        index=["a", "b", "c"],
    )
    table = score_variants(model, reference, frame)
    names = [f"{reference[2]}3{alt[reference[2]]}", f"{reference[9]}10{alt[reference[9]]}:{reference[10]}11"
             f"{alt[reference[10]]}", f"{reference[19]}20{alt[reference[19]]}"]  # fmt: skip
    assert table.index.tolist() == ["a", "b", "c"] and table["variant"].tolist() == names
    np.testing.assert_allclose(table["score"].to_numpy(), score_variants(model, reference, names)["score"], atol=1e-9)


def test_masked_marginal_equals_manual_masked_computation():
    model, reference = bidirectional(), dna(24, 8)
    alt = {"A": "G", "C": "T", "G": "A", "T": "C"}
    changes = [{5: alt[reference[5]]}, {0: alt[reference[0]]}, {3: alt[reference[3]], 17: alt[reference[17]]}]
    names = [":".join(f"{reference[p]}{p + 1}{a}" for p, a in sorted(c.items())) for c in changes]
    table = score_variants(model, reference, names, batch_size=2)  # auto -> masked-marginal
    np.testing.assert_allclose(table["score"], [manual_masked(model, reference, c) for c in changes], atol=1e-5)
    explicit = score_variants(model, reference, names, method="masked-marginal")["score"]
    np.testing.assert_allclose(explicit, table["score"], atol=1e-9)


def test_method_must_fit_the_model():
    reference = dna(10, 9)
    variant = [f"{reference[2]}3N"]
    with pytest.raises(ValueError, match="method='llr' needs a causal"):
        score_variants(bidirectional(), reference, variant, method="llr")
    with pytest.raises(ValueError, match="method='masked-marginal' needs a masked"):
        score_variants(causal(), reference, variant, method="masked-marginal")
    with pytest.raises(ValueError, match="method must be one of"):
        score_variants(causal(), reference, variant, method="esm")
    with pytest.raises(ValueError, match="needs a causal language model"):
        sequence_log_likelihood(bidirectional(), [reference])


def test_variant_errors_name_the_variant():
    model, reference = causal(), "ACGTACGTAC"
    with pytest.raises(ValueError, match=r"variant 'G2T': the reference has 'C' at position 2, not 'G'"):
        score_variants(model, reference, ["A1G", "G2T"])
    for bad in ("A1", "12G", "AG", "A1G;C2T", "X1G", "A-1G", "A1G:"):
        with pytest.raises(ValueError, match=rf"variant '{bad}' is not a substitution like 'A12G'"):
            score_variants(model, reference, [bad])
    with pytest.raises(ValueError, match=r"variant 'A11G': position 11 is outside the reference \(1..10\)"):
        score_variants(model, reference, ["A11G"])
    with pytest.raises(ValueError, match="position 0 is outside"):
        score_variants(model, reference, ["A0G"])
    with pytest.raises(ValueError, match="position 1 is changed twice"):
        score_variants(model, reference, ["A1G:A1T"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['alt'\]"):
        score_variants(model, reference, pd.DataFrame({"pos": [1], "ref": ["A"]}))
    with pytest.raises(ValueError, match="insertions or deletions"):
        score_variants(model, reference, pd.DataFrame({"pos": [1], "ref": ["A"], "alt": ["AT"]}))
    with pytest.raises(ValueError, match="pos must be a 1-based integer"):
        score_variants(model, reference, pd.DataFrame({"pos": [1.5], "ref": ["A"], "alt": ["T"]}))
    with pytest.raises(TypeError, match="wrap it in a list"):
        score_variants(model, reference, "A1G")


def test_variant_window_is_centred_and_shifted_inside_at_the_edges():
    assert variant_window((50,), 100, 11) == (45, 56)  # 5 bases each side
    assert variant_window((50,), 100, 10) == (45, 55)
    assert variant_window((40, 44), 100, 11) == (37, 48)  # centred on the middle of the changed bases
    assert variant_window((1,), 100, 11) == (0, 11)
    assert variant_window((98,), 100, 11) == (89, 100)
    assert variant_window((3,), 8, 11) == (0, 8) and variant_window((3,), 8, None) == (0, 8)
    with pytest.raises(ValueError, match="spans 10 bases"):
        variant_window((10, 19), 100, 8)
    with pytest.raises(ValueError, match="window must be a positive"):
        variant_window((1,), 100, 0)


def test_window_scores_the_windowed_sequences():
    model, reference = causal(max_seq_len=16), dna(60, 10)
    names = [f"{reference[p]}{p + 1}{'A' if reference[p] != 'A' else 'C'}" for p in (2, 30, 58)]
    with pytest.raises(ValueError, match="60 bases, more than the model's max_seq_len=16; pass window="):
        score_variants(model, reference, names)
    table = score_variants(model, reference, names, window=15)
    for name, score, pos in zip(names, table["score"], table["pos"]):
        start, stop = variant_window((pos - 1,), 60, 15)
        assert stop - start == 15
        ref_window = reference[start:stop]
        alt_window = mutate(ref_window, {pos - 1 - start: name[-1]})
        assert score == pytest.approx(manual_ll(model, alt_window) - manual_ll(model, ref_window), abs=1e-4)


def test_score_sequences_against_llr_and_masked_marginal():
    reference = dna(20, 11)
    library = [mutate(reference, {3: "A" if reference[3] != "A" else "G", 9: "N"}), reference,
               mutate(reference, {15: "C" if reference[15] != "C" else "T"}).lower()]  # fmt: skip
    model = causal()
    llr = score_sequences_against(model, reference, library, batch_size=2)
    expected = [manual_ll(model, s.upper()) - manual_ll(model, reference) for s in library]
    np.testing.assert_allclose(llr, expected, atol=1e-4)
    assert llr[1] == 0.0
    model = bidirectional()
    marginal = score_sequences_against(model, reference, library)
    diffs = [{p: s[p].upper() for p in range(20) if s[p].upper() != reference[p]} for s in library]
    assert [len(d) for d in diffs] == [2, 0, 1]
    np.testing.assert_allclose(marginal, [manual_masked(model, reference, d) if d else 0.0 for d in diffs], atol=1e-5)
    with pytest.raises(ValueError, match="sequence 1 has 19 bases, the reference 20"):
        score_sequences_against(model, reference, [reference, reference[:-1]])
    with pytest.raises(ValueError, match="sequence 0: invalid DNA character 'X'"):
        score_sequences_against(model, reference, ["X" + reference[1:]])
