"""Protein sequence and alignment files -> strings: FASTA, A3M and Stockholm (each plain or ``.gz``).

Biopython parses all three: ``SeqIO`` for FASTA and for the records of an A3M file (A3M is FASTA whose rows
carry alignment meaning), ``AlignIO`` for Stockholm. Strings come back as in the file (case kept) except where
a reader's docstring says otherwise; ``ProteinTokenizer`` applies the residue policies.

Alignment conventions, as HHblits / jackhmmer write them:

* A3M: the first row is the query. Uppercase letters and ``-`` are match columns (one per query residue),
  lowercase letters are residues inserted relative to the query, and ``.`` (rare in A3M, usual in A2M) pads
  insert columns. ``read_a3m(inserts="drop")`` gives the query-length alignment, ``inserts="keep"`` the full
  homolog sequences.
* Stockholm: every row has the same length; Biopython writes both gap characters as ``-``.

``homolog_sequences`` turns either into what a homologs-as-context model reads: ungapped uppercase sequences.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

#: File suffix (lowercase, ``.gz`` removed) -> format read by ``read_sequences``.
FORMATS: dict[str, str] = {
    ".fasta": "fasta",
    ".fa": "fasta",
    ".faa": "fasta",
    ".a3m": "a3m",
    ".sto": "stockholm",
    ".stockholm": "stockholm",
}

Inserts = Literal["drop", "keep"]
PathOrHandle = str | Path | IO[str]


def format_of(path: str | Path) -> tuple[str, bool]:
    """``(format, gzipped)`` of a sequence or alignment file, from its suffix; an unknown suffix is an error."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        kind = "".join(path.suffixes) or "(no suffix)"
        supported = ", ".join(FORMATS) + " (each optionally .gz)"
        raise ValueError(f"{path}: unknown protein file type {kind!r}; supported: {supported}")
    return fmt, gzipped


def read_sequences(path: str | Path, inserts: Inserts = "drop") -> list[tuple[str, str]]:
    """``(name, sequence)`` rows of a FASTA, A3M or Stockholm file (format from the suffix, see ``FORMATS``).

    FASTA rows are the records in file order; ``inserts`` applies to A3M only (see ``read_a3m``).
    """
    fmt, _ = format_of(path)
    if fmt == "fasta":
        return list(read_fasta(path).items())
    if fmt == "a3m":
        return read_a3m(path, inserts=inserts)
    return read_stockholm(path)


def read_fasta(path_or_handle: PathOrHandle) -> dict[str, str]:
    """Record id -> sequence (case kept) of a FASTA file (``.gz`` by suffix) or an open text handle.

    Duplicate ids and a file without records are errors.
    """
    from Bio import SeqIO

    records: dict[str, str] = {}
    with _text(path_or_handle) as (handle, where):
        for record in SeqIO.parse(handle, "fasta"):
            if record.id in records:
                raise ValueError(f"{where}: record id {record.id!r} appears twice")
            records[record.id] = str(record.seq)
    if not records:
        raise ValueError(f"{where}: no FASTA records found")
    return records


def read_a3m(path_or_handle: PathOrHandle, inserts: Inserts = "drop") -> list[tuple[str, str]]:
    """``(name, row)`` of an A3M alignment, query first.

    ``inserts="drop"`` removes lowercase insert residues and ``.``, so every row is aligned to the query and
    has its length (uppercase residues and ``-``); a row of another length is an error naming it.
    ``inserts="keep"`` upper-cases the inserts and removes ``.`` and ``-``: the raw homolog sequences.
    """
    from Bio import SeqIO

    if inserts not in ("drop", "keep"):
        raise ValueError(f"inserts must be 'drop' or 'keep', got {inserts!r}")
    with _text(path_or_handle) as (handle, where):
        # "fasta-pearson" skips the comment lines before the first record that ColabFold / MMseqs2 A3M files
        # start with ("#<query lengths>\t<cardinalities>"); the strict "fasta" parser refuses them.
        records = [(r.id, str(r.seq)) for r in SeqIO.parse(handle, "fasta-pearson")]
    if not records:
        raise ValueError(f"{where}: no A3M rows found")
    # Biopython has no A3M parser (Bio.Align.a2m needs '.'-padded rows of one length), so the meaning of the
    # rows is applied here: it is only a character filter.
    if inserts == "keep":
        return [(name, _drop(seq, "-.").upper()) for name, seq in records]
    rows = [(name, "".join(c for c in seq if not c.islower() and c != ".")) for name, seq in records]
    query_name, query = rows[0]
    for index, (name, row) in enumerate(rows[1:], start=1):
        if len(row) != len(query):
            raise ValueError(
                f"{where}: A3M row {index} ({name!r}) has {len(row)} match columns once its lowercase inserts "
                f"are removed, but the query {query_name!r} has {len(query)}; the file is not a valid A3M "
                "alignment to the first row"
            )
    return rows


def read_stockholm(path_or_handle: PathOrHandle) -> list[tuple[str, str]]:
    """``(name, aligned row)`` of a one-alignment Stockholm file; case kept, gaps written ``-`` by Biopython."""
    from Bio import AlignIO

    with _text(path_or_handle) as (handle, where):
        alignments = list(AlignIO.parse(handle, "stockholm"))
    if len(alignments) != 1:
        raise ValueError(f"{where}: expected one Stockholm alignment, found {len(alignments)}")
    rows = [(record.id, str(record.seq)) for record in alignments[0]]
    if not rows:
        raise ValueError(f"{where}: the Stockholm alignment has no rows")
    return rows


def homolog_sequences(rows: Iterable[tuple[str, str]] | Iterable[str]) -> list[str]:
    """Ungapped uppercase sequences of alignment rows (``(name, row)`` pairs or plain strings), in order.

    Rows with no residues at all (all gaps, e.g. a fragment outside a trimmed region) carry no context and
    are left out.
    """
    out = []
    for row in rows:
        seq = row if isinstance(row, str) else row[1]
        ungapped = _drop(seq, "-.").upper()
        if ungapped:
            out.append(ungapped)
    return out


def _drop(seq: str, chars: Sequence[str]) -> str:
    return seq.translate({ord(c): None for c in chars})


@contextmanager
def _text(path_or_handle: PathOrHandle) -> Iterator[tuple[IO[str], str]]:
    """An open text handle and how to name it in errors; a path ending in ``.gz`` is decompressed."""
    if not isinstance(path_or_handle, (str, Path)):
        yield path_or_handle, getattr(path_or_handle, "name", "<handle>")
        return
    path = Path(path_or_handle)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix.lower() == ".gz":
        handle: IO[str] = gzip.open(path, "rt", encoding="utf-8")
    else:
        handle = open(path, encoding="utf-8")
    with handle:
        yield handle, str(path)
