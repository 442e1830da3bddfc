"""ProteinTokenizer: ids of zoo.vocab, every residue policy, errors with positions, padding, round trips."""

import numpy as np
import pytest

from zoo.domains.protein.tokenizer import NONSTANDARD, STANDARD, ProteinTokenizer
from zoo.vocab import PROTEIN_TOKENS


def ids_of(text: str) -> list[int]:
    return [PROTEIN_TOKENS.index(c) for c in text]


def test_encode_uses_zoo_vocab_ids_and_reads_lowercase_as_uppercase():
    tok = ProteinTokenizer()
    assert tok.encode(STANDARD).tolist() == list(range(7, 27))
    assert tok.encode(STANDARD.lower()).tolist() == list(range(7, 27))
    assert tok.encode(b"MkV").tolist() == ids_of("MKV")
    assert tok.encode(NONSTANDARD).tolist() == ids_of(NONSTANDARD)
    assert tok.encode("ACD").dtype == np.int64 and tok.encode("ACD", dtype=np.uint8).dtype == np.uint8
    assert tok.vocab_size == len(PROTEIN_TOKENS)
    assert tok.standard_ids.tolist() == ids_of(STANDARD)
    named = {"[PAD]": tok.pad_id, "[MASK]": tok.mask_id, "[BOS]": tok.bos_id, "[EOS]": tok.eos_id,
             "[SEP]": tok.sep_id, "[FIM]": tok.fim_id, "[CLS]": tok.cls_id, "[UNK]": tok.unk_id, "-": tok.gap_id,
             "X": tok.x_id}  # fmt: skip
    assert {token: PROTEIN_TOKENS[i] for token, i in named.items()} == {token: token for token in named}


def test_encode_long_sequence_matches_per_character_lookup():
    rng = np.random.default_rng(0)
    alphabet = list(STANDARD + NONSTANDARD + (STANDARD + NONSTANDARD).lower())
    seq = "".join(rng.choice(alphabet, size=50_001))
    assert ProteinTokenizer().encode(seq).tolist() == ids_of(seq.upper())


def test_nonstandard_policies():
    assert ProteinTokenizer(nonstandard="X").encode("MBZUOXk").tolist() == ids_of("MXXXXXK")
    assert ProteinTokenizer(nonstandard="X").encode("bzuo").tolist() == ids_of("XXXX")
    strict = ProteinTokenizer(nonstandard="error")
    assert strict.encode("MKV").tolist() == ids_of("MKV")
    for seq, position in [("MKU", 2), ("xMK", 0), ("MBK", 1)]:
        with pytest.raises(ValueError, match=rf"character '{seq[position]}' at position {position}.*nonstandard="):
            strict.encode(seq)


def test_lowercase_policy():
    strict = ProteinTokenizer(lowercase="error")
    assert strict.encode("MKV").tolist() == ids_of("MKV")
    with pytest.raises(ValueError, match=r"'k' at position 1.*lowercase='upper'"):
        strict.encode("MkV")


def test_gap_policies():
    with pytest.raises(ValueError, match=r"'-' at position 2.*gaps='keep'"):
        ProteinTokenizer().encode("MK-V")
    with pytest.raises(ValueError, match=r"'\.' at position 1.*gaps="):
        ProteinTokenizer().encode("M.KV")
    assert ProteinTokenizer(gaps="keep").encode("M-K.V").tolist() == ids_of("M-K-V")
    assert ProteinTokenizer(gaps="drop").encode("-M-K.v.").tolist() == ids_of("MKV")
    with pytest.raises(ValueError, match="no residues once its stop and gaps are removed"):
        ProteinTokenizer(gaps="drop").encode("--.")


def test_stop_policies():
    tok = ProteinTokenizer()
    assert tok.encode("MKV*").tolist() == ids_of("MKV")
    with pytest.raises(ValueError, match=r"'\*' at position 1.*inside the sequence"):
        tok.encode("M*KV")
    with pytest.raises(ValueError, match=r"'\*' at position 2.*inside the sequence"):
        tok.encode("MK**")  # only one trailing stop is stripped
    with pytest.raises(ValueError, match=r"'\*' at position 3.*stop='strip'"):
        ProteinTokenizer(stop="error").encode("MKV*")
    with pytest.raises(ValueError, match="no residues"):
        tok.encode("*")


