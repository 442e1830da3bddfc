"""Sequence files -> strings or DNA token ids: FASTA (plain or ``.gz``), GenBank, UCSC 2bit.

The format is chosen by the file's suffix; Biopython's ``SeqIO`` parses all three (``"twobit"`` reads the
packed file lazily, so a slice of a large 2bit genome does not decode the whole of it). pyfaidx would give
random access to large uncompressed FASTA too, but every caller here reads whole records, and Biopython
is already a dependency, so it is not used.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from zoo.domains.genomics.tokenizer import DNATokenizer

#: File suffix (lowercase, ``.gz`` removed) -> Biopython ``SeqIO`` format name.
FORMATS: dict[str, str] = {
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".fas": "fasta",
    ".gb": "genbank",
    ".gbk": "genbank",
    ".genbank": "genbank",
    ".2bit": "twobit",
}
_GZIP_OK = frozenset({"fasta", "genbank"})  # 2bit is a random-access binary format, never gzipped


def format_of(path: str | Path) -> tuple[str, bool]:
    """``(SeqIO format, gzipped)`` of a sequence file, from its suffix; an unknown suffix is an error."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = suffixes[-2] if gzipped and len(suffixes) > 1 else (suffixes[-1] if suffixes and not gzipped else "")
    fmt = FORMATS.get(suffix)
    if fmt is None or (gzipped and fmt not in _GZIP_OK):
        supported = ", ".join(sorted(FORMATS)) + " (FASTA and GenBank also .gz)"
        kind = "".join(path.suffixes) or "(no suffix)"
        raise ValueError(f"{path}: unknown sequence file type {kind!r}; supported: {supported}")
    return fmt, gzipped


def read_records(path: str | Path) -> dict[str, str]:
    """Record id -> sequence string (case kept) of a FASTA / GenBank / 2bit file; duplicate ids are an error."""
    from Bio import SeqIO

    path = Path(path)
    fmt, gzipped = format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if fmt == "twobit":
        handle = open(path, "rb")
    elif gzipped:
        handle = gzip.open(path, "rt", encoding="ascii")
    else:
        handle = open(path, encoding="ascii")
    records: dict[str, str] = {}
    with handle:
        for record in SeqIO.parse(handle, fmt):
            if record.id in records:
                raise ValueError(f"{path}: record id {record.id!r} appears twice")
            records[record.id] = str(record.seq)
    if not records:
        raise ValueError(f"{path}: no {fmt} records found")
    return records


def open_genome(
    path_or_name: str | Path, cache_dir: str | Path | None = None, unknown: Literal["error", "N"] = "error"
) -> Mapping[str, np.ndarray]:
    """Chromosome -> uint8 DNA token ids ``[L]`` of a FASTA/GenBank/2bit file or a named genome (``yeast-s288c``).

    A string that is an existing file is read as one (``unknown``: the tokenizer's policy for IUPAC
    ambiguity codes); otherwise it must be a name in ``zoo.domains.genomics.genomes.GENOMES`` (fetched into
    ``cache_dir`` once).
    """
    path = Path(path_or_name)
    if path.is_file():
        tokenizer = DNATokenizer(unknown=unknown)
        out = {}
        for chrom, seq in read_records(path).items():
            try:
                out[chrom] = tokenizer.encode(seq, dtype=np.uint8)
            except ValueError as error:
                raise ValueError(f"{path} ({chrom}): {error}") from None
        return out
    from zoo.domains.genomics.genomes import GENOMES, load_genome

    if str(path_or_name) not in GENOMES:
        raise ValueError(
            f"genome {str(path_or_name)!r} is neither an existing file nor a named genome "
            f"({', '.join(sorted(GENOMES))})"
        )
    return load_genome(str(path_or_name), cache_dir=cache_dir).chromosomes
