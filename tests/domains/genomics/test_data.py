"""Genome-window data: objectives, keyed randomness, chromosome splits and their leak checks."""

import numpy as np
import pytest
import torch

from zoo.domains.genomics.data import MASK_ID, N_ID, GenomeDataModule, RandomWindows, TiledWindows, make_example
from zoo.training.language_model import IGNORE_INDEX
from zoo.training.loader import SampleKey
from zoo.vocab import DNA_TOKENS

A, C, G, T = (DNA_TOKENS.index(b) for b in "ACGT")


def _chromosomes(n=4, length=5000, seed=0):
    rng = np.random.default_rng(seed)
    return {f"c{i}": rng.integers(A, T + 1, length).astype(np.uint8) for i in range(n)}


def test_causal_example_shifts_by_one_and_ignores_unknown_bases():
    window = np.array([A, C, N_ID, G, T], dtype=np.uint8)
    example = make_example(window, "causal", 0.15, np.random.default_rng(0))
    assert example["input_ids"].tolist() == [A, C, N_ID, G]
    assert example["labels"].tolist() == [C, IGNORE_INDEX, G, T]


def test_masked_example_labels_only_masked_positions():
    window = np.random.default_rng(1).integers(A, T + 1, 4000).astype(np.uint8)
    example = make_example(window, "masked", 0.15, np.random.default_rng(0))
    labelled = example["labels"] != IGNORE_INDEX
    assert 0.12 < labelled.float().mean() < 0.18
    assert torch.equal(example["labels"][labelled], torch.from_numpy(window.astype(np.int64))[labelled])
    masked = example["input_ids"] == MASK_ID
    assert (masked & ~labelled).sum() == 0 and 0.7 < masked.sum() / labelled.sum() < 0.9
    unchanged = example["input_ids"][~labelled] == torch.from_numpy(window.astype(np.int64))[~labelled]
    assert unchanged.all()


def test_random_windows_depend_on_the_key_only():
    data = list(_chromosomes().values())
    a = RandomWindows(data, 64, 100, "causal", 0.15, rc_augment=True, seed=3)
    b = RandomWindows(data, 64, 100, "causal", 0.15, rc_augment=True, seed=3)
    key = SampleKey(epoch=2, index=17)
    assert torch.equal(a[key]["input_ids"], b[key]["input_ids"])
    assert not torch.equal(a[key]["input_ids"], a[SampleKey(3, 17)]["input_ids"])
    assert a[key]["input_ids"].shape == (64,)


def test_tiled_windows_cover_without_overlap_and_cap_evenly():
    data = [np.arange(1000) % 4 + A]
    tiled = TiledWindows(data, 100, "causal", 0.15, seed=0)
    assert [start for _, start in tiled.places] == list(range(0, 900, 100))
    capped = TiledWindows(data, 100, "causal", 0.15, seed=0, max_windows=3)
    assert [start for _, start in capped.places] == [0, 400, 800]


def _module(**kwargs) -> GenomeDataModule:
    dm = GenomeDataModule(genome="toy", window=64, batch_size=4, **kwargs)
    dm.sequences = _chromosomes()
    dm._check_split()
    return dm


def test_default_training_set_is_everything_not_held_out():
    dm = _module(val_chromosomes=["c2"], test_chromosomes=["c3"])
    assert dm.train_chromosomes == ["c0", "c1"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 64) and batch["labels"].shape == (4, 64)


def test_leaking_and_unknown_chromosomes_are_errors():
    with pytest.raises(ValueError, match=r"share.*c1.*leaks"):
        _module(val_chromosomes=["c1"], test_chromosomes=["c3"], train_chromosomes=["c0", "c1"])
    with pytest.raises(ValueError, match=r"data.test_chromosomes: unknown chromosome\(s\) \['chrZ'\]"):
        _module(val_chromosomes=["c1"], test_chromosomes=["chrZ"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "data.genome / data.fasta / data.corpus: give exactly one"),
        ({"genome": "yeast-s288c", "corpus": "dna-corpus"}, "data.genome / data.fasta / data.corpus"),
        ({"fasta": "/no/such.fa"}, "data.fasta: /no/such.fa does not exist"),
        ({"genome": "yeast-s288c", "window": 0}, "data.window"),
        ({"genome": "yeast-s288c", "mask_prob": 1.0}, "data.mask_prob"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        GenomeDataModule(val_chromosomes=["a"], test_chromosomes=["b"], **kwargs)


def test_corpus_fixes_its_own_split():
    with pytest.raises(ValueError, match=r"data\.val_chromosomes: a corpus fixes its own split"):
        GenomeDataModule(corpus="dna-corpus", val_chromosomes=["chr15"])
    with pytest.raises(ValueError, match="unknown corpus 'dna-corpse'; known corpora: dna-corpus"):
        GenomeDataModule(corpus="dna-corpse")
    with pytest.raises(ValueError, match="name the held-out chromosomes"):
        GenomeDataModule(genome="yeast-s288c", val_chromosomes=["chr15"])


def test_test_windows_cover_everything_unless_capped():
    full = _module(val_chromosomes=["c2"], test_chromosomes=["c3"])
    capped = _module(val_chromosomes=["c2"], test_chromosomes=["c3"], max_test_windows=2)
    n_full = len(full.test_dataloader().dataset)
    places = capped.test_dataloader().dataset.places
    assert n_full > 2 and len(places) == 2
    assert places[0] == full.test_dataloader().dataset.places[0]  # evenly spaced: first and last kept
    assert places[-1] == full.test_dataloader().dataset.places[-1]


def test_fasta_records_are_the_chromosomes(tmp_path):
    fasta = tmp_path / "toy.fa"
    fasta.write_text(">c0\n" + "ACGT" * 40 + "\n>c1\n" + "acgtn" * 30 + "\n>c2\n" + "GGCC" * 40 + "\n")
    dm = GenomeDataModule(fasta=str(fasta), val_chromosomes=["c1"], test_chromosomes=["c2"], window=32, batch_size=2)
    dm.setup()
    assert list(dm.sequences) == ["c0", "c1", "c2"] and dm.train_chromosomes == ["c0"]
    assert dm.sequences["c1"][:5].tolist() == [A, A + 1, A + 2, A + 3, N_ID]  # soft-masked bases read as uppercase
    bad = tmp_path / "bad.fa"
    bad.write_text(">c0\nACGU\n")
    with pytest.raises(ValueError, match=r"bad\.fa \(c0\):.*'U'"):
        GenomeDataModule(fasta=str(bad), val_chromosomes=["c0"], test_chromosomes=["c0"]).setup()
