"""Protein LM data: exact layouts and labels of every objective, homolog context within a split, cropping,
padding, resumable order, and the debug recipe on a FASTA file."""

import numpy as np
import pytest
import torch

from zoo.cli import main
from zoo.domains.protein.data import ProteinLMDataModule, collate, make_example
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.training.loader import SampleKey
from zoo.vocab import PROTEIN_TOKENS

ID = {t: i for i, t in enumerate(PROTEIN_TOKENS)}
BOS, SEP, MASK, PAD, EOS, FIM = (ID[t] for t in ("[BOS]", "[SEP]", "[MASK]", "[PAD]", "[EOS]", "[FIM]"))
M, K, V, W, L = (ID[a] for a in "MKVWL")
AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def test_causal_example_is_the_next_token_with_loss_on_the_context_by_default():
    rng = np.random.default_rng(0)
    example = make_example(np.array([M, K, V]), [np.array([W, L])], "causal", rng)
    assert example["input_ids"].tolist() == [BOS, W, L, SEP, M, K, V]
    assert example["labels"].tolist() == [W, L, SEP, M, K, V, EOS]
    query_only = make_example(np.array([M, K, V]), [np.array([W, L])], "causal", rng, context_loss=False)
    assert query_only["labels"].tolist() == [-100, -100, -100, M, K, V, EOS]


def test_fim_example_moves_one_span_behind_fim():
    rng = np.random.default_rng(0)
    spans = set()
    for _ in range(40):
        example = make_example(np.array([M, K, V, W]), [], "fim", rng, fim_rate=1.0)
        ids = [*example["input_ids"].tolist(), example["labels"][-1].item()]
        assert example["labels"].tolist() == ids[1:]
        cut, fim = ids.index(MASK), ids.index(FIM)
        prefix, suffix, middle = ids[1:cut], ids[cut + 1 : fim], ids[fim + 1 : -1]
        assert prefix + middle + suffix == [M, K, V, W] and middle and ids[-1] == EOS
        spans.add((len(prefix), len(middle)))
    assert len(spans) > 3  # spans are drawn at random
    plain = make_example(np.array([M, K, V, W]), [], "fim", rng, fim_rate=0.0)
    assert plain["input_ids"].tolist() == [BOS, M, K, V, W]


def test_masked_example_corrupts_residues_only_80_10_10():
    rng = np.random.default_rng(0)
    query = ProteinTokenizer().encode("".join(np.random.default_rng(1).choice(AA, size=4000)))
    example = make_example(query, [], "masked", rng, mask_prob=0.15)
    inputs, labels = example["input_ids"].numpy(), example["labels"].numpy()
    ids = np.concatenate([[BOS], query, [EOS]])
    assert len(inputs) == len(ids) and inputs[0] == BOS and inputs[-1] == EOS
    chosen = labels != -100
    assert (labels[chosen] == ids[chosen]).all() and not chosen[0] and not chosen[-1]
    assert 0.13 < chosen.mean() < 0.17
    masked, kept = (inputs[chosen] == MASK).mean(), (inputs[chosen] == ids[chosen]).mean()
    assert 0.75 < masked < 0.85 and 0.07 < kept < 0.14
    assert (inputs[~chosen] == ids[~chosen]).all()


def test_collate_pads_inputs_with_pad_and_labels_with_ignore():
    a = {"input_ids": torch.tensor([1, 2, 3]), "labels": torch.tensor([2, 3, 4])}
    b = {"input_ids": torch.tensor([5]), "labels": torch.tensor([6])}
    batch = collate([a, b])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [5, PAD, PAD]]
    assert batch["labels"].tolist() == [[2, 3, 4], [6, -100, -100]]
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long


