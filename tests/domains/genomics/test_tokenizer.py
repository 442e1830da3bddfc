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


def random_dna(length: int, seed: int, alphabet: str = "ACGTNacgtn") -> str:
    return "".join(np.random.default_rng(seed).choice(list(alphabet), size=length))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_and_lowercase_invariants(seed):
    tok = DNATokenizer()
    seq = random_dna(257, seed)
    ids = tok.encode(seq)
    assert tok.decode(ids) == seq.upper()
    np.testing.assert_array_equal(tok.encode(seq.lower()), tok.encode(seq.upper()))
    np.testing.assert_array_equal(tok.encode(tok.decode(ids)), ids)


@pytest.mark.parametrize("seed", [0, 1])
def test_reverse_complement_is_an_involution_that_reverses_and_complements(seed):
    tok = DNATokenizer()
    seq = random_dna(101, seed, alphabet="ACGTN")
    ids = tok.encode(seq)
    np.testing.assert_array_equal(tok.reverse_complement(tok.reverse_complement(ids)), ids)
    complement = str.maketrans("ACGTN", "TGCAN")
    assert tok.decode(tok.reverse_complement(ids)) == seq.translate(complement)[::-1]


def test_soft_mask_flag_marks_lowercase_and_decode_restores_it():
    tok = DNATokenizer(soft_mask="flag")
    seq = random_dna(300, 3)
    ids, soft = tok.encode_with_mask(seq)
    assert soft.dtype == bool and soft.shape == ids.shape == (300,)
    assert soft.tolist() == [c.islower() for c in seq]
    np.testing.assert_array_equal(ids, DNATokenizer().encode(seq))  # ids ignore the case either way
    assert tok.decode(ids, soft_masked=soft) == seq
    assert tok.decode(ids) == seq.upper()
    assert tok.encode_with_mask(b"acGT")[1].tolist() == [True, True, False, False]
    lenient = DNATokenizer(unknown="N", soft_mask="flag")
    ids, soft = lenient.encode_with_mask("Ary")
    assert lenient.decode(ids, soft_masked=soft) == "Ann"
    with pytest.raises(ValueError, match="'X' at position 2"):
        tok.encode_with_mask("acXt")


def test_soft_mask_option_is_checked():
    with pytest.raises(ValueError, match=r"soft_mask='flag'"):
        DNATokenizer().encode_with_mask("acgt")
    with pytest.raises(ValueError, match="soft_mask must be"):
        DNATokenizer(soft_mask="lower")
    tok = DNATokenizer(soft_mask="flag")
    with pytest.raises(ValueError, match="soft_masked has shape"):
        tok.decode(tok.encode("ACG"), soft_masked=np.array([True]))
    with pytest.raises(ValueError, match="special token"):
        tok.decode(np.array([tok.pad_id, 7]), soft_masked=np.array([True, False]))


def test_batch_encode_left_padding_aligns_the_ends():
    tok = DNATokenizer()
    seqs = ["ACGT", "G", "tc"]
    right, right_mask = tok.batch_encode(seqs)
    left, left_mask = tok.batch_encode(seqs, padding_side="left")
    assert left.shape == right.shape == (3, 4)
    for row, seq in enumerate(seqs):
        n = len(seq)
        assert left_mask[row].tolist() == [False] * (4 - n) + [True] * n
        np.testing.assert_array_equal(left[row, 4 - n :], tok.encode(seq))
        np.testing.assert_array_equal(right[row, :n], tok.encode(seq))
        assert (left[row, : 4 - n] == tok.pad_id).all() and (right[row, n:] == tok.pad_id).all()
    np.testing.assert_array_equal(left_mask.sum(1), right_mask.sum(1))
    left6, _ = tok.batch_encode(["AC"], pad_to=6, padding_side="left")
    assert tok.decode(left6[0]) == "[PAD]" * 4 + "AC"
    with pytest.raises(ValueError, match="padding_side must be"):
        tok.batch_encode(seqs, padding_side="middle")


@pytest.mark.parametrize("code", list("RYSWKMBDHV"))
def test_iupac_policy_for_every_ambiguity_code(code):
    strict, lenient = DNATokenizer(), DNATokenizer(unknown="N")
    for char in (code, code.lower()):
        with pytest.raises(ValueError, match=f"{char!r} at position 1.*IUPAC"):
            strict.encode(f"A{char}")
        assert lenient.encode(f"A{char}").tolist() == [DNA_TOKENS.index("A"), lenient.n_id]


@pytest.mark.parametrize("char", list("EFIJLOPQXZ0*"))
def test_non_iupac_characters_are_errors_under_both_policies(char):
    for tok in (DNATokenizer(), DNATokenizer(unknown="N")):
        with pytest.raises(ValueError, match="position 2") as error:
            tok.encode(f"AC{char}")
        assert "IUPAC ambiguity code" not in str(error.value)
