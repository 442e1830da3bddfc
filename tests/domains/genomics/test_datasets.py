"""Labelled genomics tasks: each parser on tiny fake files, GC matching, corpus splits, caching; the real tables
(``data`` tier)."""

import dataclasses
import gzip
import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from zoo.data.artifacts import PyPIArtifact
from zoo.domains.genomics import datasets
from zoo.domains.genomics.corpus import Corpus, Segment
from zoo.domains.genomics.datasets import (
    ARS1_WILDTYPE,
    GC_BINS,
    PROMOTER_WIDTH,
    TASKS,
    PinnedMember,
    check_no_leak,
    gc_content,
    gc_matched_sample,
    get_task,
    load_ars1_variants,
    load_labelled,
    parse_ars1,
    parse_fly_promoters,
    parse_oct4_mafk,
    read_upstream_regions,
    sample_species_windows,
    split_by_segments,
)
from zoo.domains.genomics.tokenizer import DNATokenizer

TOKENIZER = DNATokenizer()


def _random_dna(rng, n, gc=0.5):
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(rng.choice(list("ACGT"), size=n, p=p))


def _rc(seq):
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


def _write_fasta(path, records):
    path.write_text("".join(f">{header}\n{seq}\n" for header, seq in records))
    return path


# Registry ------------------------------------------------------------------------------------------------


def test_unknown_task_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown labelled task 'oct4mafk'; did you mean 'oct4-mafk'"):
        get_task("oct4mafk")
    with pytest.raises(ValueError, match="known tasks: ars1, fly-promoters, oct4-mafk, species"):
        load_labelled("zzz")


def test_registry_entries_are_consistent():
    for name, task in TASKS.items():
        assert task.name == name and task.task in ("classification", "regression")
        assert (task.task == "regression") == (task.classes == ())
        assert task.members or task.genomes, name
        for member in task.members:
            assert len(member.sha256) == 64 and int(member.sha256, 16) >= 0


def test_check_no_leak_names_the_leaked_sequence():
    frame = pd.DataFrame({"sequence": ["ACGT", "acgt", "GGGG"], "split": ["train", "test", "train"]})
    with pytest.raises(ValueError, match=r"1 sequences occur in two splits, e\.g\. ACGT"):
        check_no_leak(frame)
    check_no_leak(frame.iloc[1:])


# Oct4 / MafK ---------------------------------------------------------------------------------------------


def _peaks(tmp_path, name, rng, chroms, width=20):
    records = []
    for i, chrom in enumerate(chroms):
        start = 1000 * (i + 1) + int(rng.integers(0, 500))
        seq = _random_dna(rng, width)
        records.append((f"{chrom}:{start}-{start + width}", seq.lower() if i % 2 else seq))
    return _write_fasta(tmp_path / name, records)


def test_oct4_mafk_labels_and_chromosome_splits(tmp_path):
    rng = np.random.default_rng(1)
    oct4 = [_peaks(tmp_path, "a.fa", rng, ["chr1", "chr2", "chr3", "chr3"]), _peaks(tmp_path, "at.fa", rng, ["chr5"])]
    mafk = [_peaks(tmp_path, "b.fa", rng, ["chr2", "chrX", "chr1"]), _peaks(tmp_path, "bt.fa", rng, ["chr4"])]
    frame = parse_oct4_mafk(oct4, mafk)
    assert list(frame.columns) == ["sequence", "chrom", "start", "end", "label", "split", "strand"]
    assert len(frame) == 9 and frame["label"].sum() == 5
    assert frame["sequence"].str.fullmatch("[ACGT]+").all()
    by_chrom = dict(zip(frame["chrom"], frame["split"]))
    assert by_chrom == {
        "hg19:chr1": "val", "hg19:chr2": "test", "hg19:chr3": "train", "hg19:chr4": "train",
        "hg19:chr5": "train", "hg19:chrX": "train",
    }  # fmt: skip
    assert (frame["end"] - frame["start"] == 20).all() and set(frame["strand"]) == {"+"}


def test_oct4_mafk_drops_a_sequence_with_both_labels(tmp_path):
    shared = ("chr3:100-104", "ACGT")
    oct4 = _write_fasta(tmp_path / "o.fa", [shared, ("chr3:200-204", "AAAA")])
    mafk = _write_fasta(tmp_path / "m.fa", [shared, ("chr3:300-304", "CCCC"), ("chr3:400-404", "cccc")])
    frame = parse_oct4_mafk([oct4], [mafk])
    assert sorted(frame["sequence"]) == ["AAAA", "CCCC"]


