"""score_sequence / embed_sequence: chunked with the state carried == one pass, for every streamable mixer."""

import math

import numpy as np
import pytest
import torch
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.genomics.inference import embed_sequence, score_sequence
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig, SeqModel
from zoo.vocab import DNA_TOKENS, PROTEIN_TOKENS

BOS = DNA_TOKENS.index("[BOS]")


def tiny(pattern: str, l_max: int = 64, rc_equivariant: bool = False, **backbone) -> SeqModel:
    torch.manual_seed(0)
    mixers = MixerConfigs(hyena=HyenaConfig(l_max=l_max))
    config = BackboneConfig(d_model=32, pattern=pattern, mlp=MLPConfig(expand=2), mixers=mixers, **backbone)
    return SeqModel(ModelConfig(backbone=config, rc_equivariant=rc_equivariant))


def dna(length: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), length))


def one_pass_scores(model: SeqModel, sequence: str) -> np.ndarray:
    """The reference: one forward over [BOS] + sequence[:-1], log-softmax, the true next base."""
    ids = torch.from_numpy(DNATokenizer().encode(sequence))
    inputs = torch.cat([torch.tensor([BOS]), ids[:-1]])[None]
    with torch.no_grad():
        log_probs = torch.log_softmax(model.eval()(inputs).logits[0].float(), -1)
    return log_probs.gather(1, ids[:, None])[:, 0].numpy()


@pytest.mark.parametrize("pattern", ["M", "S", "m", "s", "H", "MSmsH"])
@pytest.mark.parametrize("chunk_size", [7, 13])
def test_chunked_scores_equal_one_pass(pattern, chunk_size):
    model, sequence = tiny(pattern), dna(41)
    scores = score_sequence(model, sequence, chunk_size=chunk_size)
    assert scores.shape == (41,) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and (scores <= 0).all()
    np.testing.assert_allclose(scores, one_pass_scores(model, sequence), atol=2e-5)


@pytest.mark.parametrize("pattern", ["MS", "msH"])
def test_chunked_embeddings_equal_one_pass(pattern):
    model, sequence = tiny(pattern), dna(37, seed=1)
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(DNATokenizer().encode(sequence))[None]).hidden[0].numpy()
    per_base = embed_sequence(model, sequence, chunk_size=9, pooling="none")
    assert per_base.shape == (37, 32)
    np.testing.assert_allclose(per_base, reference, atol=2e-5)
    np.testing.assert_allclose(embed_sequence(model, sequence, chunk_size=5), reference.mean(0), atol=2e-5)


def test_hyena_past_l_max_is_the_same_for_every_chunking():
    # l_max=16: chunks are capped at 16 tokens and the filter slides over the last 16 inputs.
    model, sequence = tiny("H", l_max=16), dna(50, seed=2)
    big = score_sequence(model, sequence, chunk_size=10_000)
    np.testing.assert_allclose(score_sequence(model, sequence, chunk_size=5), big, atol=2e-5)
    np.testing.assert_allclose(score_sequence(model, sequence, chunk_size=11), big, atol=2e-5)
    np.testing.assert_allclose(big[:16], one_pass_scores(model, sequence[:16]), atol=2e-5)


def test_inputs_units_and_masked_positions():
    model, sequence = tiny("M"), dna(20, seed=3)
    nats = score_sequence(model, sequence, chunk_size=6)
    np.testing.assert_array_equal(score_sequence(model, Seq(sequence), chunk_size=6), nats)
    np.testing.assert_array_equal(score_sequence(model, SeqRecord(Seq(sequence.lower())), chunk_size=6), nats)
    np.testing.assert_allclose(score_sequence(model, sequence, unit="bits"), nats / math.log(2), rtol=1e-6)
    with_n = score_sequence(model, sequence[:5] + "N" + sequence[6:])
    assert np.isnan(with_n[5]) and np.isfinite(np.delete(with_n, 5)).all()
    assert np.isnan(score_sequence(model, sequence, bos_token=None)[0])


def test_attention_and_bidirectional_models_refuse_to_stream():
    sequence = dna(12)
    with pytest.raises(ValueError, match=r"attention layers.*independent_chunks=True"):
        score_sequence(tiny("MA"), sequence)
    with pytest.raises(ValueError, match=r"bidirectional.*independent_chunks=True"):
        embed_sequence(tiny("M", bidirectional=True), sequence)
    with pytest.raises(ValueError, match="causal language model"):
        score_sequence(tiny("M", bidirectional=True), sequence)
    with pytest.raises(ValueError, match="reverse-complement equivariant"):
        embed_sequence(tiny("M", bidirectional=True, rc_equivariant=True), sequence)


def test_independent_chunks_with_enough_overlap_equal_one_pass():
    attention, sequence = tiny("MA"), dna(30, seed=4)
    full = one_pass_scores(attention, sequence)
    approx = score_sequence(attention, sequence, chunk_size=7, independent_chunks=True, overlap=30)
    np.testing.assert_allclose(approx, full, atol=2e-5)
    cut = score_sequence(attention, sequence, chunk_size=7, independent_chunks=True, overlap=0)
    assert np.abs(cut - full).max() > 1e-4  # without context the chunks really are scored apart
    bidirectional = tiny("M", bidirectional=True)
    with torch.no_grad():
        hidden = bidirectional.eval()(torch.from_numpy(DNATokenizer().encode(sequence))[None]).hidden[0].numpy()
    both_sides = embed_sequence(bidirectional, sequence, 8, pooling="none", independent_chunks=True, overlap=30)
    np.testing.assert_allclose(both_sides, hidden, atol=2e-5)


def test_bad_sequences_are_clear_errors():
    model = tiny("M")
    with pytest.raises(ValueError, match="invalid DNA character 'U' at position 2"):
        score_sequence(model, "ACUG")
    with pytest.raises(ValueError, match="empty"):
        score_sequence(model, "")
    with pytest.raises(ValueError, match="empty"):
        embed_sequence(model, Seq(""))
    with pytest.raises(ValueError, match="overlap= only applies"):
        score_sequence(model, "ACGT", overlap=3)


def test_protein_models_stream_too():
    # A long protein (or homologs as context) is scored residue by residue with the state carried, like DNA.
    torch.manual_seed(0)
    backbone = BackboneConfig(d_model=32, pattern="Mm", mlp=MLPConfig(expand=2))
    model = SeqModel(ModelConfig(vocab="protein", backbone=backbone)).eval()
    protein = "".join(np.random.default_rng(1).choice(list("ACDEFGHIKLMNPQRSTVWY"), 70))
    ids = ProteinTokenizer().encode(protein)
    inputs = torch.from_numpy(np.concatenate([[PROTEIN_TOKENS.index("[BOS]")], ids[:-1]]))[None]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(inputs).logits[0].float(), -1)
    expected = log_probs.gather(1, torch.from_numpy(ids)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(score_sequence(model, protein, chunk_size=16), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"invalid protein character 'J' at position 3"):
        score_sequence(model, "MKVJ")
