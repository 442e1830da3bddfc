"""SeqModel.embed: pooling definitions, padding invariance, length batching, long sequences, bad input."""

import numpy as np
import pytest
import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.embedding import length_batches
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig, SeqModel


def tiny(pattern: str = "MS", bidirectional: bool = False, **config) -> SeqModel:
    torch.manual_seed(0)
    backbone = BackboneConfig(
        d_model=32,
        pattern=pattern,
        mlp=MLPConfig(expand=2),
        bidirectional=bidirectional,
        mixers=MixerConfigs(hyena=HyenaConfig(l_max=64)),
    )
    return SeqModel(ModelConfig(backbone=backbone, **config))


def dna(length: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), length))


def hidden_of(model: SeqModel, seq: str) -> np.ndarray:
    """The reference: one unpadded forward of one sequence, hidden [T, W]."""
    ids = torch.from_numpy(DNATokenizer().encode(seq))[None]
    with torch.no_grad():
        return model.eval()(ids).hidden[0].float().numpy()


MIXED = [dna(n, seed) for seed, n in enumerate([23, 5, 40, 17, 40, 1, 31])]


@pytest.mark.parametrize("pattern", ["MS", "H", "A", "ms"])
def test_padded_batches_equal_unpadded_sequences_for_causal_models(pattern):
    model = tiny(pattern)
    # batch_size=3 mixes lengths 40/40/31, 23/17/5 ... in one padded batch each.
    for pooling in ("mean", "last", "cls"):
        batched = model.embed(MIXED, pooling=pooling, batch_size=3)
        single = np.stack([model.embed([s], pooling=pooling)[0] for s in MIXED])
        assert batched.shape == (len(MIXED), 32) and batched.dtype == np.float32
        np.testing.assert_allclose(batched, single, atol=1e-5)
    per_token = model.embed(MIXED, pooling=None, batch_size=4)
    assert [h.shape for h in per_token] == [(len(s), 32) for s in MIXED]
    for h, s in zip(per_token, MIXED):
        np.testing.assert_allclose(h, hidden_of(model, s), atol=1e-5)


def test_pooling_definitions_match_a_manual_forward():
    model = tiny("MS")
    embeddings = {p: model.embed(MIXED, pooling=p, batch_size=4) for p in ("mean", "last", "cls")}
    for row, seq in enumerate(MIXED):
        hidden = hidden_of(model, seq)
        np.testing.assert_allclose(embeddings["mean"][row], hidden.mean(0), atol=1e-5)
        np.testing.assert_allclose(embeddings["last"][row], hidden[-1], atol=1e-5)
        np.testing.assert_allclose(embeddings["cls"][row], hidden[0], atol=1e-5)  # no [CLS] is prepended


def test_inputs_as_string_ids_and_tensor():
    model, tok = tiny("M"), DNATokenizer()
    seqs = [dna(12, 1), dna(12, 2)]
    expected = model.embed(seqs)
    np.testing.assert_allclose(model.embed([tok.encode(s) for s in seqs]), expected, atol=1e-6)
    np.testing.assert_allclose(model.embed(torch.from_numpy(np.stack([tok.encode(s) for s in seqs]))), expected,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(model.embed(seqs[0].lower()), expected[:1], atol=1e-6)  # one string: [1, D]
    assert model.embed([]).shape == (0, 32)


def test_runs_in_eval_and_inference_mode_and_restores_the_training_flag():
    model = tiny("M").train()
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append((m.training, torch.is_inference_mode_enabled())))
    model.embed([dna(9, 0)], device="cpu")
    assert seen == [(False, True)] and model.training
    model.eval().embed([dna(9, 0)])
    assert not model.training


def test_bidirectional_models_batch_only_equal_lengths():
    model = tiny("MM", bidirectional=True)
    assert not model.backbone.causal
    batched = model.embed(MIXED, pooling="mean", batch_size=4)
    for row, seq in enumerate(MIXED):
        np.testing.assert_allclose(batched[row], hidden_of(model, seq).mean(0), atol=1e-5)
    # The reason: a bidirectional model's real positions read the padding (no attention mask).
    ids = torch.from_numpy(DNATokenizer().encode(MIXED[1]))[None]
    padded = torch.cat([ids, torch.full((1, 6), DNATokenizer.pad_id)], 1)
    with torch.no_grad():
        assert not torch.allclose(model(padded).hidden[0, :5], model(ids).hidden[0], atol=1e-4)


