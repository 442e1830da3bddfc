"""ResidueLabelDataModule: batch layout, crops, user files, and one TokenClassificationTask step."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

from zoo.backbone import BackboneConfig
from zoo.domains.protein import structure
from zoo.domains.protein.residues import ResidueLabelDataModule, eval_windows
from zoo.domains.protein.structure import IGNORE_INDEX, dssp_to_labels
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.model import ModelConfig
from zoo.training.loader import SampleKey
from zoo.training.sequence_tasks import TokenClassificationTask

AA = "ACDEFGHIKLMNPQRSTVWY"
TOKENIZER = ProteinTokenizer()


# tiny matrices: one intra-op thread (the one_thread fixture of tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def _table(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """A secondary-structure table as ``load_secondary_structure`` returns it, lengths 20..90."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.integers(20, 90))
        dssp = "LLL" + "".join(rng.choice(list("HGIEBTSL"), length - 6)) + "LLL"
        split = ("train", "val", "test")[i % 3]
        rows.append((f"{i:04d}_1_A", "".join(rng.choice(list(AA), length)), dssp, i, split))
    return pd.DataFrame(rows, columns=["id", "sequence", "dssp", "cluster", "split"])


@pytest.fixture
def table(monkeypatch):
    frame = _table()
    monkeypatch.setattr(structure, "load_secondary_structure", lambda **kwargs: frame)
    return frame


def test_batch_layout_and_labels(table):
    dm = ResidueLabelDataModule(labels="q8", batch_size=4, max_length=1024)
    dm.setup()
    assert dm.classes == structure.Q8_CLASSES and dm.num_classes == 8
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].dtype == torch.long and batch["labels"].dtype == torch.long
    assert batch["attention_mask"].dtype == torch.bool and batch["input_ids"].shape == batch["labels"].shape
    val = table[table["split"] == "val"].reset_index(drop=True)
    for row in range(4):
        n = len(val["sequence"][row])
        assert int(batch["attention_mask"][row].sum()) == n
        assert TOKENIZER.decode(batch["input_ids"][row, :n].numpy()) == val["sequence"][row]
        expected = dssp_to_labels(val["dssp"][row], "q8")
        assert batch["labels"][row, :n].tolist() == expected.tolist()
        assert (batch["labels"][row, :3] == IGNORE_INDEX).all()  # terminal coil: unobserved, not coil
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, n:] == TOKENIZER.pad_id).all()


def test_training_crops_are_random_windows_with_their_labels(table):
    dm = ResidueLabelDataModule(batch_size=2, max_length=16, seed=3)
    dm.setup()
    dataset = dm._dataset("train")
    index = 0
    full_ids, full_labels = dataset.ids[index], dataset.labels[index]
    starts = set()
    for epoch in range(6):
        crop = dataset[SampleKey(epoch, index)]
        assert len(crop["input_ids"]) == 16
        start = next(s for s in range(len(full_ids) - 15) if np.array_equal(full_ids[s : s + 16], crop["input_ids"]))
        assert np.array_equal(crop["labels"], full_labels[start : start + 16])
        assert np.array_equal(dataset[SampleKey(epoch, index)]["input_ids"], crop["input_ids"])  # reproducible
        starts.add(start)
    assert len(starts) > 1


def test_eval_windows_cover_every_residue_once(table):
    assert eval_windows([5, 12], 5, "windows") == [(0, 0), (1, 0), (1, 5), (1, 10)]
    assert eval_windows([5, 12], 5, "first") == [(0, 0), (1, 0)]
    dm = ResidueLabelDataModule(batch_size=3, max_length=16, eval_crop="windows")
    dm.setup()
    test = table[table["split"] == "test"]
    batches = list(dm.test_dataloader())
    assert sum(int(b["attention_mask"].sum()) for b in batches) == test["sequence"].str.len().sum()
    ids = torch.cat([b["input_ids"][b["attention_mask"]] for b in batches]).numpy()
    assert TOKENIZER.decode(ids) == "".join(test["sequence"])
    first = ResidueLabelDataModule(batch_size=3, max_length=16, eval_crop="first")
    first.setup()
    assert sum(int(b["attention_mask"].sum()) for b in first.test_dataloader()) == 16 * len(test)


