"""Pretraining corpora: named sets of genome segments split into train / val / test, with no base in two splits.

A ``Segment`` is a 0-based half-open region of one chromosome of a named genome
(``zoo.domains.genomics.genomes``). Whole chromosomes are held out where a genome has several (yeast,
human); a genome with a single chromosome (fly arm 2R, worm X, E. coli) holds out its last few megabases
instead, so every species is seen in training and measured on bases it never saw.

``dna-corpus`` (about 63 Mb; the sizes are checked when loaded):

======  =======================================  =================================  ========================
genome  train                                    val                                test
======  =======================================  =================================  ========================
yeast   chr01..chr14                             chr15                              chr16
fly     chr2R [0, 17 Mb)                          chr2R [17, 19 Mb)                   chr2R [19 Mb, end)
worm    chrX [0, 14 Mb)                           chrX [14, 16 Mb)                    chrX [16 Mb, end)
human   chr3_42M [0, 1.6 Mb), chr4_103M          chr3_42M [1.6 Mb, end)             chr5_124M
E.coli  NC_008253 [0, 4 Mb)                       NC_008253 [4, 4.45 Mb)              NC_008253 [4.45 Mb, end)
======  =======================================  =================================  ========================

Labelled tasks drawn from the same genomes (species of origin, fly promoters) place their val / test rows in
the corpus's val / test segments with ``split_of_region``; ``overlapping_rows`` finds rows of any table that
fall on training segments, so a fine-tuning run can warn that its test regions were seen in pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Segment:
    """A 0-based half-open region ``[start, end)`` of chromosome ``chrom`` of the named genome ``genome``."""

    genome: str
    """Name in ``zoo.domains.genomics.genomes.GENOMES``."""
    chrom: str
    """Chromosome name in that genome."""
    start: int = 0
    """First base (0-based)."""
    end: int | None = None
    """One past the last base; None for the chromosome's end."""

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            where = f"{self.genome}:{self.chrom}"
            raise ValueError(f"segment {where} needs 0 <= start < end, got [{self.start}, {self.end})")

    @property
    def key(self) -> str:
        """``genome:chrom:start-end`` (``end`` empty for the chromosome's end): the segment's name in data modules."""
        return f"{self.genome}:{self.chrom}:{self.start}-{'' if self.end is None else self.end}"

    def contains(self, genome: str, chrom: str, start: int, end: int) -> bool:
        """Whether the region lies entirely inside this segment."""
        return self._same(genome, chrom) and start >= self.start and (self.end is None or end <= self.end)

    def overlaps(self, genome: str, chrom: str, start: int, end: int) -> bool:
        """Whether the region shares at least one base with this segment."""
        return self._same(genome, chrom) and end > self.start and (self.end is None or start < self.end)

    def _same(self, genome: str, chrom: str) -> bool:
        return genome == self.genome and chrom == self.chrom


