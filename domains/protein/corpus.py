"""Protein pretraining corpora: named sets of sequences from pinned artifacts, split by sequence similarity.

=================  ==============================================  ==========================  ==================
name               content                                         source                      licence
=================  ==============================================  ==========================  ==================
``uniprot-20k``    20,000 UniProt sequences, 9,055,569 residues    Debian mmseqs2-examples     GPL-3 packaging,
                   (mmseqs2's example database)                    14-7e284+ds-1               UniProt data
``swissprot-435k`` 435,059 unique Swiss-Prot sequences (2014),      Debian metastudent-data     GPL-2+ packaging,
                   165,223,205 residues, deduplicated over the      2.0.1-8 (225 MB)            UniProt/GOA data
                   BPO / MFO / CCO BLAST databases
=================  ==============================================  ==========================  ==================

The data is downloaded into the user's cache at run time, never shipped. A loaded ``Corpus`` has every
sequence (as in the source: the tokenizer applies the residue policy), its name, its similarity cluster and
its split (``zoo.domains.protein.similarity``: whole clusters go to one split, so no held-out sequence shares
``min_shared`` of its k-mers with a training sequence). Clustering takes seconds to minutes, so the result is
cached as ``<cache>/parsed/protein-<name>-<source sha256 prefix>-<clustering>-v<format>.npz`` (written
atomically) and the split invariants are checked again on every load.

Measured splits (defaults: k 5, ``min_shared`` 0.1, fractions 0.9 / 0.05 / 0.05, seed 0):

* ``uniprot-20k`` (exact single linkage, 6,797 clusters): train 18,000 sequences / 8,309,671 residues, val
  1,000 / 355,659, test 1,000 / 390,239; no held-out sequence shares 10% of its 5-mers with a training one.
* ``swissprot-435k`` (sketch clustering, 264,787 clusters, then ``hold_out_strictly``; 17 minutes in all on a
  loaded 2-core EPYC, once, then cached): train 433,580 sequences / 164,952,428 residues, val 771 / 140,407,
  test 708 / 130,370. The sketch misses many family pairs here: before the strict pass, 95.8% of a sample of
  1,000 test sequences had a training sequence with ``shared >= 0.1``; the pass moves every such cluster into
  train, and a sample of 1,000 held-out sequences afterwards has max 0.0996 (median 0.080). What stays held out
  are the proteins without a relative in Swiss-Prot at this threshold (short, unusual ones: 180 residues on
  average); ask for larger held-out ``fractions`` to keep more of them.

``swissprot-435k`` is stored as BLAST v4 databases (``.pin`` index, ``.psq`` residues, ``.phr`` headers). No
maintained Python library reads them without NCBI's BLAST binaries (``blastdbcmd``), and the format is small,
so ``read_blast_protein_db`` parses it with numpy.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from zoo.data.artifacts import DebianArtifact, atomic_file, default_cache_dir, fetch_members
from zoo.domains.protein.similarity import (
    DEFAULT_K,
    DEFAULT_MIN_SHARED,
    SPLITS,
    cluster_sequences,
    hold_out_strictly,
    kmer_matrix,
    split_by_cluster,
)

logger = logging.getLogger(__name__)

#: Bump when parsing or clustering changes, so caches written by older code are not reused.
PARSED_FORMAT = 2  # 2: held-out clusters that resemble training moved to train (hold_out_strictly)
DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)


@dataclass(frozen=True)
class CorpusSource:
    """Where a named corpus comes from: pinned members of one artifact, FASTA files or BLAST v4 databases."""

    artifact: DebianArtifact
    """The published package."""
    kind: Literal["fasta", "blast"]
    """``fasta``: each member is a FASTA file (plain or ``.gz``); ``blast``: members are ``.pin`` / ``.psq`` /
    ``.phr`` triples of BLAST v4 protein databases, deduplicated by sequence across databases."""
    members: tuple[tuple[str, str], ...]
    """``(member path, sha256)`` in reading order."""
    n_sequences: int
    """Number of (unique) sequences, checked after parsing."""
    n_residues: int
    """Total residues, checked after parsing."""
    license: str
    """Licence of the data / packaging."""
    description: str = ""
    """One line for listings."""

    @property
    def cache_key(self) -> str:
        """Identifies the parsed corpus: a digest of the pinned member checksums."""
        return hashlib.sha256("".join(sha for _, sha in self.members).encode()).hexdigest()[:16]


_METASTUDENT = "usr/share/metastudent-data/dataset_201401"

SOURCES: dict[str, CorpusSource] = {
    "uniprot-20k": CorpusSource(
        artifact=DebianArtifact(
            "mmseqs2-examples",
            "14-7e284+ds-1",
            "pool/main/m/mmseqs2/mmseqs2-examples_14-7e284+ds-1_all.deb",
            sha256="ad2a14a4ca48735eff75de49b702ba969187c4e3b7814b8ae4ec0073f17cd4d2",
        ),
        kind="fasta",
        members=(
            (
                "usr/share/doc/mmseqs2/example-data/DB.fasta.gz",
                "92a65aa435f5d3e0f33eb47d87910fe7fc6033a28bf4ed1367094377d791d567",
            ),
        ),
        n_sequences=20_000,
        n_residues=9_055_569,
        license="GPL-3 packaging, UniProt data (CC-BY-4.0)",
        description="20,000 UniProt sequences (mmseqs2's example database): quick runs",
    ),
    "swissprot-435k": CorpusSource(
        artifact=DebianArtifact(
            "metastudent-data",
            "2.0.1-8",
            "pool/main/m/metastudent-data/metastudent-data_2.0.1-8_all.deb",
            sha256="020ed0c560a5ba96f39c434399b3ecf0fa790a4776c4aac24458f837969ae54b",
        ),
        kind="blast",
        members=(
            (f"{_METASTUDENT}/BPO/goasp.fasta.pin", "4eb18922352aff576b797af6fad9e4010eb18da9b80892c59afe7376c36fd71d"),
            (f"{_METASTUDENT}/BPO/goasp.fasta.psq", "f5b6af3f8eab621a68e199d8cde4795a184a9770ff3c5843e80aeeb20d4d7216"),
            (f"{_METASTUDENT}/BPO/goasp.fasta.phr", "ab5caf02cca2d67fd2930ec4a61ac8967667fc8eb9012715baec1013b5fd821b"),
            (f"{_METASTUDENT}/MFO/goasp.fasta.pin", "9a95d3968231b27d382863df91b8b91521cbe21d387eb218cd0b3f87a1326ae8"),
            (f"{_METASTUDENT}/MFO/goasp.fasta.psq", "1c824c6e73ab4440d92b750986feccec6536ca266f7cea7b94a285ee53ae23c7"),
            (f"{_METASTUDENT}/MFO/goasp.fasta.phr", "41af693ad3d8258b5a765882e94a7ccfae41e6a8f291fe439531bfdf1c2313d2"),
            (f"{_METASTUDENT}/CCO/goasp.fasta.pin", "3b392d94edfdb77631fdfb36a2ec847e05a4faf0c009c5510ca8c096ace63aca"),
            (f"{_METASTUDENT}/CCO/goasp.fasta.psq", "4210e3ee39a0c3b67851822be2baf39bc3df80e8caaf003f06e7d3258ff834be"),
            (f"{_METASTUDENT}/CCO/goasp.fasta.phr", "78c210bcd47d07e57358c0f0c88e41e5245ec2ca1770199dd8c6d6836feb32fc"),
        ),
        n_sequences=435_059,
        # Unique sequences only: the three databases share most of their entries.
        n_residues=165_223_205,
        license="GPL-2+ packaging, UniProt/GOA 2014 data (CC-BY-4.0)",
        description="435,059 Swiss-Prot sequences (2014) from metastudent's BLAST databases: real runs",
    ),
}


@dataclass(frozen=True)
class Corpus:
    """Sequences of a corpus with their similarity clusters and splits (all lists / arrays of length N)."""

    name: str
    """Registry name, or the FASTA path for a user's file."""
    names: list[str]
    """Sequence names (unique)."""
    sequences: list[str]
    """Amino-acid strings as in the source."""
    cluster_ids: np.ndarray
    """``[N]`` int64 similarity cluster per sequence."""
    split: np.ndarray
    """``[N]`` str: ``train``, ``val`` or ``test``."""

    def __post_init__(self) -> None:
        check_split(self)

    def __len__(self) -> int:
        return len(self.sequences)

    def indices(self, split: str) -> np.ndarray:
        """Row indices ``[n]`` of the sequences of ``split``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return np.flatnonzero(self.split == split)

    def sizes(self) -> dict[str, tuple[int, int]]:
        """``split -> (sequences, residues)``."""
        lengths = np.fromiter((len(s) for s in self.sequences), dtype=np.int64, count=len(self))
        return {s: (int((self.split == s).sum()), int(lengths[self.split == s].sum())) for s in SPLITS}


def check_split(corpus: Corpus) -> None:
    """Raise unless the arrays line up, names are unique, every cluster lies in one split and train is non-empty."""
    n = len(corpus.sequences)
    if len(corpus.names) != n or corpus.cluster_ids.shape != (n,) or corpus.split.shape != (n,):
        raise ValueError(f"corpus {corpus.name}: names, sequences, cluster ids and splits differ in length")
    if len(set(corpus.names)) != n:
        raise ValueError(f"corpus {corpus.name}: sequence names are not unique")
    unknown = set(np.unique(corpus.split).tolist()) - set(SPLITS)
    if unknown:
        raise ValueError(f"corpus {corpus.name}: unknown split labels {sorted(unknown)}")
    if not (corpus.split == "train").any():
        raise ValueError(f"corpus {corpus.name}: no training sequence")
    pairs = np.unique(np.stack([corpus.cluster_ids, np.searchsorted(SPLITS, corpus.split, sorter=np.argsort(SPLITS))]),
                      axis=1)  # fmt: skip
    clusters, counts = np.unique(pairs[0], return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"corpus {corpus.name}: cluster {clusters[counts > 1][0]} spans several splits: that leaks")


def get_source(name: str) -> CorpusSource:
    """The source of corpus ``name``; an unknown name is an error listing the known ones."""
    if name not in SOURCES:
        raise ValueError(f"unknown protein corpus {name!r}; known corpora: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def build_corpus(
    name: str,
    names: Sequence[str],
    sequences: Sequence[str],
    k: int = DEFAULT_K,
    min_shared: float = DEFAULT_MIN_SHARED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Corpus:
    """Cluster ``sequences`` by similarity, split whole clusters, and move into train every held-out cluster
    that still resembles training (``zoo.domains.protein.similarity``; a no-op after exact clustering)."""
    matrix = kmer_matrix(sequences, k)
    cluster_ids = cluster_sequences(sequences, k=k, min_shared=min_shared, seed=seed, matrix=matrix)
    split = split_by_cluster(cluster_ids, fractions, seed=seed)
    split = hold_out_strictly(matrix, cluster_ids, split, min_shared)
    return Corpus(name, list(names), list(sequences), cluster_ids, split)


def load_corpus(
    name: str,
    cache_dir: str | Path | None = None,
    mirror: str | Path | None = None,
    k: int = DEFAULT_K,
    min_shared: float = DEFAULT_MIN_SHARED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Corpus:
    """The named corpus, split by similarity: from the parsed cache, else fetched, parsed, clustered and cached."""
    source = get_source(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tag = f"k{k}-s{min_shared:g}-f{'-'.join(f'{f:g}' for f in fractions)}-seed{seed}"
    parsed = cache / "parsed" / f"protein-{name}-{source.cache_key}-{tag}-v{PARSED_FORMAT}.npz"
    if parsed.is_file():
        return read_corpus(parsed, name)
    paths = fetch_members(source.artifact, source.members, cache_dir=cache, mirror=mirror)
    if source.kind == "fasta":
        from zoo.domains.protein.readers import read_fasta

        records: dict[str, str] = {}
        for path in paths:
            records |= read_fasta(path)
        names, sequences = list(records), list(records.values())
    else:
        names, sequences = read_blast_protein_dbs([tuple(paths[i : i + 3]) for i in range(0, len(paths), 3)])
    residues = sum(len(s) for s in sequences)
    if len(sequences) != source.n_sequences or residues != source.n_residues:
        raise ValueError(
            f"corpus {name}: parsed {len(sequences):,} sequences / {residues:,} residues, expected "
            f"{source.n_sequences:,} / {source.n_residues:,}; delete {cache} entries of {source.artifact.name}"
        )
    logger.info("clustering %d sequences of %s (cached afterwards)", len(sequences), name)
    corpus = build_corpus(name, names, sequences, k, min_shared, fractions, seed)
    write_corpus(corpus, parsed)
    return corpus


def write_corpus(corpus: Corpus, path: Path) -> None:
    """Save a corpus as an uncompressed ``.npz`` (residues as one byte string + offsets), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = [s.encode("ascii") for s in corpus.sequences]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    arrays = {
        "names": np.array(corpus.names, dtype=str),
        "residues": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "offsets": offsets,
        "cluster_ids": corpus.cluster_ids,
        "split": corpus.split.astype(str),
    }
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


