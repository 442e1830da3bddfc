"""LabelledSequenceDataModule on protein: a user CSV, a named protein task through the cache, DNA-only options."""

import dataclasses
import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.domains.genomics.datasets import PinnedMember
from zoo.domains.genomics.labelled import LabelledSequenceDataModule
from zoo.domains.protein.datasets import TASKS
from zoo.domains.protein.tokenizer import ProteinTokenizer

TOKENIZER = ProteinTokenizer()
AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _module(**kwargs) -> LabelledSequenceDataModule:
    dm = LabelledSequenceDataModule(**kwargs)
    dm.setup("fit")
    return dm


def _csv(tmp_path, sequences, labels, splits):
    path = tmp_path / "proteins.csv"
    pd.DataFrame({"sequence": sequences, "label": labels, "split": splits}).to_csv(path, index=False)
    return str(path)


def test_protein_csv_batches_use_the_protein_vocabulary(tmp_path):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(AA, size=rng.integers(5, 40))) for _ in range(12)]
    seqs[9] = "mkvlUXa"  # lowercase and non-standard residues: read as uppercase, U and X keep their ids
    splits = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    path = _csv(tmp_path, seqs, ["cytoplasm", "membrane"] * 6, splits)
    dm = _module(path=path, alphabet="protein", batch_size=8)
    assert dm.alphabet == "protein" and isinstance(dm.tokenizer, ProteinTokenizer)
    assert dm.classes == ("cytoplasm", "membrane") and dm.task == "classification"
    batch = next(iter(dm.test_dataloader()))
    test = seqs[9:]
    assert batch["input_ids"].shape == (3, max(map(len, test))) and batch["input_ids"].dtype == torch.long
    for row, seq in enumerate(test):
        ids = batch["input_ids"][row]
        assert ids[: len(seq)].tolist() == TOKENIZER.encode(seq).tolist()
        assert (ids[len(seq) :] == TOKENIZER.pad_id).all()
        assert batch["attention_mask"][row].tolist() == [True] * len(seq) + [False] * (ids.numel() - len(seq))
    assert TOKENIZER.decode(batch["input_ids"][0, :7].numpy()) == "MKVLUXA"
    assert batch["labels"].tolist() == [1, 0, 1]
    as_x = _module(path=path, alphabet="protein", nonstandard="X")
    assert as_x._ids[9].tolist() == TOKENIZER.encode("MKVLXXA").tolist()


def test_bad_residue_names_the_row_and_position(tmp_path):
    path = _csv(tmp_path, ["MKVL", "MKJVL", "MKV"], [0, 1, 0], ["train", "val", "test"])
    with pytest.raises(ValueError, match=r"proteins\.csv line 3: invalid protein character 'J' at position 2"):
        _module(path=path, alphabet="protein")
    with pytest.raises(ValueError, match=r"line 2: sequence of 4 residues is longer than data.max_length=3"):
        _module(path=_csv(tmp_path, ["MKVL", "MK", "MKV"], [0, 1, 0], ["train", "val", "test"]), alphabet="protein",
                max_length=3)  # fmt: skip
    with pytest.raises(ValueError, match=r"nonstandard must be one of 'keep', 'X', 'error'"):
        LabelledSequenceDataModule(path=path, alphabet="protein", nonstandard="drop")


def test_dna_only_options_are_refused_for_protein(tmp_path):
    path = _csv(tmp_path, ["MKVL", "MKV", "MKV"], [0, 1, 0], ["train", "val", "test"])
    with pytest.raises(ValueError, match=r"data\.rc_augment is for DNA only .* remove data\.rc_augment"):
        LabelledSequenceDataModule(path=path, alphabet="protein", rc_augment=True)
    with pytest.raises(ValueError, match=r"data\.rc_augment is for DNA only"):
        LabelledSequenceDataModule(dataset="amp", rc_augment=True)
    with pytest.raises(ValueError, match=r"data\.unknown is for DNA only.*data\.nonstandard"):
        LabelledSequenceDataModule(path=path, alphabet="protein", unknown="N")
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t0\t4\t1\n")
    with pytest.raises(ValueError, match=r"data\.bed is for DNA only"):
        LabelledSequenceDataModule(bed=str(bed), genome=path, alphabet="protein")
    with pytest.raises(ValueError, match=r"data\.nonstandard is for protein only"):
        LabelledSequenceDataModule(path=path, nonstandard="X")
    with pytest.raises(ValueError, match=r"data\.alphabet must be one of \['dna', 'protein'\], got 'rna'"):
        LabelledSequenceDataModule(path=path, alphabet="rna")


def test_files_stay_dna_by_default_and_named_tasks_bring_their_alphabet():
    assert LabelledSequenceDataModule(dataset="oct4-mafk").alphabet == "dna"
    assert LabelledSequenceDataModule(dataset="localisation").alphabet == "protein"
    assert LabelledSequenceDataModule(dataset="scope-fold").alphabet == "protein"
    with pytest.raises(ValueError, match=r"data\.alphabet='dna' but the named task 'amp' is protein"):
        LabelledSequenceDataModule(dataset="amp", alphabet="dna")


def test_unknown_task_lists_close_names_of_both_registries():
    with pytest.raises(ValueError, match=r"unknown labelled task 'localization'; did you mean 'localisation'") as info:
        LabelledSequenceDataModule(dataset="localization")
    assert "dna: ars1, fly-promoters" in str(info.value) and "protein: amp, localisation" in str(info.value)
    with pytest.raises(ValueError, match=r"did you mean 'oct4-mafk'"):
        LabelledSequenceDataModule(dataset="oct4mafk")


def test_named_protein_task_through_the_cache(tmp_path, monkeypatch):
    """The amp task from a fake modlamp wheel placed in the cache (no download): labels and classes from the
    registry, protein batches, similarity-held-out splits."""
    rng = np.random.default_rng(1)
    rows = []
    for family in range(40):
        root = "MSKG" + "".join(rng.choice(AA, size=26))
        rows += [(root, family % 2), (root[:-1] + ("A" if root[-1] != "A" else "C"), family % 2)]
    text = (f"{len(rows)},1,UniProt,AMP\n" + "".join(f"{s}, {label}\n" for s, label in rows)).encode()
    real = TASKS["amp"].members[0]
    folder = tmp_path / "cache" / real.artifact.cache_subdir
    folder.mkdir(parents=True)
    wheel = folder / real.artifact.filename
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(real.member, text)
    artifact = dataclasses.replace(real.artifact, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    member = PinnedMember(artifact, real.member, hashlib.sha256(text).hexdigest())
    monkeypatch.setitem(TASKS, "amp", dataclasses.replace(TASKS["amp"], members=(member,)))
    dm = LabelledSequenceDataModule(dataset="amp", cache_dir=str(tmp_path / "cache"), batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.classes == ("non-AMP", "AMP") and dm.task == "classification" and dm.alphabet == "protein"
    assert len(dm.frame) == 80 and set(dm.frame["split"]) == {"train", "val", "test"}
    assert (dm.frame.groupby("cluster")["split"].nunique() == 1).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 30) and batch["labels"].dtype == torch.long
    assert int(batch["input_ids"].max()) <= TOKENIZER.standard_ids.max()
