"""Protein corpora: BLAST v4 parsing on a fake database, fake pinned artifacts, split invariants; the real
``uniprot-20k`` and ``swissprot-435k`` in the ``data`` tier."""

import gzip
import hashlib
import io
import struct
import tarfile

import numpy as np
import pytest

from zoo.data.artifacts import DebianArtifact, fetch_members
from zoo.domains.protein import corpus as corpus_module
from zoo.domains.protein.corpus import (
    NCBISTDAA,
    Corpus,
    CorpusSource,
    get_source,
    load_corpus,
    read_blast_protein_db,
    read_blast_protein_dbs,
)
from zoo.domains.protein.similarity import nearest_train_similarity
from zoo.domains.protein.tokenizer import STANDARD

AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _deb(files: dict[str, bytes]) -> bytes:
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n") + _ar_member("data.tar.gz", tarball.getvalue())


def _defline(title: str) -> bytes:
    # Blast-def-line-set as BLAST writes it: indefinite-length SEQUENCEs, title as a VisibleString.
    raw = title.encode()
    length = bytes([len(raw)]) if len(raw) < 0x80 else b"\x81" + bytes([len(raw)])
    return b"\x30\x80\x30\x80\xa0\x80\x1a" + length + raw + b"\x00\x00" + b"\x00" * 8


def _blast_db(entries: list[tuple[str, str]]) -> tuple[bytes, bytes, bytes]:
    """``.pin``, ``.psq``, ``.phr`` bytes of a BLAST v4 protein database holding ``(title, sequence)`` entries."""
    code = {letter: i for i, letter in enumerate(NCBISTDAA)}
    psq, phr = bytearray(b"\x00"), bytearray()
    seq_offsets, header_offsets = [], []
    for title, sequence in entries:
        header_offsets.append(len(phr))
        phr += _defline(title)
        seq_offsets.append(len(psq))
        psq += bytes(code[c] for c in sequence) + b"\x00"
    header_offsets.append(len(phr))
    seq_offsets.append(len(psq))
    title, stamp = b"toy/goasp.fasta", b"Jan 20, 2022  10:32 AM\x00\x00"
    total = sum(len(s) for _, s in entries)
    pin = (
        struct.pack(">ii", 4, 1)
        + struct.pack(">i", len(title)) + title
        + struct.pack(">i", len(stamp)) + stamp
        + struct.pack(">i", len(entries)) + struct.pack("<Q", total)
        + struct.pack(">i", max(len(s) for _, s in entries))
        + struct.pack(f">{len(entries) + 1}i", *header_offsets)
        + struct.pack(f">{len(entries) + 1}i", *seq_offsets)
    )  # fmt: skip
    return pin, bytes(psq), bytes(phr)


def test_blast_reader_decodes_ncbistdaa_and_names_from_deflines(tmp_path):
    entries = [("P12345|GO:0005737,GO:0005737", "MKVLAAGIX"), ("Q9XYZ1 some protein", "ACDEFGHIKLMNPQRSTVWYUBZO")]
    long_title = "A0A000|" + "GO:0000001," * 20  # longer than 127 bytes: BER long-form length
    entries.append((long_title, "MW"))
    for suffix, data in zip(("pin", "psq", "phr"), _blast_db(entries)):
        (tmp_path / f"db.{suffix}").write_bytes(data)
    rows = read_blast_protein_db(tmp_path / "db.pin", tmp_path / "db.psq", tmp_path / "db.phr")
    assert rows == [("P12345", "MKVLAAGIX"), ("Q9XYZ1", "ACDEFGHIKLMNPQRSTVWYUBZO"), ("A0A000", "MW")]
    assert [n for n, _ in read_blast_protein_db(tmp_path / "db.pin", tmp_path / "db.psq")] == [
        "entry0", "entry1", "entry2"
    ]  # fmt: skip


def test_blast_reader_refuses_other_formats(tmp_path):
    pin, psq, _ = _blast_db([("A|x", "MK")])
    (tmp_path / "n.pin").write_bytes(struct.pack(">ii", 4, 0) + pin[8:])
    (tmp_path / "n.psq").write_bytes(psq)
    with pytest.raises(ValueError, match="not a BLAST v4 protein database"):
        read_blast_protein_db(tmp_path / "n.pin", tmp_path / "n.psq")
    (tmp_path / "t.pin").write_bytes(pin[:-6])
    with pytest.raises(ValueError, match="truncated BLAST index"):
        read_blast_protein_db(tmp_path / "t.pin", tmp_path / "n.psq")


def test_blast_databases_are_deduplicated_by_sequence(tmp_path):
    dbs = []
    for name, entries in (("BPO", [("A1|x", "MKV"), ("B2|x", "MWW")]), ("CCO", [("A1|y", "MKV"), ("A1|z", "MKL")])):
        paths = tuple(tmp_path / f"{name}.{s}" for s in ("pin", "psq", "phr"))
        for path, data in zip(paths, _blast_db(entries)):
            path.write_bytes(data)
        dbs.append(paths)
    names, sequences = read_blast_protein_dbs(dbs)
    assert list(zip(names, sequences)) == [("A1", "MKV"), ("B2", "MWW"), ("A1_2", "MKL")]