@dataclass(frozen=True)
class Corpus:
    """Named train / val / test segments."""

    name: str
    """Registry name, e.g. ``dna-corpus``."""
    train: tuple[Segment, ...]
    """Pretraining segments."""
    val: tuple[Segment, ...]
    """Validation segments (held out)."""
    test: tuple[Segment, ...]
    """Test segments (held out)."""
    description: str = ""
    """One line for listings."""

    def __post_init__(self) -> None:
        # A base in two splits would leak: refuse to even define such a corpus.
        for a in SPLITS:
            for b in SPLITS[SPLITS.index(a) + 1 :]:
                for x in getattr(self, a):
                    for y in getattr(self, b):
                        if x.overlaps(y.genome, y.chrom, y.start, y.end if y.end is not None else 2**62):
                            raise ValueError(f"corpus {self.name}: {a} segment {x.key} overlaps {b} segment {y.key}")

    def segments(self, split: str) -> tuple[Segment, ...]:
        """The segments of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)

    @property
    def genomes(self) -> tuple[str, ...]:
        """Genome names used by the corpus, in first-use order."""
        names = [s.genome for split in SPLITS for s in self.segments(split)]
        return tuple(dict.fromkeys(names))


_MB = 1_000_000
_YEAST = "yeast-s288c"

CORPORA: dict[str, Corpus] = {
    "dna-corpus": Corpus(
        name="dna-corpus",
        train=(
            *(Segment(_YEAST, f"chr{i:02d}") for i in range(1, 15)),
            Segment("fly-dm3", "chr2R", 0, 17 * _MB),
            Segment("worm-ce2", "chrX", 0, 14 * _MB),
            Segment("human-hg19", "chr3_42M", 0, 1_600_000),
            Segment("human-hg19", "chr4_103M"),
            Segment("ecoli-536", "NC_008253", 0, 4 * _MB),
        ),
        val=(
            Segment(_YEAST, "chr15"),
            Segment("fly-dm3", "chr2R", 17 * _MB, 19 * _MB),
            Segment("worm-ce2", "chrX", 14 * _MB, 16 * _MB),
            Segment("human-hg19", "chr3_42M", 1_600_000),
            Segment("ecoli-536", "NC_008253", 4 * _MB, 4_450_000),
        ),
        test=(
            Segment(_YEAST, "chr16"),
            Segment("fly-dm3", "chr2R", 19 * _MB),
            Segment("worm-ce2", "chrX", 16 * _MB),
            Segment("human-hg19", "chr5_124M"),
            Segment("ecoli-536", "NC_008253", 4_450_000),
        ),
        description="yeast, fly chr2R, worm chrX, three 2 Mb human pieces and E. coli: about 63 Mb",
    ),
}


def get_corpus(name: str) -> Corpus:
    """The corpus ``name``; an unknown name is an error listing the known ones."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def load_split(
    corpus: str | Corpus, split: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Segment key -> uint8 token ids for every segment of ``split``, fetching each genome once.

    The arrays are views of the genome's chromosomes (no copy).
    """
    from zoo.domains.genomics.genomes import load_genome

    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    out, genomes = {}, {}
    for segment in corpus.segments(split):
        if segment.genome not in genomes:
            genomes[segment.genome] = load_genome(segment.genome, cache_dir=cache_dir, mirror=mirror)
        chromosomes = genomes[segment.genome].chromosomes
        if segment.chrom not in chromosomes:
            raise ValueError(f"corpus {corpus.name}: genome {segment.genome} has no chromosome {segment.chrom!r}")
        sequence = chromosomes[segment.chrom]
        end = len(sequence) if segment.end is None else segment.end
        if end > len(sequence):
            length = f"{len(sequence):,}"
            raise ValueError(f"corpus {corpus.name}: segment {segment.key} ends past {segment.chrom} ({length} bases)")
        out[segment.key] = sequence[segment.start : end]
    return out


def split_of_region(corpus: str | Corpus, genome: str, chrom: str, start: int, end: int) -> str | None:
    """The split whose segment holds the whole region ``[start, end)``; None if outside the corpus or straddling."""
    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    for split in SPLITS:
        if any(s.contains(genome, chrom, start, end) for s in corpus.segments(split)):
            return split
    return None


def overlapping_rows(frame: pd.DataFrame, corpus_name: str) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` whose region overlaps a *training* segment of the corpus.

    ``frame`` needs ``chrom`` (``"<genome>:<chromosome>"``), ``start`` and ``end`` (0-based half-open);
    rows without a region (NaN) never overlap.
    """
    missing = [c for c in ("chrom", "start", "end") if c not in frame.columns]
    if missing:
        raise ValueError(f"overlapping_rows needs columns chrom, start, end; missing {missing}")
    train = get_corpus(corpus_name).train
    mask = np.zeros(len(frame), dtype=bool)
    for i, (chrom, start, end) in enumerate(zip(frame["chrom"], frame["start"], frame["end"])):
        if not isinstance(chrom, str) or pd.isna(start) or pd.isna(end):
            continue
        genome, _, name = chrom.partition(":")
        mask[i] = any(s.overlaps(genome, name, int(start), int(end)) for s in train)
    return mask