def test_rc_equivariant_model_embeds_both_strands():
    model = tiny("MM", bidirectional=True, rc_equivariant=True)
    out = model.embed(MIXED[:3], pooling="mean")
    assert out.shape == (3, 64)
    np.testing.assert_allclose(out[0], hidden_of(model, MIXED[0]).mean(0), atol=1e-5)


def test_length_batches_sort_by_length_and_group_equal_lengths():
    lengths = [3, 7, 3, 5, 7, 7]
    assert length_batches(lengths, 2, mixed_lengths=True) == [[1, 4], [5, 3], [0, 2]]
    assert length_batches(lengths, 2, mixed_lengths=False) == [[1, 4], [5], [3], [0, 2]]


def test_longer_than_max_seq_len_is_an_error_naming_index_and_length():
    model = tiny("MS", max_seq_len=16)
    with pytest.raises(ValueError, match=r"sequence 2 has 40 tokens.*max_seq_len=16.*allow_longer=True"):
        model.embed([dna(10, 0), dna(16, 1), dna(40, 2)])


@pytest.mark.parametrize("pooling", ["mean", "last", "cls", None])
def test_allow_longer_streams_and_equals_the_plain_forward(pooling):
    model = tiny("MS", max_seq_len=16)
    seqs = [dna(10, 0), dna(40, 2), dna(33, 3)]
    out = model.embed(seqs, pooling=pooling, allow_longer=True)
    for row, seq in enumerate(seqs):
        hidden = hidden_of(model, seq)  # one forward over the whole sequence
        expected = {"mean": hidden.mean(0), "last": hidden[-1], "cls": hidden[0], None: hidden}[pooling]
        np.testing.assert_allclose(out[row], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "reason"),
    [(tiny("MA", max_seq_len=16), "attention"), (tiny("MM", bidirectional=True, max_seq_len=16), "bidirectional")],
    ids=["attention", "bidirectional"],
)
def test_allow_longer_needs_a_streamable_model(model, reason):
    with pytest.raises(ValueError, match=rf"sequence 0 has 20 tokens.*causal streamable.*{reason}"):
        model.embed([dna(20, 0)], allow_longer=True)


def test_protein_strings_are_tokenized_and_match_their_ids():
    model = tiny("M", vocab="protein")
    tokenizer = ProteinTokenizer()
    out = model.embed(["MKTAYIAK", "mkv*"], pooling="last")  # lowercase read as uppercase, stop stripped
    ids = [np.array([7, 8, 9, 10]), tokenizer.encode("MKV")]
    np.testing.assert_allclose(out[1], model.embed(ids, pooling="last")[1], atol=1e-6)
    with torch.no_grad():
        expected = model(torch.from_numpy(tokenizer.encode("MKTAYIAK"))[None]).hidden[0, -1].numpy()
    assert out.shape == (2, 32)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"sequence 1: invalid protein character 'J' at position 2"):
        model.embed(["MKV", "MKJV"])
    with pytest.raises(ValueError, match=r"sequence 0: invalid protein character '-' at position 1.*gaps="):
        model.embed(["M-KV"])
    foreign = tiny("M", vocab="foreign", foreign_vocab_size=12)
    with pytest.raises(NotImplementedError, match=r"no tokenizer for the 'foreign' vocabulary.*token ids"):
        foreign.embed(["MKV"])


def test_bad_inputs_name_the_sequence():
    model = tiny("M")
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        model.embed(["ACGT", ""])
    with pytest.raises(ValueError, match=r"sequence 1: invalid DNA character 'X' at position 2"):
        model.embed(["ACGT", "ACXT"])
    with pytest.raises(ValueError, match="sequence 0 has token id 40, outside the dna vocabulary"):
        model.embed([np.array([7, 40])])
    with pytest.raises(TypeError, match="sequence 0 must be a string or a 1-D array of integer token ids"):
        model.embed([np.array([0.5, 1.0])])
    with pytest.raises(ValueError, match="pooling must be one of"):
        model.embed(["ACGT"], pooling="max")


def test_protein_longer_than_max_seq_len_streams_exactly():
    # The "embeddings without the 1,022-residue limit": a protein past the model's context streams chunk
    # by chunk with the state carried and equals one pass over the whole chain.
    model = tiny("mS", vocab="protein", max_seq_len=16)
    protein = "".join(np.random.default_rng(0).choice(list("ACDEFGHIKLMNPQRSTVWY"), 50))
    out = model.embed([protein], pooling=None, allow_longer=True)[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(ProteinTokenizer().encode(protein))[None]).hidden[0].numpy()
    assert out.shape == (50, 32)
    np.testing.assert_allclose(out, expected, atol=1e-5)
