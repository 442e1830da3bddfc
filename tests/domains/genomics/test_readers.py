"""Sequence file readers: FASTA (plain, gz), GenBank, 2bit give the same records; named genomes; errors."""

import gzip
import re
import struct

import numpy as np
import pytest
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

from zoo.domains.genomics import genomes
from zoo.domains.genomics.readers import open_genome, read_records
from zoo.domains.genomics.tokenizer import DNATokenizer

RECORDS = {"chrA": "ACGTNNacgtTTGCA", "chrB": "GGGCCCAAATTTN"}


def write_twobit(path, records: dict[str, str]) -> None:
    """A UCSC 2bit file (Biopython reads the format but cannot write it): header, index, then per record
    its size, N blocks, soft-mask blocks and bases packed 4 per byte as T=0 C=1 A=2 G=3."""
    code = {"T": 0, "C": 1, "A": 2, "G": 3, "N": 0}

    def blocks(pattern: str, seq: str) -> bytes:
        found = [(m.start(), m.end() - m.start()) for m in re.finditer(pattern, seq)]
        return struct.pack(f"<I{len(found)}I{len(found)}I", len(found), *[s for s, _ in found], *[n for _, n in found])

    offset = 16 + sum(1 + len(name) + 4 for name in records)
    index, body = b"", b""
    for name, seq in records.items():
        upper = seq.upper()
        padded = upper + "T" * (-len(upper) % 4)
        packed = bytes(sum(code[padded[i + j]] << (6 - 2 * j) for j in range(4)) for i in range(0, len(padded), 4))
        record = struct.pack("<I", len(seq)) + blocks("N+", upper) + blocks("[a-z]+", seq) + b"\0\0\0\0" + packed
        index += bytes([len(name)]) + name.encode() + struct.pack("<I", offset + len(body))
        body += record
    path.write_bytes(struct.pack("<IIII", 0x1A412743, 0, len(records), 0) + index + body)


def _seq_records():
    return [SeqRecord(Seq(s), id=k, description="", annotations={"molecule_type": "DNA"}) for k, s in RECORDS.items()]


def test_fasta_plain_and_gzipped(tmp_path):
    SeqIO.write(_seq_records(), tmp_path / "g.fa", "fasta")
    with gzip.open(tmp_path / "g.fasta.gz", "wt") as handle:
        SeqIO.write(_seq_records(), handle, "fasta")
    assert read_records(tmp_path / "g.fa") == RECORDS
    assert read_records(tmp_path / "g.fasta.gz") == RECORDS


def test_genbank(tmp_path):
    SeqIO.write(_seq_records(), tmp_path / "g.gbk", "genbank")
    assert {k: v.upper() for k, v in read_records(tmp_path / "g.gbk").items()} == {
        k: v.upper() for k, v in RECORDS.items()
    }


def test_twobit_keeps_n_and_soft_mask(tmp_path):
    write_twobit(tmp_path / "g.2bit", RECORDS)
    assert read_records(tmp_path / "g.2bit") == RECORDS


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    (tmp_path / "g.txt").write_text(">a\nACGT\n")
    with pytest.raises(ValueError, match=r"g\.txt: unknown sequence file type '\.txt'; supported: .*\.2bit.*\.fa"):
        read_records(tmp_path / "g.txt")


def test_duplicate_ids_are_an_error(tmp_path):
    (tmp_path / "g.fa").write_text(">a\nACGT\n>a\nAC\n")
    with pytest.raises(ValueError, match="'a' appears twice"):
        read_records(tmp_path / "g.fa")


def test_open_genome_from_files_gives_uint8_token_ids(tmp_path):
    write_twobit(tmp_path / "g.2bit", RECORDS)
    chromosomes = open_genome(tmp_path / "g.2bit")
    tokenizer = DNATokenizer()
    assert list(chromosomes) == ["chrA", "chrB"]
    for name, seq in RECORDS.items():
        assert chromosomes[name].dtype == np.uint8
        assert tokenizer.decode(chromosomes[name]) == seq.upper()


def test_open_genome_names_the_record_of_a_bad_character(tmp_path):
    (tmp_path / "g.fa").write_text(">ok\nACGT\n>bad\nACRT\n")
    with pytest.raises(ValueError, match=r"g\.fa \(bad\): invalid DNA character 'R' at position 2"):
        open_genome(tmp_path / "g.fa")
    assert DNATokenizer().decode(open_genome(tmp_path / "g.fa", unknown="N")["bad"]) == "ACNT"


def test_open_genome_by_name_uses_load_genome(monkeypatch, tmp_path):
    seen = {}

    def fake_load(name, cache_dir=None):
        seen["args"] = (name, cache_dir)
        return genomes.Genome(name, {"chr1": np.array([7, 8, 9], dtype=np.uint8)})

    monkeypatch.setitem(genomes.GENOMES, "toy-genome", genomes.GENOMES["yeast-s288c"])
    monkeypatch.setattr(genomes, "load_genome", fake_load)
    assert open_genome("toy-genome", cache_dir=tmp_path)["chr1"].tolist() == [7, 8, 9]
    assert seen["args"] == ("toy-genome", tmp_path)
    with pytest.raises(ValueError, match="'no-such' is neither an existing file nor a named genome"):
        open_genome("no-such")
