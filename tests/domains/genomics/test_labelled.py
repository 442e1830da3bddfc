"""LabelledSequenceDataModule: CSV/TSV/FASTA/BED sources, named tasks, padding, splits, augmentation, errors."""

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

import zoo.domains.genomics
from zoo.domains.genomics import corpus
from zoo.domains.genomics.labelled import LabelledSequenceDataModule, LabelledSequences
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.training.loader import SampleKey

TOKENIZER = DNATokenizer()


def _random_seqs(n, rng, low=5, high=30):
    return ["".join(rng.choice(list("ACGT"), size=rng.integers(low, high))) for _ in range(n)]


def _module(**kwargs) -> LabelledSequenceDataModule:
    dm = LabelledSequenceDataModule(**kwargs)
    dm.setup("fit")
    return dm


@pytest.fixture
def csv_path(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "sequence": _random_seqs(30, rng),
            "label": rng.choice(["enhancer", "promoter", "other"], size=30),
            "split": ["train"] * 20 + ["val"] * 5 + ["test"] * 5,
        }
    )
    frame.loc[0, "label"], frame.loc[1, "label"], frame.loc[2, "label"] = "enhancer", "promoter", "other"
    path = tmp_path / "labelled.csv"
    frame.to_csv(path, index=False)
    return path


def test_csv_classification_batches_are_right_padded(csv_path):
    dm = _module(path=str(csv_path), batch_size=8)
    source = pd.read_csv(csv_path)
    assert dm.task == "classification" and dm.classes == ("enhancer", "other", "promoter") and dm.num_classes == 3
    assert dm.frame["label"].tolist() == [dm.classes.index(x) for x in source["label"]]
    batch = next(iter(dm.val_dataloader()))
    val = source[source["split"] == "val"].reset_index(drop=True)
    lengths = val["sequence"].str.len().to_numpy()[:5]
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.bool
    assert batch["labels"].dtype == torch.long and batch["input_ids"].shape == (5, lengths.max())
    for row, seq in enumerate(val["sequence"]):
        ids = batch["input_ids"][row]
        assert TOKENIZER.decode(ids[: len(seq)].numpy()) == seq
        assert (ids[len(seq) :] == TOKENIZER.pad_id).all()
        assert batch["attention_mask"][row].sum() == len(seq) and batch["attention_mask"][row, : len(seq)].all()
    assert batch["labels"].tolist() == [dm.classes.index(x) for x in val["label"]]


def test_given_classes_fix_the_order_and_unknown_labels_are_named(csv_path):
    dm = _module(path=str(csv_path), classes=["other", "enhancer", "promoter"])
    assert dm.frame["label"].iloc[0] == 1 and dm.frame["label"].iloc[2] == 0
    with pytest.raises(ValueError, match=r"labelled\.csv line 3: label 'promoter' is not one of the classes"):
        _module(path=str(csv_path), classes=["enhancer", "other"])


def test_tsv_regression_with_named_columns(tmp_path):
    rng = np.random.default_rng(2)
    seqs = _random_seqs(40, rng)
    values = rng.normal(5.0, 2.0, size=40)
    path = tmp_path / "expr.tsv"
    pd.DataFrame({"seq": seqs, "expression": values}).to_csv(path, sep="\t", index=False)
    dm = _module(path=str(path), sequence_column="seq", label_column="expression", seed=3)
    assert dm.task == "regression" and dm.num_classes == 0
    train = dm.frame["split"] == "train"
    np.testing.assert_allclose(dm.label_mean, dm.frame.loc[train, "label"].mean(), rtol=1e-6)
    np.testing.assert_allclose(dm.label_std, dm.frame.loc[train, "label"].std(ddof=0), rtol=1e-5)
    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].dtype == torch.float32
    assert set(np.round(batch["labels"].numpy(), 4)) <= set(np.round(values.astype(np.float32), 4))