def test_one_token_classification_step(table):
    pl.seed_everything(0, verbose=False)
    dm = ResidueLabelDataModule(labels="q3", batch_size=4, max_length=32)
    config = ModelConfig(vocab="protein", backbone=BackboneConfig(d_model=32, pattern="A"), max_seq_len=64)
    task = TokenClassificationTask(3, config=config)
    trainer = pl.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    before = [p.detach().clone() for p in task.parameters()]
    trainer.fit(task, datamodule=dm)
    assert any(not torch.equal(a, b) for a, b in zip(before, task.parameters()))
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        logits = task.eval()(batch["input_ids"], batch["attention_mask"])
    assert logits.shape == (*batch["input_ids"].shape, 3) and torch.isfinite(logits).all()


def _write(path, rows, sep=","):
    pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
    return str(path)


def test_user_file_with_split_column(tmp_path):
    rows = [
        {"sequence": "MKVL", "labels": "ABBA", "split": "train"},
        {"sequence": "MKVLA", "labels": "AB?BC", "split": "val"},
        {"sequence": "WWY", "labels": "CCA", "split": "Test "},
    ]
    dm = ResidueLabelDataModule(path=_write(tmp_path / "res.tsv", rows, sep="\t"), batch_size=8)
    dm.setup()
    assert dm.classes == ("A", "B", "C") and dm.dataset is None
    batch = next(iter(dm.val_dataloader()))
    assert batch["labels"][0].tolist() == [0, 1, IGNORE_INDEX, 1, 2]
    assert next(iter(dm.test_dataloader()))["labels"][0].tolist() == [2, 2, 0]


def test_user_file_errors_name_the_row(tmp_path):
    bad_length = _write(tmp_path / "a.csv", [{"sequence": "MKVL", "labels": "ABB", "split": "train"}])
    with pytest.raises(ValueError, match=r"a.csv line 2: 4 residues but 3 label characters"):
        ResidueLabelDataModule(path=bad_length).setup()
    rows = [
        {"sequence": "MKVL", "labels": "ABBA", "split": "train"},
        {"sequence": "MKV", "labels": "AZB", "split": "val"},
    ]
    with pytest.raises(ValueError, match=r"b.csv line 3: label 'Z' at position 1 is not one of the classes"):
        ResidueLabelDataModule(path=_write(tmp_path / "b.csv", rows), classes=["A", "B"]).setup()
    rows = [{"sequence": "MK1L", "labels": "ABBA", "split": "train"}]
    with pytest.raises(ValueError, match=r"c.csv line 2: .*'1'"):
        ResidueLabelDataModule(path=_write(tmp_path / "c.csv", rows)).setup()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['labels'\]"):
        ResidueLabelDataModule(path=_write(tmp_path / "d.csv", [{"sequence": "MK", "ss": "AB"}])).setup()


def test_user_file_without_split_is_split_by_similarity(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for family in range(30):
        base = "".join(rng.choice(list(AA), 60))
        for _ in range(2):  # two identical-looking members of a family must share a split
            rows.append({"sequence": base, "labels": "".join(rng.choice(list("HEC"), 60)), "family": family})
    dm = ResidueLabelDataModule(path=_write(tmp_path / "fam.csv", rows), batch_size=8)
    dm.setup()
    assert set(dm.frame["split"]) == {"train", "val", "test"}
    families = pd.Series([r["family"] for r in rows])
    assert pd.DataFrame({"f": families, "s": dm.frame["split"]}).groupby("f")["s"].nunique().max() == 1


@pytest.mark.data
def test_real_secondary_structure_quick_run():
    dm = ResidueLabelDataModule(labels="q3", max_chains=2000, batch_size=8, max_length=512)
    dm.setup()
    assert dm.frame["split"].value_counts().to_dict() == {"train": 1600, "val": 200, "test": 200}
    assert sum(len(x) for x in dm._ids) == 529211
    assert sum(int((y != IGNORE_INDEX).sum()) for y in dm._labels) == 496997
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == batch["labels"].shape and batch["input_ids"].shape[1] <= 512
    assert set(batch["labels"].unique().tolist()) <= {IGNORE_INDEX, 0, 1, 2}