@pytest.mark.parametrize(
    ("seq", "char", "position", "hint"),
    [
        ("MKJV", "'J'", 2, "replace it with X"),
        ("MK V", "' '", 2, "whitespace"),
        ("MKV\n", "'\\\\n'", 3, "whitespace"),
        ("MK1", "'1'", 2, "allowed: ACDEFGHIKLMNPQRSTVWY"),
        ("MKé", "'é'", 2, "allowed"),
    ],
    ids=["J", "space", "newline", "digit", "non-ascii"],
)
def test_other_characters_name_character_and_position(seq, char, position, hint):
    for tok in (ProteinTokenizer(), ProteinTokenizer(nonstandard="X", gaps="keep")):
        with pytest.raises(ValueError, match=rf"invalid protein character {char} at position {position}\..*{hint}"):
            tok.encode(seq)


def test_empty_sequence_and_bad_options_are_errors():
    with pytest.raises(ValueError, match="empty protein sequence"):
        ProteinTokenizer().encode("")
    with pytest.raises(ValueError, match="nonstandard must be one of 'keep', 'X', 'error', got 'drop'"):
        ProteinTokenizer(nonstandard="drop")
    with pytest.raises(ValueError, match="gaps must be one of"):
        ProteinTokenizer(gaps="skip")
    with pytest.raises(ValueError, match="lowercase must be one of"):
        ProteinTokenizer(lowercase="lower")
    with pytest.raises(ValueError, match="stop must be one of"):
        ProteinTokenizer(stop="keep")


def test_round_trip_over_every_residue_and_gap():
    tok = ProteinTokenizer(gaps="keep")
    rng = np.random.default_rng(1)
    ids = rng.integers(tok.standard_ids[0], tok.gap_id + 1, size=1_001)
    text = tok.decode(ids)
    assert len(text) == len(ids) and set(text) == set(STANDARD + NONSTANDARD + "-")
    assert np.array_equal(tok.encode(text), ids)
    assert tok.decode(tok.encode("mkv-bz")) == "MKV-BZ"


def test_decode_renders_or_skips_specials():
    tok = ProteinTokenizer()
    ids = [tok.bos_id, *tok.encode("MK"), tok.fim_id, *tok.encode("V"), tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "[BOS]MK[FIM]V[EOS][PAD]"
    assert tok.decode(ids, skip_special=True) == "MKV"
    assert tok.decode([tok.gap_id, tok.sep_id], skip_special=True) == "-"
    with pytest.raises(ValueError, match="outside the protein vocabulary"):
        tok.decode([7, len(PROTEIN_TOKENS)])
    with pytest.raises(ValueError, match="one sequence of ids"):
        tok.decode([[7, 8]])


def test_batch_encode_padding_sides_and_errors():
    tok = ProteinTokenizer()
    ids, mask = tok.batch_encode(["MKV", "A", "GW"])
    assert ids.shape == mask.shape == (3, 3) and ids.dtype == np.int64 and mask.dtype == bool
    assert ids[1].tolist() == [PROTEIN_TOKENS.index("A"), tok.pad_id, tok.pad_id]
    assert mask.sum(axis=1).tolist() == [3, 1, 2]
    left, left_mask = tok.batch_encode(["MKV", "A"], pad_to=4, padding_side="left")
    assert left[1].tolist() == [tok.pad_id] * 3 + ids_of("A") and left_mask[0].tolist() == [False, True, True, True]
    for row, seq in zip(left, ["MKV", "A"]):
        assert tok.decode(row, skip_special=True) == seq
    with pytest.raises(ValueError, match="sequence 1 has 4 residues, more than pad_to=3"):
        tok.batch_encode(["MKV", "MKVL"], pad_to=3)
    with pytest.raises(ValueError, match=r"sequence 1: invalid protein character 'J' at position 0"):
        tok.batch_encode(["MKV", "JKV"])
    with pytest.raises(ValueError, match="padding_side must be"):
        tok.batch_encode(["MKV"], padding_side="middle")