def test_fasta_with_labels_in_headers(tmp_path):
    path = tmp_path / "seqs.fa"
    path.write_text(
        ">s1 label=1 split=train\nACGT\nAC\n>s2 label=0 split=val\nGGG\n>s3 label=1 split=test\nTTTA\n"
        ">s4 label=0 split=train\nCCCC\n"
    )
    dm = _module(path=str(path))
    assert dm.frame["sequence"].tolist() == ["ACGTAC", "GGG", "TTTA", "CCCC"]
    assert dm.frame["label"].tolist() == [1, 0, 1, 0] and dm.classes == ("0", "1")
    assert dm.frame["split"].tolist() == ["train", "val", "test", "train"]
    path.write_text(">s1 split=train\nACGT\n")
    with pytest.raises(ValueError, match=r"record 's1': the header has no label=<x>"):
        _module(path=str(path))


@pytest.fixture
def bed_genome(tmp_path):
    genome = tmp_path / "toy.fa"
    genome.write_text(">chr1\nAACCGGTTAC\n>chr2\nGGGGAAAATT\n")
    return genome


def test_bed_regions_are_cut_and_minus_strand_reverse_complemented(tmp_path, bed_genome):
    bed = tmp_path / "regions.bed"
    bed.write_text(
        "track name=x\n"
        "chr1\t0\t4\tpos\t0\t+\ttrain\n"
        "chr1\t2\t6\tneg\t0\t-\ttrain\n"
        "chr2\t4\t10\tpos\t0\t.\tval\n"
        "chr2\t0\t3\tneg\t0\t-\ttest\n"
    )
    dm = _module(bed=str(bed), genome=str(bed_genome), label_column="name", split_column="7")
    assert dm.frame["sequence"].tolist() == ["AACC", "CCGG", "AAAATT", "CCC"]  # chr1[2:6]=CCGG is its own rc
    assert dm.frame["chrom"].tolist() == ["toy.fa:chr1", "toy.fa:chr1", "toy.fa:chr2", "toy.fa:chr2"]
    assert dm.frame["start"].tolist() == [0, 2, 4, 0] and dm.frame["end"].tolist() == [4, 6, 10, 3]
    assert dm.classes == ("neg", "pos") and dm.frame["label"].tolist() == [1, 0, 1, 0]
    assert dm.frame["split"].tolist() == ["train", "train", "val", "test"]
    numbered = _module(bed=str(bed), genome=str(bed_genome), label_column="4", split_column="7")
    assert numbered.frame["label"].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("chr1\t5\t11\tpos", r"regions\.bed line 2: region chr1:5-11 is outside the chromosome \[0, 10\)"),
        ("chrX\t0\t3\tpos", r"regions\.bed line 2: chromosome 'chrX' is not in toy\.fa"),
        ("chr1\t0\tend\tpos", r"regions\.bed line 2: start/end '0'/'end' are not integers"),
        ("chr1\t0\t3", r"regions\.bed line 2: 3 tab-separated fields; expected the label"),
    ],
)
def test_bad_bed_rows_name_the_file_line(tmp_path, bed_genome, line, message):
    bed = tmp_path / "regions.bed"
    bed.write_text(f"chr1\t0\t4\tneg\n{line}\n")
    with pytest.raises(ValueError, match=message):
        _module(bed=str(bed), genome=str(bed_genome), label_column="4")


def test_bed_label_column_must_be_a_bed_column(tmp_path, bed_genome):
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t0\t4\tneg\n")
    with pytest.raises(ValueError, match=r"data\.label_column='label': for a BED file give a 1-based column number"):
        _module(bed=str(bed), genome=str(bed_genome))