def test_oct4_mafk_bad_header_names_file_and_record(tmp_path):
    bad = _write_fasta(tmp_path / "bad.fa", [("peak1", "ACGT")])
    with pytest.raises(ValueError, match=r"bad.fa: record 'peak1' has no 'chrom:start-end' header"):
        parse_oct4_mafk([bad], [])
    short = _write_fasta(tmp_path / "short.fa", [("chr1:0-5", "ACGT")])
    with pytest.raises(ValueError, match="holds 4 bases, its header says 5"):
        parse_oct4_mafk([short], [])


# ARS1 ----------------------------------------------------------------------------------------------------


def _ars_file(tmp_path, rows):
    lines = ["# comment", "# ", "library_ct\tselected_ct\tsequence"] + [f"{a}\t{b}\t{s}" for a, b, s in rows]
    path = tmp_path / "ars.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _mutate(seq, positions):
    swap = {"A": "C", "C": "G", "G": "T", "T": "A"}
    return "".join(swap[b] if i in positions else b for i, b in enumerate(seq))


def test_ars1_label_is_log2_enrichment_relative_to_pooled_single_mutants(tmp_path):
    wt = "ACGTACGTAC"
    rows = [
        (10, 30, _mutate(wt, {0})),  # single mutants: pooled 16 library, 40 selected reads
        (6, 10, _mutate(wt, {5})),
        (2, 50, _mutate(wt, {1, 2})),  # below the library threshold: only counts for nothing
        (8, 0, _mutate(wt, {3, 4})),
        (4, 4, _mutate(wt, {7, 8, 9})),
    ]
    frame = parse_ars1(_ars_file(tmp_path, rows), min_library=4)
    assert list(frame.columns) == ["sequence", "label", "n_mutations", "split"]
    assert len(frame) == 4
    ref = np.log2(41 / 17)
    got = dict(zip(frame["sequence"], frame["label"]))
    assert got[_mutate(wt, {3, 4})] == pytest.approx(np.log2(1 / 9) - ref)
    assert got[_mutate(wt, {0})] == pytest.approx(np.log2(31 / 11) - ref)
    assert dict(zip(frame["sequence"], frame["n_mutations"]))[_mutate(wt, {7, 8, 9})] == 3


def test_ars1_wildtype_is_the_consensus_and_is_checked(tmp_path):
    rng = np.random.default_rng(0)
    wt = _random_dna(rng, 30)
    rows = [
        (int(rng.integers(0, 20)), int(rng.integers(0, 20)), _mutate(wt, set(rng.choice(30, 3)))) for _ in range(400)
    ]
    path = _ars_file(tmp_path, rows)
    published = tmp_path / "wt.txt"
    published.write_text(f"# wild type, other strand\n{_rc(wt)}\n")
    frame = parse_ars1(path, published, wildtype=wt, min_library=4)
    assert (frame["n_mutations"].between(1, 3)).all()
    assert set(frame["split"]) == {"train", "val", "test"}
    fractions = frame["split"].value_counts(normalize=True)
    assert abs(fractions["train"] - 0.8) < 0.01 and abs(fractions["test"] - 0.1) < 0.01
    pd.testing.assert_frame_equal(frame, parse_ars1(path, min_library=4))  # seeded: the same table again
    assert not frame.equals(parse_ars1(path, min_library=4, seed=1))
    published.write_text(wt + "\n")
    with pytest.raises(ValueError, match="is not the wild type of"):
        parse_ars1(path, published)
    with pytest.raises(ValueError, match="differs from the expected"):
        parse_ars1(path, wildtype=_mutate(wt, {0}))