def _families(n_families=40, members=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for f in range(n_families):
        ancestor = rng.choice(AA, size=int(rng.integers(50, 120)))
        for m in range(members):
            child = ancestor.copy()
            hit = rng.random(len(child)) < 0.05
            child[hit] = rng.choice(AA, size=int(hit.sum()))
            out.append((f"sp|F{f}M{m}|TOY", "".join(child)))
    return out


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """Both kinds of source, as pinned members of fake Debian packages in a mirror folder."""
    records = _families()
    fasta = gzip.compress("".join(f">{n}\n{s}\n" for n, s in records).encode())
    pin, psq, phr = _blast_db([(n.split("|")[1] + "|GO:1", s) for n, s in records])
    files = {"db/DB.fasta.gz": fasta, "db/x.pin": pin, "db/x.psq": psq, "db/x.phr": phr}
    deb = _deb(files)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toyprot_1.0-1_all.deb").write_bytes(deb)
    artifact = DebianArtifact("toyprot", "1.0-1", "pool/main/t/toyprot/toyprot_1.0-1_all.deb", sha256=_sha(deb))
    n_residues = sum(len(s) for _, s in records)
    sources = {
        "toy-fasta": CorpusSource(artifact, "fasta", (("db/DB.fasta.gz", _sha(fasta)),), len(records), n_residues, "x"),
        "toy-blast": CorpusSource(
            artifact, "blast", tuple((f"db/x.{s}", _sha(files[f"db/x.{s}"])) for s in ("pin", "psq", "phr")),
            len(records), n_residues, "x",
        ),
    }  # fmt: skip
    monkeypatch.setattr(corpus_module, "SOURCES", sources)
    return mirror, records


@pytest.mark.parametrize("name", ["toy-fasta", "toy-blast"])
def test_load_corpus_from_fake_artifacts_splits_by_similarity_and_caches(tmp_path, fake_sources, name, monkeypatch):
    mirror, records = fake_sources
    cache = tmp_path / "cache"
    corpus = load_corpus(name, cache_dir=cache, mirror=mirror, fractions=(0.8, 0.1, 0.1))
    assert corpus.sequences == [s for _, s in records]
    expected_names = [n for n, _ in records] if name == "toy-fasta" else [n.split("|")[1] for n, _ in records]
    assert corpus.names == expected_names
    # The three members of a family form one cluster, so they share a split.
    family = np.repeat(np.arange(40), 3)
    for f in range(40):
        assert len(set(corpus.cluster_ids[family == f].tolist())) == 1
        assert len(set(corpus.split[family == f].tolist())) == 1
    assert corpus.sizes()["val"][0] == 12 and corpus.sizes()["test"][0] == 12
    assert np.nanmax(nearest_train_similarity(corpus.sequences, corpus.split)) < 0.1
    # Second load: from the parsed cache, no clustering.
    monkeypatch.setattr(corpus_module, "cluster_sequences", lambda *a, **k: pytest.fail("clustered again"))
    again = load_corpus(name, cache_dir=cache, mirror=mirror, fractions=(0.8, 0.1, 0.1))
    assert again.sequences == corpus.sequences and (again.split == corpus.split).all()
    assert (again.cluster_ids == corpus.cluster_ids).all()


def test_a_wrong_size_is_an_error_naming_the_counts(tmp_path, fake_sources, monkeypatch):
    mirror, records = fake_sources
    source = corpus_module.SOURCES["toy-fasta"]
    bad = CorpusSource(source.artifact, "fasta", source.members, len(records) + 1, source.n_residues, "x")
    monkeypatch.setitem(corpus_module.SOURCES, "toy-fasta", bad)
    with pytest.raises(ValueError, match="parsed 120 sequences"):
        load_corpus("toy-fasta", cache_dir=tmp_path / "c", mirror=mirror)


def test_corpus_refuses_a_cluster_in_two_splits():
    with pytest.raises(ValueError, match="cluster 0 spans several splits"):
        Corpus("bad", ["a", "b"], ["MK", "MK"], np.array([0, 0]), np.array(["train", "test"]))
    with pytest.raises(ValueError, match="unknown protein corpus 'uniprot20k'"):
        load_corpus("uniprot20k")


@pytest.fixture(scope="module")
def real_cache():
    # The user's cache, as every other data test: the debug protein recipe reads the same corpus, and a fresh
    # machine then downloads and clusters it once, not twice.
    from zoo.data.artifacts import default_cache_dir

    return default_cache_dir()


@pytest.mark.data
def test_uniprot_20k_is_split_by_similarity(real_cache):
    corpus = load_corpus("uniprot-20k", cache_dir=real_cache)
    assert len(corpus) == 20_000 and sum(map(len, corpus.sequences)) == 9_055_569
    sizes = corpus.sizes()
    assert sizes["train"][0] + sizes["val"][0] + sizes["test"][0] == 20_000
    assert sizes["val"][0] == sizes["test"][0] == 1_000
    # Exact clustering below 50k sequences: no held-out sequence shares 10% of its 5-mers with training.
    assert np.nanmax(nearest_train_similarity(corpus.sequences, corpus.split)) < 0.1


@pytest.mark.data
def test_swissprot_435k_parses_the_blast_databases(real_cache):
    # The parser on the real databases (the clustering of 435k sequences, minutes on one core, is tested on
    # fakes above and runs once per user, then is cached): every pinned member, every sequence, no duplicate.
    source = get_source("swissprot-435k")
    paths = fetch_members(source.artifact, source.members, cache_dir=real_cache)
    names, sequences = read_blast_protein_dbs([tuple(paths[i : i + 3]) for i in range(0, len(paths), 3)])
    assert len(sequences) == len(set(sequences)) == len(names) == 435_059
    assert sum(map(len, sequences)) == source.n_residues == 165_223_205
    assert set("".join(sequences[:1000])) <= set(STANDARD + "XBZUO")