def _write_csv(tmp_path, sequences, labels, splits=None):
    frame = pd.DataFrame({"sequence": sequences, "label": labels})
    if splits is not None:
        frame["split"] = splits
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_bad_rows_are_named(tmp_path):
    splits = ["train", "val", "test"]
    with pytest.raises(ValueError, match=r"bad\.csv line 3: empty sequence"):
        _module(path=_write_csv(tmp_path, ["ACGT", "", "AC"], [0, 1, 0], splits))
    with pytest.raises(ValueError, match=r"bad\.csv line 4: invalid DNA character 'U' at position 2"):
        _module(path=_write_csv(tmp_path, ["ACGT", "AC", "ACUG"], [0, 1, 0], splits))
    with pytest.raises(ValueError, match=r"line 2: .*'R' is an IUPAC ambiguity code"):
        _module(path=_write_csv(tmp_path, ["ACRT", "AC", "AC"], [0, 1, 0], splits))
    dm = _module(path=_write_csv(tmp_path, ["ACRT", "AC", "AC"], [0, 1, 0], splits), unknown="N")
    assert dm.frame["sequence"].iloc[0] == "ACRT" and dm._ids[0].tolist() == TOKENIZER.encode("ACNT").tolist()
    with pytest.raises(ValueError, match=r"line 2: split 'training' is not one of"):
        _module(path=_write_csv(tmp_path, ["ACGT", "AC", "AC"], [0, 1, 0], ["training", "val", "test"]))
    with pytest.raises(ValueError, match=r"split\(s\) \['test'\] have no rows"):
        _module(path=_write_csv(tmp_path, ["ACGT", "AC", "AC"], [0, 1, 0], ["train", "val", "val"]))
    with pytest.raises(ValueError, match=r"line 3: class index 2 does not match the 2 classes \['a', 'b'\]"):
        _module(path=_write_csv(tmp_path, ["ACGT", "AC", "AC"], [0, 2, 1], splits), classes=["a", "b"])


def test_missing_column_names_the_columns_present(tmp_path):
    path = tmp_path / "cols.csv"
    pd.DataFrame({"seq": ["ACGT"], "y": [1]}).to_csv(path, index=False)
    message = r"missing column\(s\) \['sequence', 'label'\]; columns present: \['seq', 'y'\]"
    with pytest.raises(ValueError, match=message):
        _module(path=str(path))


def test_max_length_errors_or_truncates(tmp_path):
    path = _write_csv(tmp_path, ["ACGTACGT", "AC", "ACG"], [0, 1, 0], ["train", "val", "test"])
    with pytest.raises(ValueError, match=r"line 2: sequence of 8 bases is longer than data.max_length=5"):
        _module(path=path, max_length=5)
    dm = _module(path=path, max_length=5, truncate=True)
    assert dm.frame["sequence"].tolist() == ["ACGTA", "AC", "ACG"] and len(dm._ids[0]) == 5


def test_random_split_is_seeded_and_sized(tmp_path):
    rng = np.random.default_rng(0)
    path = _write_csv(tmp_path, _random_seqs(100, rng), rng.integers(0, 2, 100))
    a = _module(path=path, seed=7, val_fraction=0.2, test_fraction=0.1)
    b = _module(path=path, seed=7, val_fraction=0.2, test_fraction=0.1)
    c = _module(path=path, seed=8, val_fraction=0.2, test_fraction=0.1)
    assert a.frame["split"].tolist() == b.frame["split"].tolist() != c.frame["split"].tolist()
    assert a.frame["split"].value_counts().to_dict() == {"train": 70, "val": 20, "test": 10}
    with pytest.raises(ValueError, match=r"split\(s\) \['val'\] have no rows"):
        _module(path=path, val_fraction=0.0)


def test_max_train_samples_subsamples_training_rows_only(tmp_path):
    rng = np.random.default_rng(0)
    path = _write_csv(tmp_path, _random_seqs(100, rng), rng.integers(0, 2, 100))
    full = _module(path=path)
    small = _module(path=path, max_train_samples=10)
    assert small.frame["split"].value_counts().to_dict() == {"train": 10, "val": 10, "test": 10}
    assert set(small.frame["sequence"]) <= set(full.frame["sequence"])
    assert small.frame["sequence"].tolist() == _module(path=path, max_train_samples=10).frame["sequence"].tolist()
    for split in ("val", "test"):
        assert (
            small.frame[small.frame.split == split]["sequence"].tolist()
            == full.frame[full.frame.split == split]["sequence"].tolist()
        )
    assert sum(len(b["labels"]) for b in small.train_dataloader()) == 10


