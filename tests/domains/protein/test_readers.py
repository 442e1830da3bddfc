"""Protein readers: FASTA (plain, gz, handle), A3M insert columns, Stockholm, homolog sequences, suffixes."""

import gzip
import io

import pytest
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

from zoo.domains.protein.readers import (
    format_of,
    homolog_sequences,
    read_a3m,
    read_fasta,
    read_sequences,
    read_stockholm,
)
from zoo.domains.protein.tokenizer import ProteinTokenizer

RECORDS = {"sp|P1|ONE": "MKTAYIAKQR", "tr|Q2|TWO": "mkvlaagx*"}

# Query MKVLA; row "hom1" has an insertion "gs" after K and a deletion of L; row "hom2" an insertion "t" at
# the end; "." pads insert columns (A2M style), which A3M allows.
A3M = """#5\t1
>query some description
MK..VLA.
>hom1 first homolog
MKgsV-A
>hom2
M-VLAt
"""
STOCKHOLM = """# STOCKHOLM 1.0
#=GF ID test
seq1/1-6  MK-VAa.L
seq2/3-9  MKLVA.gL
#=GC RF   xxxxx..x
//
"""


def _write_fasta(path, records):
    rows = [SeqRecord(Seq(s), id=k, description="") for k, s in records.items()]
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            SeqIO.write(rows, handle, "fasta")
    else:
        SeqIO.write(rows, path, "fasta")


@pytest.mark.parametrize("name", ["p.fasta", "p.fa", "p.faa", "p.FASTA.gz", "p.faa.gz"])
def test_fasta_plain_gzipped_and_by_suffix(tmp_path, name):
    _write_fasta(tmp_path / name, RECORDS)
    assert read_fasta(tmp_path / name) == RECORDS
    assert read_sequences(tmp_path / name) == list(RECORDS.items())


def test_fasta_from_handle_and_errors(tmp_path):
    assert read_fasta(io.StringIO(">a x\nMK\nV\n>b\nGG\n")) == {"a": "MKV", "b": "GG"}
    with pytest.raises(ValueError, match="record id 'a' appears twice"):
        read_fasta(io.StringIO(">a\nMK\n>a\nGG\n"))
    (tmp_path / "empty.fa").write_text("")
    with pytest.raises(ValueError, match=r"empty\.fa: no FASTA records"):
        read_fasta(tmp_path / "empty.fa")
    with pytest.raises(FileNotFoundError, match=r"missing\.fa does not exist"):
        read_fasta(tmp_path / "missing.fa")


def test_a3m_drop_inserts_aligns_rows_to_the_query(tmp_path):
    (tmp_path / "msa.a3m").write_text(A3M)
    rows = read_a3m(tmp_path / "msa.a3m")
    assert rows == [("query", "MKVLA"), ("hom1", "MKV-A"), ("hom2", "M-VLA")]
    assert read_sequences(tmp_path / "msa.a3m") == rows
    # The aligned rows are what a gap-aware tokenizer reads, all with the query's length.
    ids, mask = ProteinTokenizer(gaps="keep").batch_encode([row for _, row in rows])
    assert mask.all() and ids.shape == (3, 5)


def test_a3m_keep_inserts_gives_raw_homologs(tmp_path):
    with gzip.open(tmp_path / "msa.a3m.gz", "wt") as handle:
        handle.write(A3M)
    rows = read_a3m(tmp_path / "msa.a3m.gz", inserts="keep")
    assert rows == [("query", "MKVLA"), ("hom1", "MKGSVA"), ("hom2", "MVLAT")]
    assert read_sequences(tmp_path / "msa.a3m.gz", inserts="keep") == rows


def test_a3m_row_of_wrong_length_is_named(tmp_path):
    (tmp_path / "bad.a3m").write_text(">query\nMKVLA\n>ok\nMKV-A\n>broken\nMKVL\n")
    with pytest.raises(ValueError, match=r"A3M row 2 \('broken'\) has 4 match columns.*query 'query' has 5"):
        read_a3m(tmp_path / "bad.a3m")
    assert read_a3m(tmp_path / "bad.a3m", inserts="keep")[2] == ("broken", "MKVL")  # raw sequences need no check
    with pytest.raises(ValueError, match="inserts must be 'drop' or 'keep'"):
        read_a3m(tmp_path / "bad.a3m", inserts="upper")
    (tmp_path / "empty.a3m").write_text("#1\t1\n")
    with pytest.raises(ValueError, match="no A3M rows"):
        read_a3m(tmp_path / "empty.a3m")


@pytest.mark.parametrize("name", ["fam.sto", "fam.stockholm.gz"])
def test_stockholm_rows_and_homologs(tmp_path, name):
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "wt") as handle:
        handle.write(STOCKHOLM)
    rows = read_stockholm(tmp_path / name)
    assert rows == [("seq1/1-6", "MK-VAa-L"), ("seq2/3-9", "MKLVA-gL")]
    assert read_sequences(tmp_path / name) == rows
    assert homolog_sequences(rows) == ["MKVAAL", "MKLVAGL"]


def test_stockholm_needs_exactly_one_alignment(tmp_path):
    (tmp_path / "two.sto").write_text(STOCKHOLM + STOCKHOLM)
    with pytest.raises(ValueError, match="expected one Stockholm alignment, found 2"):
        read_stockholm(tmp_path / "two.sto")


def test_homolog_sequences_drop_gaps_and_all_gap_rows():
    rows = [("a", "mK-v.A"), ("empty", "--.-"), ("b", "GG")]
    assert homolog_sequences(rows) == ["MKVA", "GG"]
    assert homolog_sequences(["-a-", "B."]) == ["A", "B"]
    tok = ProteinTokenizer(lowercase="error", gaps="error")  # what comes out is plain uppercase residues
    assert [tok.decode(tok.encode(s)) for s in homolog_sequences(rows)] == ["MKVA", "GG"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("x.fa", ("fasta", False)), ("x.FAA.gz", ("fasta", True)), ("dir.v2/x.a3m", ("a3m", False)),
     ("x.tar.sto", ("stockholm", False)), ("x.stockholm.gz", ("stockholm", True))],
)  # fmt: skip
def test_format_of_suffixes(name, expected):
    assert format_of(name) == expected


@pytest.mark.parametrize("name", ["x.txt", "x", "x.gz", "x.a2m.gz", "x.fastq"])
def test_unknown_suffix_is_a_clear_error(tmp_path, name):
    with pytest.raises(ValueError, match=r"unknown protein file type.*supported: \.fasta, \.fa, \.faa, \.a3m"):
        read_sequences(tmp_path / name)
