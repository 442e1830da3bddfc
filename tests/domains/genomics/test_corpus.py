"""Pretraining corpora: segment geometry, leak refusal, split lookup, loading (fake genomes; real sizes in ``data``)."""

import numpy as np
import pandas as pd
import pytest

from zoo.domains.genomics import corpus as corpus_module
from zoo.domains.genomics.corpus import CORPORA, Corpus, Segment, load_split, overlapping_rows, split_of_region
from zoo.domains.genomics.genomes import Genome


def test_segment_contains_and_overlaps_are_half_open():
    segment = Segment("g", "c", 10, 20)
    assert segment.contains("g", "c", 10, 20) and not segment.contains("g", "c", 9, 20)
    assert segment.overlaps("g", "c", 19, 30) and not segment.overlaps("g", "c", 20, 30)
    assert not segment.overlaps("g", "other", 12, 14) and not segment.overlaps("h", "c", 12, 14)
    open_ended = Segment("g", "c", 10)
    assert open_ended.contains("g", "c", 10, 10**9) and open_ended.key == "g:c:10-"
    with pytest.raises(ValueError, match="0 <= start < end"):
        Segment("g", "c", 5, 5)


def test_a_corpus_with_a_base_in_two_splits_is_refused():
    with pytest.raises(ValueError, match="train segment g:c:0-100 overlaps test segment g:c:99-"):
        Corpus("leaky", train=(Segment("g", "c", 0, 100),), val=(), test=(Segment("g", "c", 99),))


def test_split_of_region_and_straddling():
    corpus = CORPORA["dna-corpus"]
    assert split_of_region(corpus, "fly-dm3", "chr2R", 19_500_000, 19_500_300) == "test"
    assert split_of_region(corpus, "fly-dm3", "chr2R", 17_500_000, 17_500_300) == "val"
    assert split_of_region(corpus, "yeast-s288c", "chr03", 0, 300) == "train"
    assert split_of_region(corpus, "fly-dm3", "chr2R", 16_999_900, 17_000_100) is None  # straddles train/val
    assert split_of_region(corpus, "fly-dm3", "chr2L", 0, 300) is None  # not in the corpus


def test_overlapping_rows_marks_training_regions_only():
    frame = pd.DataFrame(
        {
            "chrom": ["fly-dm3:chr2R", "fly-dm3:chr2R", "yeast-s288c:chr16", None],
            "start": [16_999_900, 19_000_000, 5, np.nan],
            "end": [17_000_100, 19_000_200, 10, np.nan],
        }
    )
    assert overlapping_rows(frame, "dna-corpus").tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match=r"missing \['end'\]"):
        overlapping_rows(frame.drop(columns="end"), "dna-corpus")


def test_load_split_slices_segments_and_checks_bounds(monkeypatch):
    genome = Genome("toy", {"c": np.arange(100, dtype=np.uint8) % 4 + 7})
    monkeypatch.setattr("zoo.domains.genomics.genomes.load_genome", lambda name, **kw: genome)
    toy = Corpus(
        "toy", train=(Segment("toy", "c", 0, 60),), val=(Segment("toy", "c", 60, 80),), test=(Segment("toy", "c", 80),)
    )
    parts = {split: load_split(toy, split) for split in ("train", "val", "test")}
    assert [len(a) for p in parts.values() for a in p.values()] == [60, 20, 20]
    assert np.array_equal(np.concatenate([a for p in parts.values() for a in p.values()]), genome.chromosomes["c"])
    too_long = Corpus("bad", train=(Segment("toy", "c", 0, 101),), val=(), test=())
    with pytest.raises(ValueError, match="ends past c"):
        load_split(too_long, "train")
    assert corpus_module.get_corpus("dna-corpus").genomes == (
        "yeast-s288c",
        "fly-dm3",
        "worm-ce2",
        "human-hg19",
        "ecoli-536",
    )


@pytest.mark.data
def test_real_corpus_sizes():
    sizes = {split: sum(len(a) for a in load_split("dna-corpus", split).values()) for split in ("train", "val", "test")}
    assert sizes == {"train": 48_631_970, "val": 5_941_292, "test": 7_302_544}