def test_ars1_refuses_missing_columns(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("library\tsequence\n1\tACGT\n")
    with pytest.raises(ValueError, match=r"missing columns \['library_ct', 'selected_ct'\]"):
        parse_ars1(path)


def test_ars1_wildtype_constant_is_150_bases():
    assert len(ARS1_WILDTYPE) == 150 and set(ARS1_WILDTYPE) <= set("ACGT")


# GC matching and corpus splits ---------------------------------------------------------------------------


def test_gc_matched_sample_reproduces_the_target_histogram():
    rng = np.random.default_rng(0)
    candidates = rng.uniform(0, 1, 5000)
    target = np.clip(rng.normal(0.6, 0.05, 300), 0, 1)
    chosen = gc_matched_sample(candidates, target, np.random.default_rng(1))
    assert len(chosen) == 300 and len(np.unique(chosen)) == 300
    edges = np.linspace(0, 1, GC_BINS + 1)
    np.testing.assert_array_equal(np.histogram(candidates[chosen], edges)[0], np.histogram(target, edges)[0])
    np.testing.assert_array_equal(chosen, gc_matched_sample(candidates, target, np.random.default_rng(1)))


def test_gc_matched_sample_borrows_from_neighbouring_bins():
    candidates = np.array([0.51, 0.52, 0.62, 0.63, 0.64, 0.9])
    chosen = gc_matched_sample(candidates, np.array([0.52, 0.53, 0.52]), np.random.default_rng(0))
    assert len(chosen) == 3 and {0, 1} <= set(chosen.tolist()) and 5 not in chosen
    with pytest.raises(ValueError, match="cannot draw 7 GC-matched windows from 6 candidates"):
        gc_matched_sample(candidates, np.full(7, 0.5), np.random.default_rng(0))


def test_split_by_segments_inside_straddling_and_outside():
    corpus = Corpus(
        "toy",
        train=(Segment("g", "c", 0, 100),),
        val=(Segment("g", "c", 100, 200),),
        test=(Segment("g", "c", 200), Segment("h", "c")),
    )
    starts = np.array([0, 90, 100, 150, 195, 250, 10])
    split = split_by_segments(corpus, "g", "c", starts, starts + 10)
    assert split.tolist() == ["train", "train", "val", "val", None, "test", "train"]
    assert split_by_segments(corpus, "other", "c", [500], [510]).tolist() == ["train"]


# Fly promoters -------------------------------------------------------------------------------------------


@pytest.fixture
def fly(tmp_path):
    """A 200 kb chromosome with TSSs in its train, val and test segments, and their upstream2000 file."""
    rng = np.random.default_rng(3)
    length = 200_000
    sequence = list(_random_dna(rng, length, gc=0.4))
    sequence[150_000:150_500] = "N" * 500
    sequence = "".join(sequence)
    tss = [(10_000, "f"), (30_000, "r"), (30_000, "r"), (60_000, "f"), (125_000, "r"), (100_100, "f"), (170_000, "f")]
    records = []
    for i, (pos, strand) in enumerate(tss):
        # f: upstream = 1-based [pos - 1999, pos], TSS at pos + 1; r: upstream = [pos, pos + 1999] read reversed.
        start1 = pos - 1999 if strand == "f" else pos
        seq = sequence[start1 - 1 : start1 + 1999]
        seq = seq if strand == "f" else _rc(seq)
        header = f"NM_{i}_up_2000_chrT_{start1}_{strand} chrT:{start1}-{start1 + 1999}"
        records.append((header, seq.lower()))
    records.append(("NM_9_up_2000_chrU_5_f chrU:5-2004", "A" * 2000))
    path = tmp_path / "up.fa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("".join(f">{h}\n{s}\n" for h, s in records))
    corpus = Corpus(
        "toy",
        train=(Segment("fly", "chrT", 0, 100_000),),
        val=(Segment("fly", "chrT", 100_000, 140_000),),
        test=(Segment("fly", "chrT", 140_000),),
    )
    return sequence, TOKENIZER.encode(sequence, dtype=np.uint8), path, corpus


def test_read_upstream_regions_converts_to_0_based_half_open(fly):
    sequence, _, path, _ = fly
    regions = read_upstream_regions(path)
    assert len(regions) == 8 and list(regions["strand"][:3]) == ["+", "-", "-"]
    first = regions.iloc[0]
    assert (first["start"], first["end"]) == (10_000 - 2000, 10_000)
    assert first["sequence"] == sequence[first["start"] : first["end"]]


def test_fly_promoters_positives_negatives_and_splits(fly):
    sequence, ids, path, corpus = fly
    frame = parse_fly_promoters(path, ids, corpus, genome="fly", chrom="chrT")
    assert list(frame.columns) == ["sequence", "start", "end", "strand", "label", "split", "chrom"]
    positives, negatives = frame[frame["label"] == 1], frame[frame["label"] == 0]
    # 7 records, one duplicate TSS, one straddling the train/val boundary at 100 kb: 5 promoters.
    assert len(positives) == 5 and len(negatives) == 5
    assert positives.set_index("start")["split"].to_dict() == {
        10_000 - PROMOTER_WIDTH: "train", 29_999: "train", 60_000 - PROMOTER_WIDTH: "train", 124_999: "val",
        170_000 - PROMOTER_WIDTH: "test",
    }  # fmt: skip
    for row in frame.itertuples():
        window = sequence[row.start : row.end]
        assert row.sequence == (window if row.strand == "+" else _rc(window))
        assert row.end - row.start == PROMOTER_WIDTH and "N" not in row.sequence
    assert pd.crosstab(frame["split"], frame["label"]).diff(axis=1)[1].eq(0).all()
    # Background keeps 2 kb away from every upstream region (either strand).
    regions = read_upstream_regions(path).query("chrom == 'chrT'")
    for row in negatives.itertuples():
        assert ((row.end <= regions["start"] - 2000) | (row.start >= regions["end"] + 2000)).all()
        assert row.split == split_by_segments(corpus, "fly", "chrT", [row.start], [row.end])[0]
    assert set(frame["chrom"]) == {"fly:chrT"}
    edges = np.linspace(0, 1, GC_BINS + 1)
    for split in ("train", "val", "test"):
        gc = [frame[(frame["split"] == split) & (frame["label"] == k)]["sequence"].map(gc_content) for k in (0, 1)]
        assert np.abs(np.histogram(gc[0], edges)[0] - np.histogram(gc[1], edges)[0]).sum() <= 2


def test_fly_promoters_refuse_an_upstream_file_that_disagrees_with_the_genome(fly):
    sequence, ids, path, corpus = fly
    shifted = TOKENIZER.encode("A" + sequence[:-1], dtype=np.uint8)
    with pytest.raises(ValueError, match=r"NM_0_up_2000_chrT_8001_f differs from fly:chrT\[8000:10000\]"):
        parse_fly_promoters(path, shifted, corpus, genome="fly", chrom="chrT")
    with pytest.raises(ValueError, match="no upstream region on chrZ"):
        parse_fly_promoters(path, ids, corpus, genome="fly", chrom="chrZ")


# Species -------------------------------------------------------------------------------------------------


def test_species_windows_come_from_their_split_segments(tmp_path):
    rng = np.random.default_rng(5)
    genomes = {
        "ga": {"c1": _random_dna(rng, 6000), "c2": "N" * 100 + _random_dna(rng, 3000, gc=0.7)},
        # A low-complexity genome: many windows are identical, so duplicates must be refused.
        "gb": {"x": "ACGTACGTTT" * 500 + _random_dna(rng, 2000)},
    }
    corpus = Corpus(
        "toy",
        train=(Segment("ga", "c1"), Segment("gb", "x", 0, 5500)),
        val=(Segment("ga", "c2", 0, 1500),),
        test=(Segment("ga", "c2", 1500), Segment("gb", "x", 5500)),
    )
    encoded = {g: {c: TOKENIZER.encode(s, dtype=np.uint8) for c, s in chroms.items()} for g, chroms in genomes.items()}
    per_class = {"train": 30, "val": 5, "test": 6}
    with pytest.raises(ValueError, match="corpus toy has no val segment of gb: cannot draw b windows"):
        sample_species_windows(encoded, corpus, {"a": "ga", "b": "gb"}, per_class, width=50)
    corpus = dataclasses.replace(
        corpus,
        val=(*corpus.val, Segment("gb", "x", 5500, 5600)),
        test=(Segment("ga", "c2", 1500), Segment("gb", "x", 5600)),
    )
    frame = sample_species_windows(encoded, corpus, {"a": "ga", "b": "gb"}, per_class, width=50)
    counts = pd.crosstab(frame["split"], frame["label"])
    assert counts.loc["train"].tolist() == [30, 30] and counts.loc["val"].tolist() == [5, 5]
    assert counts.loc["test"].tolist() == [6, 6]
    assert frame["sequence"].is_unique and not frame["sequence"].str.contains("N").any()
    for row in frame.itertuples():
        genome, chrom = row.chrom.split(":")
        window = genomes[genome][chrom][row.start : row.end]
        assert row.sequence == (window if row.strand == "+" else _rc(window))
        segments = corpus.segments(row.split)
        assert any(s.contains(genome, chrom, row.start, row.end) for s in segments)
        assert row.label == {"ga": 0, "gb": 1}[genome]
    again = sample_species_windows(encoded, corpus, {"a": "ga", "b": "gb"}, per_class, width=50)
    pd.testing.assert_frame_equal(frame, again)


# load_labelled: fetch, parse once, cache ------------------------------------------------------------------


def test_load_labelled_builds_once_then_reads_the_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    files = {
        "janggu/resources/sample.fa": [("chr1:10-30", _random_dna(rng, 20)), ("chr5:10-30", _random_dna(rng, 20))],
        "janggu/resources/sample_test.fa": [("chr2:10-30", _random_dna(rng, 20))],
        "janggu/resources/sample2.fa": [("chr6:10-30", _random_dna(rng, 20)), ("chr7:1-21", _random_dna(rng, 20))],
        "janggu/resources/sample2_test.fa": [("chr2:50-70", _random_dna(rng, 20))],
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    wheel = PyPIArtifact("janggu", "0.10.2", "janggu-0.10.2-py2.py3-none-any.whl")
    members = []
    with zipfile.ZipFile(mirror / wheel.filename, "w") as zf:
        for member, records in files.items():
            text = "".join(f">{h}\n{s}\n" for h, s in records).encode()
            zf.writestr(member, text)
            members.append(PinnedMember(wheel, member, hashlib.sha256(text).hexdigest()))
    task = dataclasses.replace(TASKS["oct4-mafk"], members=tuple(members))
    monkeypatch.setitem(datasets.TASKS, "oct4-mafk", task)
    cache = tmp_path / "cache"
    frame = load_labelled("oct4-mafk", cache_dir=cache, mirror=mirror)
    assert list(frame.columns) == ["sequence", "label", "split", "chrom", "start", "end", "strand"]
    # Rows in split order, then by position: train chr5 chr6 chr7, val chr1, test chr2:10 chr2:50.
    assert frame["label"].tolist() == [1, 0, 0, 1, 1, 0] and frame["label"].dtype == np.int64
    assert frame["split"].tolist() == ["train", "train", "train", "val", "test", "test"]
    (table,) = (cache / "parsed").glob("labelled-oct4-mafk-*-v*.csv.gz")

    def no_fetch(*args, **kwargs):
        raise AssertionError("the second load must not fetch or parse")

    original = datasets.fetch_member
    monkeypatch.setattr(datasets, "fetch_member", no_fetch)
    again = load_labelled("oct4-mafk", cache_dir=cache)
    pd.testing.assert_frame_equal(again, frame, check_dtype=False)
    assert again["label"].dtype == np.int64 and again["start"].dtype == np.int64
    # A damaged cache is rebuilt, not trusted.
    table.write_bytes(b"not gzip")
    monkeypatch.setattr(datasets, "fetch_member", original)
    rebuilt = load_labelled("oct4-mafk", cache_dir=cache, mirror=mirror)
    pd.testing.assert_frame_equal(rebuilt, frame, check_dtype=False)


# Real data (may download) --------------------------------------------------------------------------------


@pytest.mark.data
def test_real_oct4_mafk():
    frame = load_labelled("oct4-mafk")
    counts = pd.crosstab(frame["split"], frame["label"])
    assert counts.to_dict("index") == {"test": {0: 359, 1: 328}, "train": {0: 3315, 1: 3309}, "val": {0: 326, 1: 360}}
    assert (frame["sequence"].str.len() == 200).all()


@pytest.mark.data
def test_real_ars1():
    frame = load_ars1_variants()
    assert len(frame) == 29_107
    assert frame["split"].value_counts().to_dict() == {"train": 23_285, "val": 2_910, "test": 2_912}
    assert frame["n_mutations"].min() >= 1 and (frame["sequence"].str.len() == 150).all()
    assert load_labelled("ars1")["label"].equals(frame["log_enrichment"])


@pytest.mark.data
def test_real_fly_promoters():
    frame = load_labelled("fly-promoters")
    counts = pd.crosstab(frame["split"], frame["label"])
    assert counts.to_dict("index") == {"test": {0: 421, 1: 421}, "train": {0: 2627, 1: 2627}, "val": {0: 359, 1: 359}}
    assert set(frame["chrom"]) == {"fly-dm3:chr2R"}


@pytest.mark.data
def test_real_species():
    frame = load_labelled("species")
    counts = pd.crosstab(frame["split"], frame["label"])
    assert counts.loc["train"].tolist() == [4_000] * 5 and counts.loc["test"].tolist() == [500] * 5
    assert counts.loc["val"].tolist() == [500] * 5