def test_rc_augment_reverse_complements_about_half_deterministically():
    rng = np.random.default_rng(0)
    seqs = [TOKENIZER.encode(s, dtype=np.uint8) for s in _random_seqs(200, rng, 20, 21)]
    data = LabelledSequences(seqs, np.zeros(200, dtype=np.int64), rc_augment=True, seed=5)
    flipped = []
    for i, seq in enumerate(seqs):
        got = data[SampleKey(epoch=0, index=i)]["input_ids"]
        rc = TOKENIZER.reverse_complement(seq)
        assert np.array_equal(got, seq) or np.array_equal(got, rc)
        flipped.append(np.array_equal(got, rc) and not np.array_equal(seq, rc))
        again = data[SampleKey(epoch=0, index=i)]["input_ids"]
        assert np.array_equal(got, again), "the same (epoch, index) gives the same example"
    assert 70 < sum(flipped) < 130
    next_epoch = [not np.array_equal(data[SampleKey(1, i)]["input_ids"], seqs[i]) for i in range(200)]
    assert next_epoch != flipped, "a new epoch draws new flips"
    plain = LabelledSequences(seqs, np.zeros(200, dtype=np.int64), rc_augment=False, seed=5)
    assert all(np.array_equal(plain[SampleKey(0, i)]["input_ids"], s) for i, s in enumerate(seqs))


def test_rc_augment_applies_to_training_batches_only(tmp_path):
    rng = np.random.default_rng(0)
    path = _write_csv(tmp_path, _random_seqs(60, rng, 16, 17), rng.integers(0, 2, 60))
    dm = _module(path=path, rc_augment=True, batch_size=64)
    train = set(dm.frame.loc[dm.frame.split == "train", "sequence"])
    seen = [TOKENIZER.decode(r.numpy()) for r in next(iter(dm.train_dataloader()))["input_ids"]]
    assert 0 < sum(s not in train for s in seen) < len(seen)
    val = dm.frame.loc[dm.frame.split == "val", "sequence"].tolist()
    assert [TOKENIZER.decode(r.numpy()) for r in next(iter(dm.val_dataloader()))["input_ids"]] == val


def test_leak_warning_counts_overlapping_val_and_test_rows(tmp_path, bed_genome, monkeypatch):
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t0\t4\ta\ttrain\nchr1\t2\t6\tb\tval\nchr2\t4\t10\ta\ttest\nchr2\t0\t3\tb\ttest\n")
    calls = []

    def fake_overlapping_rows(frame, corpus_name):
        calls.append(corpus_name)
        return (frame["start"] < 3).to_numpy()  # rows 0, 1 and 3 "overlap"

    monkeypatch.setattr(corpus, "overlapping_rows", fake_overlapping_rows)
    with pytest.warns(UserWarning, match=r"2 of 3 val/test rows overlap training regions of the pretraining corpus"):
        _module(bed=str(bed), genome=str(bed_genome), label_column="4", split_column="5", pretraining_corpus="toy")
    assert calls == ["toy"]


def test_named_task_takes_type_and_classes_from_the_registry(monkeypatch, tmp_path):
    frame = pd.DataFrame(
        {
            "sequence": ["ACGT", "AAAA", "CCCC", "GGGG"],
            "label": [1, 0, 1, 0],
            "split": ["train", "train", "val", "test"],
        }
    )
    seen = {}

    def load_labelled(name, cache_dir=None):
        seen[name] = cache_dir
        return frame

    fake = types.SimpleNamespace(
        load_labelled=load_labelled,
        TASKS={"toy-task": types.SimpleNamespace(task="classification", classes=("background", "bound"))},
    )
    monkeypatch.setitem(sys.modules, "zoo.domains.genomics.datasets", fake)
    monkeypatch.setattr(zoo.domains.genomics, "datasets", fake, raising=False)
    dm = LabelledSequenceDataModule(dataset="toy-task", cache_dir=str(tmp_path))
    dm.prepare_data()
    dm.setup("fit")
    assert seen == {"toy-task": str(tmp_path)}
    assert dm.task == "classification" and dm.classes == ("background", "bound") and dm.num_classes == 2
    assert dm.frame["label"].tolist() == [1, 0, 1, 0]


def test_exactly_one_source():
    with pytest.raises(ValueError, match="give exactly one"):
        LabelledSequenceDataModule()
    with pytest.raises(ValueError, match=r"data\.genome: give a genome exactly when data\.bed is given"):
        LabelledSequenceDataModule(dataset="x", genome="yeast-s288c")
