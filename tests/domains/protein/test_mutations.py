"""Zero-shot mutation scores against brute-force forwards, on tiny random protein models."""

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.backbone import BackboneConfig
from zoo.domains.protein.layout import MASK_ID, causal_layout, fim_layout
from zoo.domains.protein.mutations import parse_mutations, score_mutations, sequence_log_likelihoods
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig, SeqModel
from zoo.vocab import PROTEIN_TOKENS

TOK = ProteinTokenizer()
AA = "ACDEFGHIKLMNPQRSTVWY"
WT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"  # 33 residues
HOMOLOGS = ["MKTAYIAKQRQISFVKSHF", "MRTAYLAKQRQLSFVKSHFSRQ"]


def causal(pattern: str = "Mm") -> SeqModel:
    torch.manual_seed(0)
    return SeqModel(ModelConfig(vocab="protein", backbone=BackboneConfig(d_model=32, pattern=pattern,
                                                                         mlp=MLPConfig(expand=2))))  # fmt: skip


def bidirectional() -> SeqModel:
    torch.manual_seed(1)
    return SeqModel(ModelConfig(vocab="protein", backbone=BackboneConfig(d_model=32, pattern="MM", bidirectional=True)))


def log_probs(model: SeqModel, ids: np.ndarray) -> torch.Tensor:
    """``[T, V]`` float64 log-probabilities of one unbatched forward."""
    with torch.no_grad():
        return torch.log_softmax(model.eval()(torch.from_numpy(ids)[None]).logits[0].double(), -1)


def explicit_ll(model: SeqModel, query: str, context=()) -> float:
    """Sum of log p over the query residues and [EOS] of the causal layout; the context is not scored."""
    ids, start = causal_layout(TOK.encode(query), [TOK.encode(h) for h in context])
    lp = log_probs(model, ids)
    return sum(float(lp[t - 1, ids[t]]) for t in range(start, len(ids)))


def mutate(seq: str, changes: dict[int, str]) -> str:
    chars = list(seq)
    for i, aa in changes.items():
        chars[i] = aa
    return "".join(chars)