def read_corpus(path: Path, name: str) -> Corpus:
    """A corpus written by ``write_corpus``; its split invariants are checked again."""
    with np.load(path, allow_pickle=False) as npz:
        residues, offsets = npz["residues"].tobytes(), npz["offsets"]
        sequences = [residues[a:b].decode("ascii") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        return Corpus(name, npz["names"].tolist(), sequences, npz["cluster_ids"], npz["split"].astype(str))


#: NCBIstdaa code -> residue letter (NCBI's ``seqcode`` table 11); code 0 is the gap that separates sequences.
NCBISTDAA = "-ABCDEFGHIKLMNPQRSTVWXYZU*OJ"
#: ``bytes.translate`` table of NCBIstdaa codes (codes past the table are refused before translating).
_NCBISTDAA_BYTES = NCBISTDAA.encode("ascii").ljust(256, b"\x00")


def read_blast_protein_db(pin: str | Path, psq: str | Path, phr: str | Path | None = None) -> list[tuple[str, str]]:
    """``(name, sequence)`` of every entry of a BLAST v4 protein database, in database order.

    ``.pin`` (big-endian unless noted): version 4, type 1 (protein), title and timestamp (length-prefixed
    strings), entry count, total residues (a little-endian uint64, a quirk of the format), longest entry, then
    ``count + 1`` header offsets into ``.phr`` and ``count + 1`` sequence offsets into ``.psq``. ``.psq`` holds
    NCBIstdaa codes, each entry followed by a 0 byte. The name is the first word of the defline title in
    ``.phr`` (an ASN.1 ``Blast-def-line-set``) up to a ``|``; ``entry<i>`` without ``.phr`` or a title.
    """
    index = Path(pin).read_bytes()
    where = str(pin)
    version, kind = _ints(index, 0, 2, where)
    if version != 4 or kind != 1:
        raise ValueError(f"{where}: not a BLAST v4 protein database (version {version}, type {kind}; need 4, 1)")
    at = 8
    for _ in range(2):  # title, timestamp
        (length,) = _ints(index, at, 1, where)
        at += 4 + length
    (count,) = _ints(index, at, 1, where)
    at += 4 + 8 + 4  # total residues (uint64 LE), longest entry
    header_offsets = _ints(index, at, count + 1, where)
    seq_offsets = _ints(index, at + 4 * (count + 1), count + 1, where)
    raw = Path(psq).read_bytes()
    data = np.frombuffer(raw, dtype=np.uint8)
    if len(data) < seq_offsets[-1]:
        raise ValueError(f"{psq}: {len(data)} bytes, but {where} indexes {seq_offsets[-1]}")
    if data.max(initial=0) >= len(NCBISTDAA):
        raise ValueError(f"{psq}: byte {int(data.max())} is no NCBIstdaa residue code")
    starts, ends = seq_offsets[:-1], seq_offsets[1:] - 1
    # Checked for all entries at once: numpy scalar access per entry was most of the parse time.
    unterminated = (ends < starts) | (data[ends] != 0)
    if unterminated.any():
        raise ValueError(f"{psq}: entry {int(np.argmax(unterminated))} is not followed by the 0 separator")
    # One decode of all residues, then str slices (plain copies of ASCII), not one decode per entry.
    letters = raw.translate(_NCBISTDAA_BYTES).decode("ascii")
    headers = Path(phr).read_bytes() if phr is not None else b""
    bounds = header_offsets.tolist()
    rows = []
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
        title = _defline_title(headers[bounds[i] : bounds[i + 1]]) if headers else None
        name = title.split()[0].split("|")[0] if title else f"entry{i}"
        rows.append((name, letters[start:end]))
    return rows


def read_blast_protein_dbs(databases: Sequence[tuple[Path, Path, Path]]) -> tuple[list[str], list[str]]:
    """``(names, sequences)`` of several BLAST databases, each sequence once (the first name it had);
    a name shared by two different sequences gets a ``_2``, ``_3``... suffix."""
    seen: dict[str, str] = {}
    for pin, psq, phr in databases:
        for name, sequence in read_blast_protein_db(pin, psq, phr):
            seen.setdefault(sequence, name)
    names, used = [], {}
    for name in seen.values():
        used[name] = used.get(name, 0) + 1
        names.append(name if used[name] == 1 else f"{name}_{used[name]}")
    return names, list(seen)


def _ints(buffer: bytes, at: int, count: int, where: str) -> np.ndarray:
    if at + 4 * count > len(buffer):
        raise ValueError(f"{where}: truncated BLAST index (needs {at + 4 * count} bytes, has {len(buffer)})")
    return np.frombuffer(buffer, dtype=">i4", count=count, offset=at).astype(np.int64)


#: BER prefix of a ``Blast-def-line-set`` whose first def-line starts with its title: SEQUENCE OF, SEQUENCE,
#: [0] (indefinite lengths), then the VisibleString tag 0x1a.
_DEFLINE_PREFIX = b"\x30\x80\x30\x80\xa0\x80\x1a"


def _defline_title(header: bytes) -> str | None:
    if not header.startswith(_DEFLINE_PREFIX):
        return None
    at = len(_DEFLINE_PREFIX)
    length = header[at]
    at += 1
    if length & 0x80:  # BER long form: the low bits count the length bytes that follow
        width = length & 0x7F
        length = int.from_bytes(header[at : at + width], "big")
        at += width
    return header[at : at + length].decode("ascii", errors="replace")