def _families(path, n_families=20, members=3, seed=0, length=(40, 90)):
    rng = np.random.default_rng(seed)
    lines = []
    for f in range(n_families):
        ancestor = rng.choice(AA, size=int(rng.integers(*length)))
        for m in range(members):
            child = ancestor.copy()
            hit = rng.random(len(child)) < 0.04
            child[hit] = rng.choice(AA, size=int(hit.sum()))
            lines.append(f">fam{f}_{m}\n{''.join(child)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fasta(tmp_path):
    return _families(tmp_path / "toy.fasta")


def _module(fasta, **kwargs):
    args = dict(fasta=str(fasta), batch_size=4, split_fractions=(0.6, 0.2, 0.2), max_length=64)
    dm = ProteinLMDataModule(**(args | kwargs))
    dm.setup()
    return dm


def test_cluster_context_uses_same_cluster_members_of_the_same_split_only(fasta):
    dm = _module(fasta, context="cluster", max_context_tokens=10_000, context_loss=False, max_length=128)
    corpus, tokenizer = dm.corpus, ProteinTokenizer()
    assert {s: n for s, (n, _) in corpus.sizes().items()} == {"train": 36, "val": 12, "test": 12}
    for split in ("train", "val", "test"):
        data = dm.dataset(split)
        for i in range(len(data)):
            row = int(data.rows[i])
            example = data[SampleKey(0, i)]
            ids = example["input_ids"].tolist()
            homologs = _split_context(ids)
            # Every homolog is another member of the query's family, from the query's split.
            family = corpus.names[row].split("_")[0]
            siblings = [j for j, n in enumerate(corpus.names) if n.split("_")[0] == family and j != row]
            expected = sorted(tokenizer.encode(corpus.sequences[j]).tolist() for j in siblings)
            assert sorted(homologs) == expected and all(corpus.split[j] == split for j in siblings)
            query_labels = example["labels"][example["labels"] != -100].tolist()
            assert query_labels == [*tokenizer.encode(corpus.sequences[row]).tolist(), EOS]


def _split_context(ids):
    """Homologs of a causal example's inputs ``[BOS] h1 [SEP] h2 [SEP] query``."""
    parts, current = [], []
    for token in ids[1:]:
        if token == SEP:
            parts.append(current)
            current = []
        else:
            current.append(token)
    return parts


def test_context_budget_limits_homolog_tokens(fasta):
    data = _module(fasta, context="cluster", max_context_tokens=100).dataset("train")
    context_tokens = []
    for i in range(len(data)):
        ids = data[SampleKey(0, i)]["input_ids"].tolist()
        context_tokens.append(len(ids) - ids[::-1].index(SEP) - 1 if SEP in ids else 0)  # homologs and [SEP]s
    # Families of 40-90 residues: one homolog always fits in 100 tokens, two never do.
    assert 0 < min(context_tokens) and max(context_tokens) <= 100


def test_long_sequences_are_cropped_randomly_in_training_and_from_the_start_in_evaluation(tmp_path):
    fasta = _families(tmp_path / "long.fasta", length=(300, 400))
    dm = _module(fasta, max_length=50)
    sequences = [ProteinTokenizer().encode(s).tolist() for s in dm.corpus.sequences]
    train, val = dm.dataset("train"), dm.dataset("val")
    starts = set()
    for i in range(8):
        ids = train[SampleKey(0, i)]["input_ids"].tolist()
        assert len(ids) == 48  # [BOS] + 47 residues (max_length - 3)
        full = sequences[int(train.rows[i])]
        starts.add(next(s for s in range(len(full)) if full[s : s + 47] == ids[1:]))
    assert len(starts) > 1
    first = val[SampleKey(0, 0)]["input_ids"].tolist()
    assert first[1:] == sequences[int(val.rows[0])][:47]
    assert val[SampleKey(0, 0)]["input_ids"].tolist() == val[SampleKey(5, 0)]["input_ids"].tolist()


def test_batches_are_deterministic_and_resume_mid_epoch(fasta):
    def batches(dm, epoch=0, skip=0):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        if skip:
            loader.load_state_dict({"epoch": epoch, "batches": skip})
        return [b["input_ids"].tolist() for b in loader]

    dm = _module(fasta, objective="fim", context="cluster", max_context_tokens=200)
    first, again = batches(dm), batches(_module(fasta, objective="fim", context="cluster", max_context_tokens=200))
    assert first == again and len(first) == 9
    assert batches(dm, skip=3) == first[3:]
    assert batches(dm, epoch=1) != first


def test_bad_arguments_are_named(fasta, tmp_path):
    with pytest.raises(ValueError, match=r"data\.corpus / data\.fasta"):
        ProteinLMDataModule()
    with pytest.raises(ValueError, match="unknown protein corpus 'uniprot'"):
        ProteinLMDataModule(corpus="uniprot")
    with pytest.raises(FileNotFoundError, match=r"nope\.fasta"):
        ProteinLMDataModule(fasta=str(tmp_path / "nope.fasta"))
    with pytest.raises(ValueError, match=r"data\.objective"):
        ProteinLMDataModule(fasta=str(fasta), objective="mlm")
    bad = tmp_path / "bad.fasta"
    bad.write_text(">a\nMKV1L\n>b\nMKVL\n")
    with pytest.raises(ValueError, match=r"sequence 'a'.*'1'"):
        ProteinLMDataModule(fasta=str(bad), split_fractions=(1.0, 0.0, 0.0)).setup()


def test_debug_recipe_trains_on_a_fasta_file(fasta, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--config", "recipe://debug/protein-lm", "--data.init_args.corpus", "null",
            "--data.init_args.fasta", str(fasta), "--data.init_args.split_fractions", "[0.6, 0.2, 0.2]",
            "--data.init_args.max_length", "32", "--data.init_args.max_context_tokens", "64",
            "--trainer.fast_dev_run", "1"]  # fmt: skip
    assert main(argv) == 0