def random_mutations(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i = int(rng.integers(len(WT)))
        out.append(f"{WT[i]}{i + 1}{rng.choice([a for a in AA if a != WT[i]])}")
    return out


@pytest.mark.parametrize("context", [None, HOMOLOGS], ids=["no-context", "homologs"])
def test_llr_is_the_difference_of_two_sequence_log_likelihoods(context):
    model = causal()
    mutations = ["A4G", "K2P:L23W", "M1V"]
    got = score_mutations(model, WT, mutations, method="llr", context=context, batch_size=2)
    changes = [{3: "G"}, {1: "P", 22: "W"}, {0: "V"}]
    ctx = context or ()
    expected = [explicit_ll(model, mutate(WT, c), ctx) - explicit_ll(model, WT, ctx) for c in changes]
    np.testing.assert_allclose(got["score"], expected, rtol=1e-4, atol=1e-4)
    assert got["n_mutations"].tolist() == [1, 2, 1]


def test_sequence_log_likelihoods_with_cached_context_equal_the_full_forward():
    model = causal("mA")  # an attention layer too: its KV cache is the carried state
    queries = [TOK.encode(WT), TOK.encode(mutate(WT, {5: "W"}))]
    context = [TOK.encode(h) for h in HOMOLOGS]
    got = sequence_log_likelihoods(model, queries, context, batch_size=2)
    expected = [explicit_ll(model, WT, HOMOLOGS), explicit_ll(model, mutate(WT, {5: "W"}), HOMOLOGS)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_causal_wt_marginal_is_the_next_token_distribution_of_the_wild_type():
    model = causal()
    ids, start = causal_layout(TOK.encode(WT), [TOK.encode(h) for h in HOMOLOGS])
    lp = log_probs(model, ids)
    got = score_mutations(model, WT, ["K2P", "A4G", "Q33L"], method="wt-marginal", context=HOMOLOGS)
    expected = [float(lp[start + i - 1, TOK.encode(m)[0]] - lp[start + i - 1, ids[start + i]])
                for i, m in ((1, "P"), (3, "G"), (32, "L"))]  # fmt: skip
    np.testing.assert_allclose(got["score"], expected, rtol=1e-5, atol=1e-5)


def test_bidirectional_wt_marginal_reads_each_position_of_the_unmasked_input():
    model = bidirectional()
    ids, start = causal_layout(TOK.encode(WT))
    lp = log_probs(model, ids)
    got = score_mutations(model, WT, ["K2P", "Q33L"], method="wt-marginal")
    pairs = ((1, "P"), (32, "L"))
    expected = [float(lp[start + i, TOK.encode(m)[0]] - lp[start + i, ids[start + i]]) for i, m in pairs]
    np.testing.assert_allclose(got["score"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("context", [None, HOMOLOGS], ids=["no-context", "homologs"])
def test_causal_masked_marginal_reads_the_fim_logits(context):
    model = causal()
    ctx = [TOK.encode(h) for h in context or ()]
    expected = []
    for i, aa in ((0, "V"), (3, "G"), (32, "L")):
        ids, middle_start = fim_layout(TOK.encode(WT), i, i + 1, ctx)
        lp = log_probs(model, ids)[middle_start - 1]  # the [FIM] position
        expected.append(float(lp[TOK.encode(aa)[0]] - lp[ids[middle_start]]))
    got = score_mutations(model, WT, ["M1V", "A4G", "Q33L"], method="masked-marginal", context=context, batch_size=2)
    np.testing.assert_allclose(got["score"], expected, rtol=1e-4, atol=1e-4)


def test_bidirectional_masked_marginal_masks_one_position_at_a_time():
    model = bidirectional()
    ids, start = causal_layout(TOK.encode(WT), [TOK.encode(h) for h in HOMOLOGS])
    expected = []
    for i, aa in ((1, "P"), (20, "A")):
        masked = ids.copy()
        masked[start + i] = MASK_ID
        lp = log_probs(model, masked)[start + i]
        expected.append(float(lp[TOK.encode(aa)[0]] - lp[ids[start + i]]))
    got = score_mutations(model, WT, ["K2P", "R21A"], context=HOMOLOGS)  # default method: masked-marginal
    np.testing.assert_allclose(got["score"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["wt-marginal", "masked-marginal"])
def test_marginals_are_additive_over_the_positions_of_a_multi_mutant(method):
    model = causal()
    got = score_mutations(model, WT, ["K2P", "R21A", "K2P:R21A", "R21A:K2P"], method=method)
    assert got["score"].iloc[2] == pytest.approx(got["score"].iloc[0] + got["score"].iloc[1], abs=1e-9)
    assert got["mutation"].tolist()[2:] == ["K2P:R21A", "K2P:R21A"]
    assert got["score"].iloc[3] == got["score"].iloc[2]


@pytest.mark.parametrize("method", ["llr", "wt-marginal", "masked-marginal"])
def test_batched_scores_equal_unbatched(method):
    model = causal()
    mutations = [*random_mutations(7, seed=3), "K2P:R21A"]
    one = score_mutations(model, WT, mutations, method=method, context=HOMOLOGS, batch_size=1)
    many = score_mutations(model, WT, mutations, method=method, context=HOMOLOGS, batch_size=5)
    np.testing.assert_allclose(many["score"], one["score"], rtol=1e-5, atol=1e-5)
    assert np.ptp(one["score"]) > 0  # the scores are not all alike


def test_offset_numbering_and_dataframe_input_keep_the_index():
    model = causal()
    frame = pd.DataFrame({"mutant": ["K101P", "A103G"]}, index=[7, 9])
    shifted = score_mutations(model, WT, frame, method="wt-marginal", offset=100)
    plain = score_mutations(model, WT, ["K2P", "A4G"], method="wt-marginal")
    assert shifted.index.tolist() == [7, 9]
    assert shifted["mutation"].tolist() == ["K101P", "A103G"]
    np.testing.assert_allclose(shifted["score"], plain["score"])


def test_default_method_is_llr_for_causal_models():
    model = causal()
    assert score_mutations(model, WT, ["A4G"])["score"].iloc[0] == pytest.approx(
        score_mutations(model, WT, ["A4G"], method="llr")["score"].iloc[0])  # fmt: skip


@pytest.mark.parametrize(
    "mutations, message",
    [
        (["L4G"], "A4G|L4G: position 4 is A in the wild type, not L"),
        (["A99G"], "position 99 is outside the wild type"),
        (["A4J"], "mutant residue 'J' is not one of the 20 standard"),
        (["A4X"], "mutant residue 'X'"),
        (["A4G:A4C"], "position 4 is mutated twice"),
        (["4G"], "is not a substitution like"),
        ([], "no mutations to score"),
    ],
)
def test_bad_mutations_are_clear_errors(mutations, message):
    with pytest.raises(ValueError, match=message):
        parse_mutations(mutations, WT)


def test_wrong_wild_type_residue_message_is_exact():
    with pytest.raises(ValueError, match=r"^A42G: position 42 is L in the wild type, not A$"):
        parse_mutations(["A42G"], "M" * 41 + "L")


def test_other_bad_input():
    with pytest.raises(TypeError, match="wrap it in a list"):
        parse_mutations("A4G", WT)
    with pytest.raises(ValueError, match="'mutation' \\(or 'mutant'\\) column"):
        parse_mutations(pd.DataFrame({"x": ["A4G"]}), WT)
    with pytest.raises(ValueError, match="needs a causal language model"):
        score_mutations(bidirectional(), WT, ["A4G"], method="llr")
    with pytest.raises(ValueError, match="method must be one of"):
        score_mutations(causal(), WT, ["A4G"], method="pll")
    with pytest.raises(ValueError, match=r"context sequence 1: .*'1'"):
        score_mutations(causal(), WT, ["A4G"], context=["MKT", "MK1"])
    dna = SeqModel(ModelConfig(vocab="dna", backbone=BackboneConfig(d_model=16, pattern="M")))
    with pytest.raises(ValueError, match="needs a protein model"):
        score_mutations(dna, WT, ["A4G"])


def test_vocabulary_ids_used_for_residues():
    # The scorer indexes logits by PROTEIN_TOKENS ids; the tokenizer must agree on them.
    assert [PROTEIN_TOKENS[i] for i in TOK.encode(AA)] == list(AA)
