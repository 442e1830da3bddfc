"""DNATokenizer: ids of zoo.vocab, soft-masking, clear errors, padding, reverse complement."""

import numpy as np
import pytest

from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.vocab import DNA_TOKENS


def test_encode_uses_zoo_vocab_ids_in_either_case():
    tok = DNATokenizer()
    expected = [DNA_TOKENS.index(b) for b in "ACGTN"]
    assert tok.encode("ACGTN").tolist() == expected
    assert tok.encode("acgtn").tolist() == expected  # soft-masked bases are accepted
    assert tok.encode(b"AcGtN").tolist() == expected
    assert tok.encode("ACGT").dtype == np.int64 and tok.encode("").shape == (0,)
    assert tok.encode("ACGT", dtype=np.uint8).dtype == np.uint8


def test_encode_long_sequence_matches_per_character_lookup():
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTNacgtn"), size=100_003))
    ids = DNATokenizer().encode(seq)
    assert ids.tolist() == [DNA_TOKENS.index(c.upper()) for c in seq]


@pytest.mark.parametrize(
    ("seq", "char", "position"),
    [("ACGXT", "'X'", 3), ("AC GT", "' '", 2), ("ACGU", "'U'", 3), ("ACGé", "'é'", 3), ("-", "'-'", 0)],
    ids=["letter", "space", "rna", "non-ascii", "gap"],
)
def test_encode_names_bad_character_position_and_alphabet(seq, char, position):
    with pytest.raises(ValueError) as error:
        DNATokenizer().encode(seq)
    message = str(error.value)
    assert char in message and f"position {position}" in message and "ACGTN" in message


def test_iupac_codes_error_unless_mapped_to_n():
    with pytest.raises(ValueError, match=r"IUPAC ambiguity code.*unknown='N'"):
        DNATokenizer().encode("ACRT")
    lenient = DNATokenizer(unknown="N")
    assert lenient.decode(lenient.encode("ACRTyk")) == "ACNTNN"
    with pytest.raises(ValueError, match="'X' at position 1"):
        lenient.encode("AXT")  # not an IUPAC code: still an error
    with pytest.raises(ValueError, match="unknown must be"):
        DNATokenizer(unknown="skip")


def test_decode_round_trip_and_specials():
    tok = DNATokenizer()
    assert tok.decode(tok.encode("acgtNNA")) == "ACGTNNA"
    ids, _ = tok.batch_encode(["AC"], pad_to=4)
    assert tok.decode(ids[0]) == "AC[PAD][PAD]"
    assert tok.decode(ids[0], skip_special=True) == "AC"
    with pytest.raises(ValueError, match="outside the DNA vocabulary"):
        tok.decode([7, 99])


def test_reverse_complement():
    tok = DNATokenizer()
    assert tok.decode(tok.reverse_complement(tok.encode("AACGTN"))) == "NACGTT"
    ids = tok.encode("GATTACA", dtype=np.uint8)
    rc = tok.reverse_complement(ids)
    assert rc.dtype == np.uint8 and np.array_equal(tok.reverse_complement(rc), ids)
    batch = np.stack([tok.encode("ACGT"), tok.encode("AAAC")])
    assert [tok.decode(row) for row in tok.reverse_complement(batch)] == ["ACGT", "GTTT"]


def test_batch_encode_pads_right_and_masks():
    tok = DNATokenizer()
    ids, mask = tok.batch_encode(["ACG", "T", ""])
    assert ids.shape == mask.shape == (3, 3) and ids.dtype == np.int64 and mask.dtype == bool
    assert ids[1].tolist() == [DNA_TOKENS.index("T"), tok.pad_id, tok.pad_id]
    assert mask.sum(axis=1).tolist() == [3, 1, 0]
    assert DNA_TOKENS[tok.pad_id] == "[PAD]"
    ids, mask = tok.batch_encode(["ACG"], pad_to=5)
    assert ids.shape == (1, 5) and mask[0].tolist() == [True] * 3 + [False] * 2
    with pytest.raises(ValueError, match="sequence 1 has 4 bases, more than pad_to=3"):
        tok.batch_encode(["ACG", "ACGT"], pad_to=3)
