"""Character vocabularies shared by models and tokenizers.

The DNA layout is HyenaDNA's / Caduceus' character tokenizer (7 specials, then A C G T N), so their
official checkpoints load without re-ordering embedding rows. Models pad the vocabulary to a multiple
of 8 for speed; the padding rows are never produced by a tokenizer.
"""

from __future__ import annotations

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
DNA_TOKENS = (*SPECIAL_TOKENS, "A", "C", "G", "T", "N")
PROTEIN_TOKENS = (
    *SPECIAL_TOKENS,
    *"ACDEFGHIKLMNPQRSTVWY",  # the 20 standard amino acids
    *"XBZUO",  # unknown, ambiguous (B = D/N, Z = E/Q), selenocysteine, pyrrolysine
    "-",  # alignment gap, used when homologs are given as context
    # Fill-in-the-middle over concatenated homologs (ProtMamba / Prot-xLSTM style): a causal model reads
    # ``homologs [SEP] prefix [MASK] suffix [FIM] middle [EOS]``, so it learns to fill a masked span from
    # both sides, which also gives causal models a masked-marginal mutation score.
    "[EOS]",
    "[FIM]",
)

_DNA_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def dna_complement_map(vocab_size: int) -> list[int]:
    """Token id -> id of its Watson-Crick complement; specials, N and padding rows map to themselves."""
    index = {tok: i for i, tok in enumerate(DNA_TOKENS)}
    mapping = list(range(vocab_size))
    for base, comp in _DNA_COMPLEMENT.items():
        mapping[index[base]] = index[comp]
    return mapping


def padded_vocab_size(size: int, multiple: int = 8) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-size // multiple) * multiple
